"""§3.2.2 Eq. 10 modality importance weights and §3.3 RFMF (representation fusion by multi-head attention).

Example:
    >>> import torch
    >>> fw = FusionWeights(dim=16, heads=2, gamma=0.5)
    >>> w = fw(torch.randn(3, 10, 16), torch.randn(3, 6, 16), torch.ones(3, 2), None, None)
    >>> torch.allclose(w.sum(1), torch.ones(3))
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from macbdf.models.encoders import Block
from macbdf.models.fastpath import frozen_cache, frozen_eval


class AttentionImportance(nn.Module):
    """ReLU(f_m(MHAttention_m)): a learned query attends over the modality's tokens, f_m maps to a scalar."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        hidden = max(4, dim // 2)
        self.f = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        # start inside the ReLU's active range: a ReLU that outputs 0 for every sample gets no gradient
        nn.init.constant_(self.f[-1].bias, 1.0)

    def forward(self, tokens: Tensor, key_valid: Tensor | None = None) -> Tensor:
        """tokens (B, L, C), key_valid (B, L) -> importance (B,) >= 0."""
        if frozen_eval(self) and self.mha._qkv_same_embed_dim and self.mha.in_proj_bias is not None:
            return self._frozen_forward(tokens, key_valid)
        kv = self.norm(tokens)
        q = self.query.expand(tokens.shape[0], -1, -1).to(kv.dtype)
        mask = None
        if key_valid is not None:
            # The padding as a per-head additive mask rather than key_padding_mask: the same mask inside
            # nn.MultiheadAttention (outputs and gradients bit-identical, tests/models/test_multiscale_fusion.py), but
            # key_padding_mask's shape check goes through torch._check, which imports sympy: 0.6-1 s at the
            # first forward of every process, more than the rest of a short `macbdf detect`.
            b, s = key_valid.shape
            heads = self.mha.num_heads
            mask = torch.zeros(b, 1, 1, s, dtype=q.dtype, device=q.device).masked_fill_(
                ~key_valid[:, None, None, :], float("-inf")).expand(-1, heads, -1, -1).reshape(b * heads, 1, s)
        att, _ = self.mha(q, kv, kv, attn_mask=mask, need_weights=False)
        return torch.relu(self.f(att[:, 0])).squeeze(-1)

    def _frozen_operators(self, dt: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The learned query's fixed products (cached). With one query q and LN'd tokens x_l:
        score_h(l) = (W_k,h^T q_h) . x_l + q_h . b_k,h  ->  (C, H) matrix + (H,) bias;
        and since each head's weights sum to 1, its output is W_v,h (sum_l a_hl x_l) + b_v,h, so the value
        projection, out_proj and the first layer of f compose into one (hidden, H*C) map of the per-head
        pooled tokens."""
        mha, c = self.mha, self.query.shape[-1]
        heads = mha.num_heads
        d = c // heads

        def build() -> tuple[Tensor, Tensor, Tensor, Tensor]:
            wq, wk, wv = mha.in_proj_weight.chunk(3)
            bq, bk, bv = mha.in_proj_bias.chunk(3)
            q = ((wq @ self.query.reshape(c) + bq) * d ** -0.5).view(heads, d)        # (H, d), SDPA's scale
            score_w = torch.einsum("hd,hdc->ch", q, wk.view(heads, d, c))            # (C, H)
            score_b = (q * bk.view(heads, d)).sum(-1)                                  # (H,)
            f0 = self.f[0]
            wo = f0.weight @ mha.out_proj.weight                                       # (hidden, C)
            per_head = torch.einsum("khd,hdc->khc", wo.view(-1, heads, d), wv.view(heads, d, c))  # (hidden, H, C)
            b0 = f0.weight @ (mha.out_proj.weight @ bv + mha.out_proj.bias) + f0.bias
            return score_w.to(dt), score_b.to(dt), per_head.reshape(-1, heads * c).to(dt), b0.to(dt)

        params = [self.query, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias,
                  self.f[0].weight, self.f[0].bias]
        return frozen_cache(self, "query", params, (dt,), build)

    def _frozen_forward(self, tokens: Tensor, key_valid: Tensor | None) -> Tensor:
        """Inference path: the same importance as the reference up to float rounding, in a dozen operations
        (the reference runs nn.MultiheadAttention's full q/k/v projections for a single query)."""
        kv = self.norm(tokens)                                                         # (B, L, C)
        score_w, score_b, w0, b0 = self._frozen_operators(kv.dtype)
        s = torch.matmul(kv, score_w).add_(score_b)                                   # (B, L, H)
        if key_valid is not None:
            s = s.masked_fill_(~key_valid[:, :, None], float("-inf"))
        pooled = torch.matmul(s.softmax(1).transpose(1, 2), kv)                      # (B, H, C)
        hidden = F.gelu(torch.addmm(b0, pooled.flatten(1), w0.t()), approximate=self.f[1].approximate)  # (B, hidden)
        return torch.relu(self.f[2](hidden)).squeeze(-1)


def importance_weights(att_v: Tensor, att_a: Tensor, d_v: Tensor, d_a: Tensor, gamma: float,
                       eps: float = 0.05) -> Tensor:
    """Eq. 10 per modality, then normalised so that w_v + w_a = 1. Returns (B, 2) = (w_v, w_a).

    w_m = gamma * ReLU(f_m(MHA_m)) + (1 - gamma) / (D_m + eps)   (att_* are already ReLU'd)
    """
    w_v = gamma * att_v + (1.0 - gamma) / (d_v + eps)
    w_a = gamma * att_a + (1.0 - gamma) / (d_a + eps)
    w = torch.stack([w_v, w_a], dim=1)
    return w / w.sum(1, keepdim=True).clamp_min(eps)


class FusionWeights(nn.Module):
    """Eq. 9-10: attention importance of each modality mixed with the inverse cluster distance."""

    def __init__(self, dim: int, heads: int, gamma: float, eps: float = 0.05) -> None:
        super().__init__()
        self.gamma, self.eps = gamma, eps
        self.att_v = AttentionImportance(dim, heads)
        self.att_a = AttentionImportance(dim, heads)

    def forward(self, v_tokens: Tensor, a_tokens: Tensor, dists: Tensor | None,
                v_valid: Tensor | None, a_valid: Tensor | None) -> Tensor:
        """v_tokens (B, Lv, C), a_tokens (B, La, C), dists (B, 2) = (D_v, D_a) from Eq. 9 or None (neutral 1)."""
        av = self.att_v(v_tokens, v_valid)
        aa = self.att_a(a_tokens, a_valid)
        if dists is None:
            dists = torch.ones(av.shape[0], 2, device=av.device)
        # fp32 whatever the autocast dtype: 1/(D + eps) and the normalisation must not overflow in fp16
        dists = dists.float()
        return importance_weights(av.float(), aa.float(), dists[:, 0], dists[:, 1], self.gamma, self.eps)


class RFMF(nn.Module):
    """§3.3: a Transformer over M = [ha_0, hv_0, ..., ha_n, hv_n] with modality and layer embeddings.

    Tokens (B, L, 2, C) -> fused vector (B, C) (mean over the attended tokens, then LayerNorm).
    """

    def __init__(self, dim: int, heads: int, depth: int, num_layers: int, mlp_ratio: float = 2.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.modality_emb = nn.Parameter(torch.randn(2, dim) * 0.02)   # 0 = audio, 1 = video
        self.layer_emb = nn.Parameter(torch.randn(num_layers, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, modalities: list[int]) -> Tensor:
        """tokens (B, L, M, C) with M entries whose modality ids are ``modalities`` -> (B, C)."""
        b, n_layers, m, c = tokens.shape
        emb = self.layer_emb[:n_layers, None, :] + self.modality_emb[modalities][None, :, :]  # (L, M, C)
        x = (tokens + emb[None]).reshape(b, n_layers * m, c)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x.mean(1))
