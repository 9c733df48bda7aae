"""§3.2.1 multi-modal adaptive contrastive learning (MACL): Eq. 2-8.

* `cross_modal_loss` - L_av / L_va (Eq. 2, 7): anchor i of one modality against the other modality.
  Positive: the own pair, only when both of its tracks are authentic. Negatives: the K most similar
  non-matching items of the batch and of the FIFO queue; where the own pair is forged it is itself a
  negative (always kept among the K), so forged pairs are pushed apart. The margin is subtracted from
  the negative logits as written in the paper: s/tau - m/tau. An anchor with no positive (forged pair)
  uses a constant "null" positive logit 0, i.e. its loss is log(1 + sum_k exp(s_k/tau - m/tau)).
* `supcon_loss` - L_vv / L_aa: supervised contrastive loss within one modality over a class key
  (the modality's authenticity label combined with THAT modality's manipulation method: the batch's
  ``video_method_id`` / ``audio_method_id``, see macbdf.data.methods).
* `AdaptiveTemperature` - Eq. 3-6: attention weights over pairs, basis functions, learnable beta,
  and the temporal smoothing gamma_t from a recurrent state.

Example:
    >>> import torch, torch.nn.functional as F
    >>> a = F.normalize(torch.randn(4, 8), dim=1); v = F.normalize(torch.randn(4, 8), dim=1)
    >>> loss = cross_modal_loss(a, v, None, torch.tensor([1, 1, 0, 1]).bool(), k_neg=3, margin=0.1, tau=0.1)
    >>> loss.ndim
    0
"""
from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor, nn


def same_sample(ids_a: Tensor | None, ids_b: Tensor | None, shape: tuple[int, int], device: torch.device) -> Tensor:
    """(len a, len b) True where both ids are known (>= 0) and equal (windows of the same video)."""
    if ids_a is None or ids_b is None:
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return (ids_a[:, None] == ids_b[None, :]) & (ids_a[:, None] >= 0)


def cross_modal_logits(anchor: Tensor, cand: Tensor, queue: Tensor | None, pos_valid: Tensor, k_neg: int,
                       margin: float, tau: Tensor | float, ids: Tensor | None = None,
                       queue_ids: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Logits of Eq. 2/7 for every anchor.

    anchor (B, D), cand (B, D) (row i is anchor i's own pair), queue (Q, D) or None, pos_valid (B,) bool.
    ``ids`` (B,) / ``queue_ids`` (Q,): optional int64 sample ids (-1 unknown); another window of the same
    video (in the batch or in the queue) is not "non-matching" and is never used as a negative.
    Returns (pos_logit (B,), neg_logits (B, K'), neg_valid (B, K')) with K' = min(k_neg, #candidates).
    """
    b = anchor.shape[0]
    dev = anchor.device
    sims = anchor @ cand.t()                                             # (B, B)
    own = torch.eye(b, dtype=torch.bool, device=dev)
    # a candidate is a usable negative if it is someone else's item, or the own pair when forged
    usable = (~own & ~same_sample(ids, ids, (b, b), dev)) | (own & ~pos_valid[:, None])
    if queue is not None and queue.shape[0] > 0:
        q = queue.shape[0]
        sims = torch.cat([sims, anchor @ queue.t()], dim=1)             # (B, B + Q)
        usable = torch.cat([usable, ~same_sample(ids, queue_ids, (b, q), dev)], 1)
        own = torch.cat([own, torch.zeros(b, q, dtype=torch.bool, device=dev)], 1)
    k = min(k_neg, sims.shape[1])
    # selection key: forged own pairs first, then the most similar usable candidates
    key = sims.detach().masked_fill(~usable, float("-inf")).masked_fill(own & usable, float("inf"))
    top = key.topk(k, dim=1).indices
    neg_valid = usable.gather(1, top)
    neg_logits = (sims.gather(1, top) - margin) / tau
    pos_logit = torch.where(pos_valid, sims.diagonal()[:b] / tau, torch.zeros_like(sims[:, 0]))
    return pos_logit, neg_logits, neg_valid


def cross_modal_loss(anchor: Tensor, cand: Tensor, queue: Tensor | None, pos_valid: Tensor, k_neg: int,
                     margin: float, tau: Tensor | float, ids: Tensor | None = None,
                     queue_ids: Tensor | None = None) -> Tensor:
    """Eq. 2 (audio -> video, anchor=audio) or Eq. 7 (video -> audio, anchor=video): mean over anchors."""
    pos, neg, valid = cross_modal_logits(anchor, cand, queue, pos_valid, k_neg, margin, tau, ids, queue_ids)
    neg = neg.masked_fill(~valid, float("-inf"))
    denom = torch.logsumexp(torch.cat([pos[:, None], neg], dim=1), dim=1)
    return (denom - pos).mean()


def sample_ids(batch: dict, device: torch.device) -> Tensor | None:
    """Stable int64 ids from the batch's optional ``video_id`` list (-1 where missing); None without it."""
    names = batch.get("video_id")
    if names is None:
        return None
    if isinstance(names, Tensor):
        return names.to(device=device, dtype=torch.long)
    out = [int.from_bytes(hashlib.blake2b(str(n).encode(), digest_size=7).digest(), "little") if n is not None
           else -1 for n in names]
    return torch.tensor(out, dtype=torch.long, device=device)


def contrast_keys(modality_label: Tensor, method_id: Tensor | None) -> Tensor:
    """Class key for the intra-modal loss: 0 for an authentic track, else 1 + method id (>= 1).

    An unknown label (< 0) gets a key of its own (-1 - index), so that sample has no positive and is
    skipped as an anchor.
    """
    fake = modality_label > 0.5
    mid = torch.zeros_like(fake, dtype=torch.long) if method_id is None else method_id.long().clamp_min(0)
    keys = torch.where(fake, 1 + mid, torch.zeros_like(mid))
    unique = -1 - torch.arange(keys.shape[0], device=keys.device)
    return torch.where(modality_label < 0, unique, keys)


def supcon_loss(z: Tensor, keys: Tensor, tau: Tensor | float) -> Tensor:
    """Supervised contrastive loss (L_out form) within one modality; anchors without positives are skipped.

    L = mean_i  -1/|P(i)| sum_{p in P(i)} [ s_ip/tau - log sum_{a != i} exp(s_ia/tau) ]
    """
    b = z.shape[0]
    logits = z @ z.t() / tau
    eye = torch.eye(b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (keys[:, None] == keys[None, :]) & ~eye
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0  # keeps the graph; no anchor has a positive in this batch
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1) / n_pos.clamp_min(1)
    return per_anchor[has].mean()


def pair_features(x: Tensor, y: Tensor, s: Tensor) -> Tensor:
    """Per-pair inputs of f_theta (Eq. 3): [s_ij, s_ij - E[S], ||x_i - y_j||] -> (B, B', 3)."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.t())
    dist = sq.clamp_min(1e-12).sqrt()
    return torch.stack([s, s - s.mean(), dist], dim=-1)


def attention_weights(scores: Tensor) -> Tensor:
    """Eq. 3: w_ij = exp(f(s_ij)) / sum_kl exp(f(s_kl)) over all pairs. scores (B, B') -> (B, B')."""
    return torch.softmax(scores.flatten(), 0).view_as(scores)


def basis_functions(s: Tensor, w: Tensor) -> Tensor:
    """Eq. 4 basis: phi1 = Var(S), phi2 = sum w |s - E S|^3, phi3 = H(w) / log(#pairs) -> (3,).

    The entropy is divided by its maximum log(#pairs) so that phi3 lies in [0, 1] whatever the batch
    size (the raw H(w) grows with log B^2 and would make tau depend on the batch size).
    """
    mean = s.mean()
    phi1 = ((s - mean) ** 2).mean()
    phi2 = (w * (s - mean).abs() ** 3).sum()
    n = s.numel()
    ent = -(w * torch.log(w.clamp_min(1e-12))).sum()
    phi3 = ent / math.log(n) if n > 1 else torch.zeros_like(ent)
    return torch.stack([phi1, phi2, phi3])


def _signed_log(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


class AdaptiveTemperature(nn.Module):
    """Eq. 3-6: tau_new = tau0 * exp(beta . phi(S)); tau_t = gamma_t * tau_{t-1} + (1 - gamma_t) * tau_new.

    gamma_t = sigmoid(MLP([h_{t-1}, dtau_{t-1}, grad_tau L_{t-1}])) with h from a GRU cell over the
    history of (log tau, dtau, grad). h_{t-1} is recomputed from the stored previous inputs inside the
    current graph (one-step truncated back-propagation) so the GRU learns too. grad_tau L_{t-1} is
    captured by a tensor hook on tau during the backward pass (it also fires for torch.autograd.grad).
    The state (tau_{t-1}, dtau, grad, h) lives in buffers and only moves in training mode; tau_0 = tau0.
    """

    def __init__(self, tau0: float, tau_min: float, tau_max: float, hidden: int = 16) -> None:
        super().__init__()
        self.tau0, self.tau_min, self.tau_max = tau0, tau_min, tau_max
        self.f_theta = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.beta = nn.Parameter(torch.zeros(3))
        self.gru = nn.GRUCell(3, hidden)
        self.gamma_mlp = nn.Sequential(nn.Linear(hidden + 2, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.gamma_mlp[-1].bias, 2.0)  # gamma ~ 0.88 at start: smooth, slowly moving tau
        self.register_buffer("tau_prev", torch.tensor(float(tau0)))
        self.register_buffer("dtau_prev", torch.zeros(()))
        self.register_buffer("grad_prev", torch.zeros(()))
        self.register_buffer("h_prev", torch.zeros(hidden))       # h_{t-2}; h_{t-1} = GRU(x_{t-1}, h_{t-2})
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def tau_new(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Eq. 3-4 from the cross-modal similarities of x (B, D) and y (B', D): (tau_new, w, phi)."""
        s = x @ y.t()
        scores = self.f_theta(pair_features(x, y, s)).squeeze(-1)
        w = attention_weights(scores)
        phi = basis_functions(s, w)
        return self.tau0 * torch.exp((self.beta * phi).sum()), w, phi

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = x.to(self.beta.dtype), y.to(self.beta.dtype)   # fp32 even under autocast callers
        tau_new, _, phi = self.tau_new(x, y)
        # clones: the buffers are updated in place below, the graph must keep the values it used
        tau_prev, dtau_prev, grad_prev = self.tau_prev.clone(), self.dtau_prev.clone(), self.grad_prev.clone()
        x_prev = torch.stack([tau_prev.log(), _signed_log(dtau_prev * 100.0), _signed_log(grad_prev)])
        h = self.gru(x_prev[None], self.h_prev.clone()[None])[0]                        # h_{t-1}
        gamma = torch.sigmoid(self.gamma_mlp(torch.cat([h, x_prev[1:]]))).squeeze(-1)  # Eq. 5
        tau = (gamma * tau_prev + (1.0 - gamma) * tau_new).clamp(self.tau_min, self.tau_max)  # Eq. 6
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.h_prev.copy_(h.detach())
                self.dtau_prev.copy_(tau.detach() - tau_prev)
                self.tau_prev.copy_(tau.detach())
                self.steps.add_(1)
            if tau.requires_grad:
                tau.register_hook(self._store_grad)
        logs = {"tau": tau.detach(), "tau_new": tau_new.detach(), "gamma": gamma.detach(),
                "phi_var": phi[0].detach(), "phi_skew": phi[1].detach(), "phi_entropy": phi[2].detach()}
        return tau, logs

    def _store_grad(self, g: Tensor) -> None:
        with torch.no_grad():
            self.grad_prev.copy_(g.detach().reshape(()).to(self.grad_prev.dtype))
