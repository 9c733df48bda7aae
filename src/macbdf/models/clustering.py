"""§3.2.2 adaptive clustering and the composite distance of Eq. 9.

Each modality's projections z (the unified contrastive space) are collected in a FIFO memory bank;
`ClusterState.fit` runs k-means for every K in ``cluster_k_choices`` and keeps the K with the best
silhouette, then estimates a pooled within-cluster covariance with shrinkage towards a scaled identity
(a full covariance of a few hundred points in 32-128 dims is singular without it) and the largest
Mahalanobis distance of the bank to its nearest centre (d^max of Eq. 9).

Everything lives in fixed-shape buffers (centres padded to max K plus a validity mask), so a
safetensors checkpoint restores the clusters and a single video can be scored alone.

Example:
    >>> import torch
    >>> st = ClusterState(dim=4, k_choices=(2, 3), bank_size=64)
    >>> st.push(torch.randn(40, 4)); st.fit()
    True
    >>> st.composite_distance(torch.randn(5, 4), beta=0.5).shape
    torch.Size([5])
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kmeans(x: Tensor, k: int, iters: int = 25, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding. x (N, D) -> centres (k, D), labels (N,)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = x.shape[0]
    idx = [int(torch.randint(n, (1,), generator=g))]
    d2 = ((x - x[idx[0]]) ** 2).sum(-1)
    for _ in range(1, k):
        p = d2.clamp_min(0).cpu()
        nxt = int(torch.multinomial(p / p.sum(), 1, generator=g)) if float(p.sum()) > 0 else int(torch.randint(n, (1,), generator=g))
        idx.append(nxt)
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(-1))
    centres = x[idx].clone()
    labels = torch.zeros(n, dtype=torch.long, device=x.device)
    for it in range(iters):
        new = torch.cdist(x, centres).argmin(1)
        if it > 0 and torch.equal(new, labels):
            break
        labels = new
        for j in range(k):
            sel = labels == j
            if sel.any():
                centres[j] = x[sel].mean(0)
    return centres, labels


def silhouette(x: Tensor, labels: Tensor) -> float:
    """Mean silhouette coefficient (Euclidean); -1 when fewer than 2 clusters are populated."""
    uniq = labels.unique()
    if uniq.numel() < 2:
        return -1.0
    dist = torch.cdist(x, x)
    a = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    b = torch.full_like(a, float("inf"))
    for c in uniq:
        sel = labels == c
        n_c = int(sel.sum())
        mean_to_c = dist[:, sel].sum(1)
        a = torch.where(sel, mean_to_c / max(n_c - 1, 1), a)
        b = torch.where(sel, b, torch.minimum(b, mean_to_c / n_c))
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    sizes = torch.bincount(labels)[labels]
    s = torch.where(sizes > 1, s, torch.zeros_like(s))  # sklearn convention: singleton clusters score 0
    return float(s.mean())


def shrinkage_precision(x: Tensor, labels: Tensor, centres: Tensor, shrinkage: float) -> Tensor:
    """Inverse of the pooled within-cluster covariance shrunk towards (tr(S)/D) I."""
    r = x - centres[labels]
    n, d = r.shape
    s = r.t() @ r / max(n - 1, 1)
    mu = torch.trace(s) / d
    mu = mu if float(mu) > 1e-12 else torch.ones((), dtype=x.dtype, device=x.device)
    cov = (1 - shrinkage) * s + shrinkage * mu * torch.eye(d, dtype=x.dtype, device=x.device)
    cov = cov + 1e-6 * mu * torch.eye(d, dtype=x.dtype, device=x.device)
    return torch.linalg.inv(cov)


def mahalanobis(x: Tensor, centres: Tensor, precision: Tensor) -> Tensor:
    """d(x_i, c_k) = sqrt((x_i - c_k)^T P (x_i - c_k)) for all i, k -> (N, K)."""
    diff = x[:, None, :] - centres[None, :, :]
    q = torch.einsum("nkd,de,nke->nk", diff, precision, diff)
    return q.clamp_min(0).sqrt()


def composite_distance(x: Tensor, centres: Tensor, precision: Tensor, d_max: Tensor | float, beta: float,
                       valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Eq. 9: D_i = beta * d_i / d^max + (1 - beta) * (1 - cos(x_i, c_i)), c_i the nearest centre.

    "Nearest" is by Mahalanobis distance. Returns (D (N,), index of the centre (N,)).
    """
    d = mahalanobis(x, centres, precision)
    if valid is not None:
        d = d.masked_fill(~valid[None, :], float("inf"))
    dk, k = d.min(1)
    c = centres[k]
    s = 1.0 - F.cosine_similarity(x, c, dim=-1, eps=1e-8)
    dmax = torch.as_tensor(d_max, dtype=x.dtype, device=x.device).clamp_min(1e-6)
    return beta * dk / dmax + (1.0 - beta) * s, k


class ClusterState(nn.Module):
    """Memory bank + fitted clusters of one modality, all in fixed-shape buffers."""

    def __init__(self, dim: int, k_choices: Sequence[int] = (2, 3, 4), bank_size: int = 512,
                 shrinkage: float = 0.1) -> None:
        super().__init__()
        self.k_choices = tuple(int(k) for k in k_choices)
        self.shrinkage = shrinkage
        kmax = max(self.k_choices)
        self.register_buffer("centres", torch.zeros(kmax, dim))
        self.register_buffer("centre_valid", torch.zeros(kmax, dtype=torch.bool))
        self.register_buffer("num_clusters", torch.zeros((), dtype=torch.long))
        self.register_buffer("precision", torch.eye(dim))
        self.register_buffer("d_max", torch.ones(()))
        self.register_buffer("bank", torch.zeros(bank_size, dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_ptr", torch.zeros((), dtype=torch.long))

    @property
    def fitted(self) -> bool:
        return int(self.num_clusters) > 0

    @torch.no_grad()
    def push(self, z: Tensor) -> None:
        """Append rows (N, D) to the FIFO bank (the oldest are overwritten)."""
        z = z.detach().to(self.bank.dtype)
        cap = self.bank.shape[0]
        if z.shape[0] >= cap:
            z = z[-cap:]
        n = z.shape[0]
        ptr = int(self.bank_ptr)
        idx = (torch.arange(n, device=self.bank.device) + ptr) % cap
        self.bank[idx] = z
        self.bank_ptr.fill_((ptr + n) % cap)
        self.bank_count.fill_(min(cap, int(self.bank_count) + n))

    def min_points(self) -> int:
        return 2 * max(self.k_choices)

    @torch.no_grad()
    def fit(self, z: Tensor | None = None, seed: int = 0) -> bool:
        """Cluster ``z`` (or the bank); pick K by silhouette. Returns False if there are too few points."""
        x = (self.bank[: int(self.bank_count)] if z is None else z.detach()).float()
        x = x[torch.isfinite(x).all(1)]
        if x.shape[0] < self.min_points():
            return False
        best: tuple[float, int, Tensor, Tensor] | None = None
        for k in self.k_choices:
            if k >= x.shape[0]:
                continue
            c, lab = kmeans(x, k, seed=seed + k)
            score = silhouette(x, lab)
            if best is None or score > best[0]:
                best = (score, k, c, lab)
        if best is None:
            return False
        _, k, c, lab = best
        prec = shrinkage_precision(x, lab, c, self.shrinkage)
        d = mahalanobis(x, c, prec).min(1).values
        self.centres.zero_()
        self.centres[:k] = c.to(self.centres.dtype)
        self.centre_valid.zero_()
        self.centre_valid[:k] = True
        self.num_clusters.fill_(k)
        self.precision.copy_(prec.to(self.precision.dtype))
        self.d_max.fill_(float(d.max().clamp_min(1e-6)))
        return True

    def composite_distance(self, z: Tensor, beta: float) -> Tensor:
        """Eq. 9 for rows (N, D); 1.0 (neutral) for every row while no clusters are fitted."""
        if not self.fitted:
            return torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
        d, _ = composite_distance(z.float(), self.centres.float(), self.precision.float(), self.d_max.float(), beta,
                                  self.centre_valid)
        return d.to(z.dtype)
