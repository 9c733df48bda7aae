"""The optimiser's parts: AdamW parameter groups (decay, per-module lr multipliers) and the warm-up/cosine
learning-rate factor."""
from __future__ import annotations

import math
from typing import Any

from torch import nn

from macbdf_train.config import TrainError

__all__ = ["lr_factor", "param_groups"]


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up, then cosine to ``min_ratio``.

    Example:
        >>> [round(lr_factor(s, 10, 2, 0.0), 3) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def param_groups(modules: list[nn.Module], weight_decay: float, lr: float = 1e-3,
                  lr_scales: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases, norms, scales and other vectors (standard practice); parameters
    of the first module whose name starts with a key of ``lr_scales`` get ``lr * scale``."""
    scales = dict(lr_scales or {})
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for k, m in enumerate(modules):
        for name, p in m.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            scale = next((v for pre, v in scales.items() if k == 0 and name.startswith(pre)), 1.0)
            groups.setdefault((p.ndim >= 2, float(scale)), []).append(p)
    names = [n for n, _ in modules[0].named_parameters()] if modules else []
    unmatched = [pre for pre in scales if not any(n.startswith(pre) for n in names)]
    if unmatched:
        raise TrainError(f"--lr-scale prefix(es) {', '.join(unmatched)} match no model parameter "
                         f"(top-level modules: {', '.join(sorted({n.split('.')[0] for n in names}))})")
    out = []
    for (is_matrix, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        out.append({"params": params, "weight_decay": weight_decay if is_matrix else 0.0, "lr": lr * scale})
    return out
