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
from torch import Tensor, nn

from macbdf.models.encoders import Block


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
