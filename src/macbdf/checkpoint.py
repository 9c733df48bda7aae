"""Model checkpoints: ``model.safetensors`` + ``config.json`` (and the trainer's ``train_state.pt``).

A checkpoint directory holds everything needed to rebuild and run a model without unpickling:

```
DIR/model.safetensors   weights + persistent buffers (cluster centres, covariance, ...)
DIR/config.json         {"model": ModelConfig.to_dict(), "threshold": float, "macbdf_version": str, ...extra}
DIR/train_state.pt      optional: optimizer/scheduler/RNG/step (plain tensors and types, weights_only)
```

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a crash never leaves a half-written file under the final name. The weights are
written before ``config.json``: a directory whose ``config.json`` exists always has weights.

Example:
    >>> import tempfile, macbdf
    >>> from macbdf.checkpoint import save_model, load_model
    >>> d = tempfile.mkdtemp()
    >>> save_model(macbdf.create_model("tiny"), d, extra={"threshold": 0.4})  # doctest: +SKIP
    >>> model, meta = load_model(d)                                            # doctest: +SKIP
    >>> meta["threshold"]                                                      # doctest: +SKIP
    0.4
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from macbdf.filemode import atomic_write, atomic_write_text
from macbdf.models.unwrap import unwrap_model

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_STATE_FILE = "train_state.pt"

__all__ = [
    "CheckpointError",
    "MODEL_FILE",
    "CONFIG_FILE",
    "TRAIN_STATE_FILE",
    "save_model",
    "load_model",
    "read_meta",
    "is_checkpoint",
    "save_train_state",
    "load_train_state",
    "model_from_config",
    "check_finite_state",
    "NonFiniteWeights",
]


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete or corrupt; the message is one line."""


def _model_config_dict(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise CheckpointError(f"{type(model).__name__} has no .config; cannot write config.json")
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise CheckpointError(f"model.config of type {type(cfg).__name__} has no to_dict()")


def _json_default(o: Any) -> Any:
    # numpy scalars, tensors and paths show up in "extra" from training summaries.
    if hasattr(o, "item") and callable(o.item):
        try:
            return o.item()
        except (ValueError, RuntimeError):
            pass
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class NonFiniteWeights(CheckpointError):
    """Weights or buffers hold NaN/Inf; such a model must not be saved or used."""


def check_finite_state(state: Mapping[str, Any], what: str = "model") -> None:
    """Raise `NonFiniteWeights` naming the first tensors (weights or buffers: BatchNorm statistics,
    cluster banks, queues) that hold NaN or Inf.

    Example:
        >>> check_finite_state({"w": torch.ones(2)})
        >>> check_finite_state({"bn.running_mean": torch.tensor([float("nan")])})
        Traceback (most recent call last):
        ...
        macbdf.checkpoint.NonFiniteWeights: model holds non-finite values (NaN/Inf) in bn.running_mean
    """
    bad = [k for k, v in state.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise NonFiniteWeights(f"{what} holds non-finite values (NaN/Inf) in {', '.join(bad[:3])}{more}")


def save_model(model: nn.Module, out_dir: str | os.PathLike, *, extra: Mapping[str, Any] | None = None,
               card: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/model.safetensors``, ``out_dir/config.json`` and the model card atomically.

    ``extra`` is merged into config.json (e.g. ``threshold``, ``trained_on``, ``val_auc``); a
    missing ``threshold`` defaults to 0.5. Tied/shared tensors are de-duplicated by safetensors.
    ``card`` is the model card's information (`macbdf.modelcard.build_card`); without it a card is
    written from ``extra`` that says only what is known (the data path, step, validation figures),
    so no checkpoint leaves without one. Returns the directory.

    Example:
        >>> save_model(model, "runs/a", extra={"threshold": 0.42, "trained_on": "synth"})  # doctest: +SKIP
    """
    from safetensors.torch import save_model as _st_save

    from macbdf import __version__

    model = unwrap_model(model)
    # A NaN never reaches a checkpoint: it would load fine and answer "real" for everything.
    check_finite_state(model.state_dict(), f"refusing to save {out_dir}: the model")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"model": _model_config_dict(model), "threshold": 0.5, "macbdf_version": __version__}
    for k, v in (extra or {}).items():
        if k in ("model", "macbdf_version"):
            raise ValueError(f"extra may not set {k!r}: it is written from the model and the package")
        meta[k] = v
    meta["threshold"] = float(meta["threshold"])
    text = json.dumps(meta, indent=2, default=_json_default, allow_nan=False) + "\n"

    with atomic_write(out / MODEL_FILE) as tmp:
        _st_save(model, str(tmp), metadata={"format": "pt", "macbdf_version": __version__})
    atomic_write_text(out / CONFIG_FILE, text)
    from macbdf.modelcard import write_card

    info = dict(card) if card is not None else {}
    info.setdefault("trained_on", {"data": meta.get("trained_on")} if meta.get("trained_on") else {})
    info.setdefault("figures", {k: meta[k] for k in ("step", "val_auc", "val_acc") if meta.get(k) is not None})
    info.setdefault("model", {"name": meta["model"].get("name"),
                              "parameters": int(sum(p.numel() for p in model.parameters()))})
    write_card(out, info)
    return out


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with both ``config.json`` and ``model.safetensors``."""
    p = Path(path)
    return (p / CONFIG_FILE).is_file() and (p / MODEL_FILE).is_file()


def read_meta(ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint; :class:`CheckpointError` when absent/corrupt."""
    d = Path(ckpt_dir)
    if not d.exists():
        raise CheckpointError(f"checkpoint not found: {d}")
    if not d.is_dir():
        raise CheckpointError(f"checkpoint must be a directory (with {CONFIG_FILE} and {MODEL_FILE}): {d}")
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"not a macbdf checkpoint (no {CONFIG_FILE}): {d}")
    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"corrupt {cfg_path}: {str(e).splitlines()[0]}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"corrupt {cfg_path}: no 'model' config object")
    return meta


def model_from_config(model_cfg: Mapping[str, Any]) -> nn.Module:
    """Build an (untrained) model from a ``ModelConfig.to_dict()`` mapping through the registry.

    User-supplied pretrained encoder paths are dropped: the checkpoint's own weights replace them
    anyway, and the files need not exist on the machine that loads the checkpoint.
    """
    from macbdf.models.config import ModelConfig
    from macbdf.models.registry import create_model

    cfg = ModelConfig.from_dict(dict(model_cfg))
    for k in ("pretrained_video", "pretrained_audio"):
        if hasattr(cfg, k):
            setattr(cfg, k, None)
    return create_model(cfg)


def load_model(ckpt_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from ``config.json``, load ``model.safetensors`` strictly; eval mode.

    Returns ``(model, meta)`` where ``meta`` is config.json as a dict (``meta["threshold"]``,
    ``meta["model"]`` = the ModelConfig dict). Raises :class:`CheckpointError` (one line) for a
    missing, incomplete or corrupt checkpoint, or weights that do not match the config.

    Example:
        >>> model, meta = load_model("runs/a")            # doctest: +SKIP
        >>> prob = torch.sigmoid(model(batch)["logit"])   # doctest: +SKIP
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model as _st_load

    d = Path(ckpt_dir)
    meta = read_meta(d)
    weights = d / MODEL_FILE
    if not weights.is_file():
        raise CheckpointError(f"incomplete checkpoint (no {MODEL_FILE}): {d}")
    try:
        model = model_from_config(meta["model"])
    except CheckpointError:
        raise
    except Exception as e:  # unknown model name, out-of-range or ill-typed values (validated before allocating)
        raise CheckpointError(f"cannot build the model of {d / CONFIG_FILE}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    try:
        _st_load(model, str(weights), strict=True, device="cpu")
    except SafetensorError as e:
        raise CheckpointError(f"corrupt {weights}: {str(e).splitlines()[0]}") from None
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        msg = " ".join(s.strip() for s in first[:3])[:300]
        raise CheckpointError(f"weights in {weights} do not match config.json: {msg}") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {weights}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    check_finite_state(model.state_dict(), f"{weights}")
    model.to(device)
    model.eval()
    return model, meta


def save_train_state(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """``torch.save`` a dict of tensors and plain types (no custom classes), atomically.

    Everything in ``state`` must load with ``torch.load(..., weights_only=True)``: tensors, ints,
    floats, str, bools, None, lists/tuples/dicts of those (optimizer/scheduler/GradScaler
    ``state_dict()`` are). Numpy arrays must be converted to tensors first.
    """
    final = Path(path)
    with atomic_write(final, fsync=True) as tmp:
        torch.save(dict(state), tmp)
    return final


def load_train_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load what :func:`save_train_state` wrote, with ``weights_only=True`` (no unpickling of code)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"training state not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"corrupt training state {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"corrupt training state {p}: expected a dict, got {type(state).__name__}")
    return state
