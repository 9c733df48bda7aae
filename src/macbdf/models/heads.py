"""§3.4 classifiers: the progressive MLP (BatchNorm + Dropout) and the per-frame heads.

Heads output logits; the sigmoid of the paper lives in the BCE-with-logits loss (numerically safe).

Example:
    >>> import torch
    >>> head = ProgressiveHead(32, widths=(0.5, 0.25), dropout=0.1)
    >>> head(torch.randn(4, 32)).shape
    torch.Size([4])
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that normalises with its running statistics when a training batch has one sample.

    Plain BatchNorm raises on a batch of 1 in training mode (the last partial batch of an epoch, or
    a one-video fine-tune step); the running statistics are the only meaningful choice there.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ProgressiveHead(nn.Module):
    """Stacked Linear -> BatchNorm -> GELU -> Dropout layers of decreasing width, then Linear -> 1 logit."""

    def __init__(self, in_dim: int, widths: Sequence[float] = (0.5, 0.25), dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for frac in widths:
            h = max(4, int(round(in_dim * frac)))
            layers += [nn.Linear(d, h), SafeBatchNorm1d(h), nn.GELU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


class FrameHead(nn.Module):
    """Per-frame MLP branch (Eq. 20): time-token features (B, T', C) -> frame logits (B, T).

    Each time token spans ``tubelet`` frames and predicts one logit per frame it covers.
    """

    def __init__(self, dim: int, tubelet: int) -> None:
        super().__init__()
        self.tubelet = tubelet
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, tubelet))

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        y = rearrange(self.net(x), "b t p -> b (t p)")
        return y[:, :num_frames]
