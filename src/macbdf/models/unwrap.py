"""The plain module under training wrappers (DDP, DataParallel, torch.compile).

Example:
    >>> import torch
    >>> m = torch.nn.Linear(2, 2)
    >>> unwrap_model(torch.nn.DataParallel(m)) is m
    True
"""
from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model
