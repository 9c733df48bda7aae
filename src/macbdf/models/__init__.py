"""The MACB-DF model (paper §3) as a library: configs, the network, and its training objectives.

Modules: `registry` (create_model / list_models / get_model_config / register_model_config),
`config` (ModelConfig), `encoders` (§3.1), `contrastive` (Eq. 2-8), `clustering` (Eq. 9),
`fusion` (Eq. 10, §3.3 RFMF), `multiscale` (Eq. 11-18), `heads` (§3.4), `macbdf` (the model),
`losses` (MACBCriterion, Eq. 19-20 + L_C). `docs/paper-map.md` maps every equation to its code.

Example:
    >>> from macbdf.models import create_model, MACBCriterion
    >>> model = create_model("tiny")
    >>> batch = model.dummy_batch(batch_size=2)
    >>> losses = MACBCriterion(model.config)(model(batch), batch)
    >>> bool(losses["multimodal"] > 0)
    True
"""
from __future__ import annotations

from typing import Any

from macbdf.models.config import ModelConfig
from macbdf.models.registry import create_model, get_model_config, list_models, register_model_config

__all__ = ["ModelConfig", "create_model", "get_model_config", "list_models", "register_model_config",
           "MACBDF", "MACBCriterion"]


def __getattr__(name: str) -> Any:
    if name == "MACBDF":
        from macbdf.models.macbdf import MACBDF

        return MACBDF
    if name == "MACBCriterion":
        from macbdf.models.losses import MACBCriterion

        return MACBCriterion
    raise AttributeError(f"module 'macbdf.models' has no attribute {name!r}")
