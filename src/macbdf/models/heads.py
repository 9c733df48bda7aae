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
from torch import Tensor, nn

from macbdf.models.fastpath import bn_scale_shift, bn_tensors, frozen_cache, frozen_eval


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
        if frozen_eval(self):
            return self._frozen_forward(x)
        return self.net(x).squeeze(-1)

    def _frozen_forward(self, x: Tensor) -> Tensor:
        """Inference path: each eval-mode BatchNorm folded into the Linear before it (Dropout is the identity
        in eval mode), so the head is Linear -> GELU -> ... -> Linear. Same logits up to float rounding."""
        mods = list(self.net)
        linears = [m for m in mods if isinstance(m, nn.Linear)]
        bns = [m for m in mods if isinstance(m, nn.BatchNorm1d)]
        gelu = next(m for m in mods if isinstance(m, nn.GELU)).approximate if bns else "none"
        tensors = [t for lin in linears for t in (lin.weight, lin.bias)] + [t for bn in bns for t in bn_tensors(bn)]

        def build() -> list[tuple[Tensor, Tensor]]:
            out = []
            for lin, bn in zip(linears, bns + [None]):
                w, b = lin.weight, lin.bias
                if bn is not None:
                    scale, shift = bn_scale_shift(bn)
                    w, b = w * scale[:, None], b * scale + shift
                out.append((w.to(x.dtype), b.to(x.dtype)))
            return out

        layers = frozen_cache(self, "folded", tensors, (x.dtype,), build)
        for i, (w, b) in enumerate(layers):
            x = F.linear(x, w, b)
            if i < len(layers) - 1:
                x = F.gelu(x, approximate=gelu)
        return x.squeeze(-1)


class FrameHead(nn.Module):
    """Per-frame MLP branch (Eq. 20): time-token features (B, T', C) -> frame logits (B, T).

    One logit per time token (a token spans ``tubelet`` frames), linearly interpolated to the frames
    at the token centres ((k + 0.5) * tubelet - 0.5 in frame units; the first / last half token is
    held). Formerly the head had ``tubelet`` outputs, one per frame position inside the token: a token
    cannot tell its frames apart (they are patched together), so those per-position weights only
    added a fixed offset by frame parity and every clip's frame scores alternated with period 2
    (docs/paper-map.md). Old checkpoints load with the per-position rows averaged.

    Example:
        >>> import torch
        >>> FrameHead(8, tubelet=2)(torch.randn(3, 4, 8), num_frames=7).shape
        torch.Size([3, 7])
    """

    def __init__(self, dim: int, tubelet: int) -> None:
        super().__init__()
        self.tubelet = tubelet
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self._register_load_state_dict_pre_hook(self._average_old_rows)

    @staticmethod
    def _average_old_rows(state_dict: dict, prefix: str, *args: object) -> None:
        # checkpoints written before the fix: (tubelet, dim) / (tubelet,) -> their mean row
        for key in (prefix + "net.3.weight", prefix + "net.3.bias"):
            v = state_dict.get(key)
            if v is not None and v.shape[0] > 1:
                state_dict[key] = v.mean(0, keepdim=True)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        y = self.net(x).transpose(1, 2)                                   # (B, 1, T')
        if self.tubelet > 1:
            # align_corners=False with scale = tubelet maps frame j to token coordinate
            # (j + 0.5) / tubelet - 0.5: the token centres, clamped at both ends
            y = F.interpolate(y.float(), scale_factor=self.tubelet, mode="linear", align_corners=False).to(y.dtype)
        return y[:, 0, :num_frames]
