"""Exponential moving average of a model's weights (``macbdf train --ema DECAY``).

The average covers every floating-point entry of the state dict, BatchNorm statistics included, so
the averaged model is self-consistent; integer buffers (BatchNorm's batch counter) are copied. The
decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early weights, far from
the final ones, fade out quickly on short runs.

Example:
    >>> import torch
    >>> m = torch.nn.Linear(2, 1)
    >>> ema = WeightEMA(m, decay=0.9)
    >>> with torch.no_grad(): _ = m.weight.add_(1.0)
    >>> ema.update(m); ema.updates
    1
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["WeightEMA"]


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step towards ``model``'s current state: avg <- d * avg + (1 - d) * model."""
        d = self.current_decay()
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.lerp_(s.to(v.dtype), 1.0 - d)
            else:
                v.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"module": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.module.load_state_dict(st["module"], strict=True)
        self.updates = int(st["updates"])
