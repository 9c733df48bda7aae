"""Evaluation metrics (pure numpy) and plots for audio-visual deepfake detection.

* sample level: `accuracy`, `best_threshold`, `roc_curve`, `roc_auc`, `average_precision`,
  `eer`, `binary_metrics`;
* grouped: `grouped_metrics` (per category / method), `modality_metrics` (unimodal heads
  against each modality's label), `frame_level_auc`;
* temporal localisation: `segments_from_scores`, `localization_ap` (AP@IoU),
  `localization_ar` (AR@N), LAV-DF protocol documented in `macbdf.metrics.localization`;
* plots (matplotlib Agg) in `macbdf.metrics.plots` (imported on use).

Undefined results (one class only, no samples) are `Undefined` -- a NaN carrying a reason.

Example:
    >>> from macbdf.metrics import roc_auc, eer
    >>> roc_auc([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.35])
    0.75
"""
from __future__ import annotations

import math
from typing import Any

from macbdf.metrics.grouped import (
    CATEGORY_ORDER,
    frame_level_auc,
    group_metrics,
    grouped_metrics,
    modality_metrics,
)
from macbdf.metrics.localization import (
    AP_IOU_THRESHOLDS,
    AR_IOU_THRESHOLDS,
    AR_N_LIST,
    iou_1d,
    localization_ap,
    localization_ar,
    segments_from_scores,
)
from macbdf.metrics.sample import (
    Undefined,
    accuracy,
    average_precision,
    balanced_accuracy,
    best_threshold,
    binary_metrics,
    eer,
    reason_of,
    roc_auc,
    roc_curve,
    sigmoid,
)

__all__ = [
    "AP_IOU_THRESHOLDS", "AR_IOU_THRESHOLDS", "AR_N_LIST", "CATEGORY_ORDER", "Undefined",
    "accuracy", "average_precision", "balanced_accuracy", "best_threshold", "binary_metrics",
    "eer", "frame_level_auc", "group_metrics", "grouped_metrics", "iou_1d", "jsonable",
    "localization_ap", "localization_ar", "modality_metrics", "reason_of", "roc_auc",
    "roc_curve", "segments_from_scores", "sigmoid",
]


def jsonable(obj: Any, notes: dict[str, str] | None = None, _path: str = "") -> Any:
    """Strict-JSON copy of a metrics structure: NaN/inf -> None, numpy -> Python, dict keys -> str.

    When ``notes`` is given, the reason of every undefined value is stored there under its
    dotted path (e.g. ``notes["per_category.RVRA.auc"]``), so a JSON report keeps the why.

    Example:
        >>> n = {}; jsonable({"auc": roc_auc([1], [0.5])}, n), n
        ({'auc': None}, {'auc': 'only one class present (1 fake, 0 real)'})
    """
    import numpy as np

    if isinstance(obj, dict):
        return {
            str(k): jsonable(v, notes, f"{_path}.{k}" if _path else str(k)) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, notes, f"{_path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), notes, _path)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        if notes is not None:
            notes[_path] = reason_of(obj) or ("infinite" if not math.isnan(f) else "not a number")
        return None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
