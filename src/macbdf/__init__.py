"""macbdf: audio-visual deepfake detection with MACB-DF (ICMR 2025).

Example:
    >>> import macbdf
    >>> "tiny" in macbdf.list_models()
    True
    >>> m = macbdf.create_model("tiny")
    >>> out = m(m.dummy_batch(batch_size=2))
    >>> out["logit"].shape
    torch.Size([2])
"""
from __future__ import annotations

import os
from typing import Any

# Idle OpenMP threads spin by default; on a small shared machine (2 cores) that starves the
# threads doing work and made the model ~80x slower in measurements (benchmarks/RESULTS.md).
# Only takes effect when macbdf is imported before torch; users can override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "get_model_config", "Detector", "DetectionResult"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import macbdf` (and the CLI's --help) does not pay for torch.
    if name in ("create_model", "list_models", "get_model_config"):
        from macbdf.models import registry

        return getattr(registry, name)
    if name in ("Detector", "DetectionResult"):
        from macbdf import detect

        return getattr(detect, name)
    raise AttributeError(f"module 'macbdf' has no attribute {name!r}")
