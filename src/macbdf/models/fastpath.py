"""Inference-only fast paths: weight-only products computed once and reused while the weights stay the same.

Without autograd (``torch.inference_mode`` / ``torch.no_grad``, as in `macbdf.detect`, evaluation and
benchmarks) several parts of the model apply a fixed linear map whose construction costs more than
its use on a small map: the dense depthwise operators of the multi-scale blocks, a BatchNorm in eval
mode after a convolution, the ImageNet normalisation in front of the video stem. `frozen_cache`
remembers such products on the module, keyed on the storage and version counter of every parameter
and buffer they read, so an optimizer step, ``load_state_dict``, ``.to()`` or a BatchNorm statistics
update rebuilds them. Training (autograd on) never takes these paths: its gradients stay exactly
those of the reference computation. Each fast path has a test comparing it with the reference path
(tests/models/test_fastpath.py); they agree to float rounding (~1e-6).

Example:
    >>> import torch
    >>> conv, bn = torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4).eval()
    >>> w, b = fold_conv_bn(conv, bn)
    >>> x = torch.randn(1, 3, 8, 8)
    >>> torch.allclose(bn(conv(x)), torch.nn.functional.conv2d(x, w, b), atol=1e-5)
    True
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn


def no_grad_into(tensors: Iterable[Tensor]) -> bool:
    """True when no gradient can flow into ``tensors`` now (autograd off, or none requires grad)."""
    return not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors)


def frozen_cache(owner: nn.Module, name: str, tensors: Sequence[Tensor], key: tuple, build: Callable[[], Any]) -> Any:
    """``build()``, remembered on ``owner`` under ``name`` while ``tensors`` and ``key`` stay the same.

    Used only when no gradient can flow into ``tensors`` (else ``build()`` runs every time, so
    training is unchanged). Keyed on each tensor's storage address and version counter (in-place
    updates bump it). One entry per ``name``: memory stays bounded.
    """
    if not no_grad_into(tensors):
        return build()
    try:
        tag = key + tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:        # inference tensors (created under inference_mode) have no version counter
        return build()
    cache = owner.__dict__.setdefault("_frozen_cache", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == tag:
        return hit[1]
    # normal tensors (not inference tensors), so a cached value stays usable outside inference_mode
    with torch.inference_mode(False), torch.no_grad():
        val = build()
    cache[name] = (tag, val)
    return val


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """(scale, shift) with ``bn(x) == x * scale + shift`` per channel in eval mode."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def fold_conv_bn(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution (``bn`` in eval mode)."""
    scale, shift = bn_scale_shift(bn)
    w = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    b = shift if conv.bias is None else conv.bias * scale + shift
    return w, b


def bn_tensors(bn: nn.modules.batchnorm._BatchNorm) -> list[Tensor]:
    """Every tensor an eval-mode BatchNorm reads (the cache key of a fold)."""
    return [t for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]


def frozen_eval(module: nn.Module) -> bool:
    """Whether ``module`` may take its inference fast path now: eval mode and no gradient into it."""
    return not module.training and no_grad_into(module.parameters())
