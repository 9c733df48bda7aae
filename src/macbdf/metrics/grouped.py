"""Grouped metrics: per category (RVRA/RVFA/FVRA/FVFA), per manipulation method, per modality,
and frame-level AUC.

Protocol for a group that holds one class only (every fake category, every method): ACC is
the fraction of that group's samples classified correctly, and AUC/AP/EER are computed on
the group together with all real samples (label 0) of the evaluated split -- "this kind of
fake against the reals", the usual per-category reading on FakeAVCeleb. For the real group
(RVRA / method "real") AUC is undefined and says so.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 1, 1]); s = np.array([0.1, 0.3, 0.9, 0.2, 0.8])
    >>> cats = ["RVRA", "RVRA", "FVRA", "RVFA", "FVFA"]
    >>> g = grouped_metrics(y, s, cats)
    >>> g["RVFA"]["acc"], g["FVRA"]["auc"]
    (0.0, 1.0)
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from macbdf.metrics.sample import (
    ArrayLike,
    Undefined,
    accuracy,
    average_precision,
    binary_metrics,
    eer,
    roc_auc,
)

CATEGORY_ORDER = ("RVRA", "RVFA", "FVRA", "FVFA")


def group_metrics(
    y_true: ArrayLike, y_score: ArrayLike, mask: np.ndarray, threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics of the samples selected by ``mask`` (see the module docstring for the protocol)."""
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    ys, ss = y[mask], s[mask]
    out: dict[str, Any] = {
        "n": int(mask.sum()),
        "n_fake": int((ys == 1).sum()),
        "acc": accuracy(ys, ss, 0.5),
        "acc_thr": accuracy(ys, ss, threshold),
        "mean_score": float(ss.mean()) if ss.size else Undefined("no samples"),
    }
    if ys.size and (ys == 1).all():
        # one fake group against every real sample of the split
        ref = mask | (y == 0)
        if not (y[ref] == 0).any():
            why = "no real samples to compare this group against"
            out.update(auc=Undefined(why), ap=Undefined(why), eer=Undefined(why))
            return out
        yr, sr = y[ref], s[ref]
        out["auc"] = roc_auc(yr, sr)
        out["ap"] = average_precision(yr, sr)
        out["eer"] = eer(yr, sr)[0]
        out["vs"] = "real samples of the split"
    elif ys.size and (ys == 0).all():
        why = "real-only group (AUC of a fake group is measured against these samples)"
        out.update(auc=Undefined(why), ap=Undefined(why), eer=Undefined(why))
    else:
        out["auc"] = roc_auc(ys, ss)
        out["ap"] = average_precision(ys, ss)
        out["eer"] = eer(ys, ss)[0]
    return out


def grouped_metrics(
    y_true: ArrayLike,
    y_score: ArrayLike,
    groups: Sequence[str | None],
    threshold: float = 0.5,
    order: Iterable[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics per group name (None groups are skipped); ``order`` fixes the key order.

    Example:
        >>> g = grouped_metrics([0, 1], [0.2, 0.7], ["real", "wav2lip"])
        >>> sorted(g), g["wav2lip"]["auc"]
        (['real', 'wav2lip'], 1.0)
    """
    names = np.asarray([g if g is not None else "" for g in groups], dtype=object)
    present = [g for g in dict.fromkeys(names.tolist()) if g != ""]
    if order is not None:
        order = list(order)
        present = [g for g in order if g in present] + sorted(g for g in present if g not in order)
    else:
        present = sorted(present)
    return {g: group_metrics(y_true, y_score, names == g, threshold) for g in present}


def modality_metrics(
    labels: dict[str, ArrayLike], scores: dict[str, ArrayLike], threshold: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Per-modality metrics from the unimodal heads, each against that modality's own label.

    ``labels = {"audio": audio_label, "video": video_label}``, ``scores`` likewise with the
    sigmoid of ``audio_logit``/``video_logit``. Samples whose modality label is unknown
    (NaN or negative) are left out.

    Example:
        >>> m = modality_metrics({"audio": [0, 1]}, {"audio": [0.3, 0.6]})
        >>> m["audio"]["auc"]
        1.0
    """
    out = {}
    for mod, s in scores.items():
        if mod not in labels:
            continue
        y = np.asarray(labels[mod], dtype=np.float64).reshape(-1)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        keep = np.isfinite(y) & (y >= 0)
        out[mod] = binary_metrics(y[keep], s[keep], threshold)
    return out


def frame_level_auc(
    frame_labels: Sequence[ArrayLike], frame_scores: Sequence[ArrayLike]
) -> float:
    """AUC over all valid frames of all videos pooled (frame label vs frame score).

    Each element is one video's frames (padded frames already removed). The pooled
    reading is the one of LAV-DF/AV-Deepfake1M frame-level AUC.

    Example:
        >>> frame_level_auc([[0, 0, 1], [1, 0]], [[0.1, 0.2, 0.9], [0.8, 0.3]])
        1.0
    """
    if len(frame_labels) == 0:
        return Undefined("no frames")
    y = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in frame_labels])
    s = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in frame_scores])
    return roc_auc(y, s)
