"""Named model configs and the `create_model` factory.

Example:
    >>> from macbdf.models.registry import create_model, list_models, get_model_config
    >>> sorted(set(["tiny", "small", "base"]) - set(list_models()))
    []
    >>> m = create_model("tiny", use_contrastive=False)   # an ablation
    >>> m.config.use_contrastive
    False
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from macbdf.models.config import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    from macbdf.models.macbdf import MACBDF

_REGISTRY: dict[str, ModelConfig] = {}


def register_model_config(name: str, cfg: ModelConfig) -> None:
    """Register (or replace) a named config; `cfg.name` is set to `name`."""
    cfg = copy.deepcopy(cfg)
    cfg.name = name
    _REGISTRY[name] = cfg.validate()


def list_models() -> list[str]:
    """Names of the registered configs, in registration order."""
    return list(_REGISTRY)


def get_model_config(name: str) -> ModelConfig:
    """A fresh copy of a named config (editing it does not change the registry)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
    return copy.deepcopy(_REGISTRY[name])


def resolve_config(name_or_cfg: str | ModelConfig | dict[str, Any], **overrides: Any) -> ModelConfig:
    """Named config / ModelConfig / dict plus overrides -> validated ModelConfig.

    ``fusion="concat"`` is the paper-style plain concatenation baseline: unless the caller also sets
    them explicitly, it turns off contrastive learning and the fusion weights.
    """
    if isinstance(name_or_cfg, ModelConfig):
        cfg = copy.deepcopy(name_or_cfg)
    elif isinstance(name_or_cfg, dict):
        cfg = ModelConfig.from_dict(name_or_cfg)
    else:
        cfg = get_model_config(name_or_cfg)
    if overrides.get("fusion") == "concat":
        overrides.setdefault("use_contrastive", False)
        overrides.setdefault("use_fusion_weights", False)
    if overrides:
        cfg = cfg.replace(**overrides)
    return cfg.validate()


def create_model(name: str | ModelConfig | dict[str, Any] = "small", **overrides: Any) -> "MACBDF":
    """Build a randomly initialised MACB-DF model (plus user-supplied encoder weights if configured).

    Example:
        >>> m = create_model("tiny", modality="audio")
        >>> out = m(m.dummy_batch(batch_size=2))
        >>> sorted(out)[:3]
        ['audio_logit', 'emb_audio', 'emb_fused']
    """
    from macbdf.models.macbdf import MACBDF

    return MACBDF(resolve_config(name, **overrides))


# ---------------------------------------------------------------- named configs
register_model_config(
    "tiny",
    ModelConfig(
        description="unit tests: forward+backward in a fraction of a second on CPU",
        num_frames=8, dim=32, video_depth=1, audio_depth=1, heads=2, mlp_ratio=2.0,
        patch_size=32, tubelet=2, audio_patch_mels=16, ms_depth=2,
        lka_specs=((5, 2), (7, 2)), rfmf_depth=1, contrast_dim=16, queue_size=64, k_neg=8,
        cluster_bank_size=128, cluster_every=20, temp_hidden=8,
    ),
)
register_model_config(
    "small",
    ModelConfig(
        description="CPU demo: trains in minutes on 2 cores on a few hundred clips",
        num_frames=16, dim=64, video_depth=2, audio_depth=2, heads=4, mlp_ratio=2.0,
        # Video tokens come from a 5-layer conv-BN-ReLU stem (stride 32, one 32-px cell per token):
        # trained from scratch on a few hundred clips, the plain linear patch embedding never fits
        # the visual traces, not even on the training set (benchmarks/RESULTS.md, demo_learnability).
        patch_size=32, video_stem=64, video_stem_layers=5, tubelet=2, audio_patch_mels=16, ms_depth=2,
        lka_specs=((5, 2), (9, 3)), rfmf_depth=1, contrast_dim=32, queue_size=256, k_neg=16,
        cluster_bank_size=512, cluster_every=50,
        # No dropout in the classifier: the demo budget (~250 CPU steps) leaves every model underfitting
        # (RESULTS.md, demo_learnability), where dropout only slows fitting (measured 74.1 vs 70.6 test AUC).
        drop_head=0.0,
        # Temporal audio-visual synchrony (our extension, models/sync.py): without it no run learnt the
        # fakes that show only as a lip/speech mismatch (audio swap, lip-sync without visual trace,
        # the inserted stretch of a splice); see RESULTS.md, sync.
        sync_dim=32,
        # Audio tokens from a conv-BN stem too: vocoder and channel traces are fine spectral detail
        # that per-token LayerNorms divide out, as with video (RESULTS.md, "## sync").
        audio_stem=32,
    ),
)
register_model_config(
    "base",
    ModelConfig(
        description="paper-scale (ms_depth 6) for a GPU",
        num_frames=32, dim=192, video_depth=6, audio_depth=4, heads=6, mlp_ratio=4.0,
        patch_size=16, tubelet=2, audio_patch_mels=8, ms_depth=6, dropout=0.1, drop_head=0.3,
        lka_specs=((5, 2), (9, 3), (13, 3)), rfmf_depth=2, contrast_dim=128, queue_size=4096, k_neg=64,
        cluster_bank_size=2048, cluster_every=200, temp_hidden=32,
    ),
)
