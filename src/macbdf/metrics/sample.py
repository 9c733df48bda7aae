"""Sample-level binary metrics in pure numpy: ACC, best threshold, ROC/AUC, AP, EER.

Scores are probabilities of "fake" (label 1); a sample is predicted fake when
``score >= threshold``. Every function accepts array-likes and returns plain floats.

Degenerate inputs never raise: an empty input, a single class, or non-finite scores give
``Undefined`` -- a float NaN that carries a human-readable ``reason`` -- so a batch of
evaluations goes on and the report can say why a number is missing.

Example:
    >>> import math, numpy as np
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.4, 0.35, 0.8])
    >>> roc_auc(y, s)
    0.75
    >>> accuracy(y, s)
    0.75
    >>> r = roc_auc([1, 1], [0.2, 0.9]); (math.isnan(r), r.reason)
    (True, 'only one class present (2 fake, 0 real)')
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


class Undefined(float):
    """NaN with a reason, e.g. ``Undefined("only one class present")``.

    It is a real ``float`` (``math.isnan`` is true, arithmetic propagates NaN), so code that
    does not care about the reason keeps working; ``reason_of(x)`` reads it back.
    """

    reason: str

    def __new__(cls, reason: str) -> "Undefined":
        obj = super().__new__(cls, float("nan"))
        obj.reason = reason
        return obj

    def __repr__(self) -> str:
        return f"Undefined({self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Undefined, (self.reason,))


def reason_of(x: Any) -> str | None:
    """The reason attached to an `Undefined` value, "not a number" for a bare NaN, else None."""
    if isinstance(x, Undefined):
        return x.reason
    if isinstance(x, float) and math.isnan(x):
        return "not a number"
    return None


def _clean(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Validate and flatten; returns (y, s, reason-if-degenerate)."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        return y, s, f"labels and scores differ in length ({y.size} vs {s.size})"
    if y.size == 0:
        return y, s, "no samples"
    if not np.all(np.isfinite(s)):
        return y, s, f"{int((~np.isfinite(s)).sum())} non-finite score(s)"
    if not np.all((y == 0) | (y == 1)):
        return y, s, "labels must be 0 or 1"
    return y.astype(np.int64), s, None


def _two_class_reason(y: np.ndarray) -> str | None:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return f"only one class present ({n_pos} fake, {n_neg} real)"
    return None


def accuracy(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of samples with ``(score >= threshold) == label``.

    Example:
        >>> accuracy([0, 1, 1], [0.2, 0.7, 0.4])
        0.6666666666666666
    """
    y, s, why = _clean(y_true, y_score)
    if why:
        return Undefined(why)
    return float(np.mean((s >= threshold).astype(np.int64) == y))


def balanced_accuracy(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Mean of the true-positive and true-negative rates at ``threshold``."""
    y, s, why = _clean(y_true, y_score)
    why = why or _two_class_reason(y)
    if why:
        return Undefined(why)
    pred = s >= threshold
    return float(0.5 * (pred[y == 1].mean() + (~pred[y == 0]).mean()))


def _distinct_desc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP/FP counts at each distinct score, scores visited high to low.

    Tied scores form one operating point (as sklearn), which makes AUC equal to the
    Mann-Whitney statistic with ties counted one half.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[ends].astype(np.float64)
    fps = (ends + 1 - tps).astype(np.float64)
    return tps, fps, s_sorted[ends]


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve: (fpr, tpr, thresholds), starting at (0, 0) with threshold +inf.

    Same points as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``. On a
    degenerate input the three arrays are empty.

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 1], [0.2, 0.9]); fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """
    y, s, why = _clean(y_true, y_score)
    why = why or _two_class_reason(y)
    if why:
        empty = np.zeros(0)
        return empty, empty, empty
    tps, fps, thr = _distinct_desc(y, s)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, thr]


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids; ties count one half).

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9])
        0.875
    """
    y, s, why = _clean(y_true, y_score)
    why = why or _two_class_reason(y)
    if why:
        return Undefined(why)
    fpr, tpr, _ = roc_curve(y, s)
    # trapezoids by hand: np.trapezoid needs numpy >= 2, np.trapz is gone there
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision: sum over distinct thresholds of (R_n - R_{n-1}) * P_n.

    The step-wise definition of ``sklearn.metrics.average_precision_score`` (no
    interpolation). Needs at least one fake sample; with no real samples it is 1.

    Example:
        >>> average_precision([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.6])
        0.8333333333333333
    """
    y, s, why = _clean(y_true, y_score)
    if why:
        return Undefined(why)
    if y.sum() == 0:
        return Undefined(f"no fake samples among {y.size}")
    tps, fps, _ = _distinct_desc(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def eer(y_true: ArrayLike, y_score: ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold where it occurs: (eer, threshold).

    The ROC is walked from high to low threshold; FPR rises and FNR = 1 - TPR falls, and
    the crossing is found by linear interpolation between the two ROC points that bracket
    it (the usual definition, e.g. in ASVspoof tools). The threshold is interpolated the
    same way (an infinite end point is replaced by the nearest finite score).

    Example:
        >>> eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0]
        0.0
    """
    y, s, why = _clean(y_true, y_score)
    why = why or _two_class_reason(y)
    if why:
        return Undefined(why), Undefined(why)
    fpr, tpr, thr = roc_curve(y, s)
    fnr = 1.0 - tpr
    thr = thr.copy()
    thr[0] = thr[1]  # +inf start point: use the highest score
    diff = fnr - fpr  # starts at 1, ends at -1 (monotone non-increasing)
    i = int(np.nonzero(diff <= 0)[0][0])
    if diff[i] == 0 or i == 0:
        return float(fpr[i]), float(thr[i])
    # crossing between point i-1 (diff > 0) and i (diff < 0)
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    e = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    th = thr[i - 1] + t * (thr[i] - thr[i - 1])
    return float(e), float(th)


def best_threshold(y_true: ArrayLike, y_score: ArrayLike, criterion: str = "acc") -> float:
    """Threshold maximising ``criterion`` ("acc", "balanced_acc" or "youden") on (y, s).

    Used on the validation split, then applied to test (the paper's "best threshold"
    protocol). Candidates are the midpoints between consecutive distinct scores plus one
    point below the lowest and above the highest, so the chosen threshold never sits on a
    sample's score. Ties go to the candidate closest to 0.5 (the untuned default).

    Example:
        >>> round(best_threshold([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9]), 6)
        0.65
    """
    y, s, why = _clean(y_true, y_score)
    if why:
        return Undefined(why)
    u = np.unique(s)
    cand = np.r_[u[0] - 1e-6, (u[:-1] + u[1:]) / 2.0, u[-1] + 1e-6]
    pred = s[None, :] >= cand[:, None]  # (C, N)
    pos = y == 1
    tp = (pred & pos).sum(1)
    tn = (~pred & ~pos).sum(1)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if criterion == "acc":
        score = (tp + tn) / y.size
    elif criterion in ("balanced_acc", "youden"):
        if n_pos == 0 or n_neg == 0:
            return Undefined(_two_class_reason(y) or "")
        score = tp / n_pos + tn / n_neg  # Youden J + 1 = 2 * balanced accuracy
    else:
        raise ValueError(f"unknown criterion {criterion!r}; use acc, balanced_acc or youden")
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0, atol=1e-12))
    pick = best[np.argmin(np.abs(cand[best] - 0.5))]
    return float(cand[pick])


def binary_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """All sample-level figures for one set of scores.

    Returns ``n, n_fake, n_real, acc (at 0.5), acc_thr (at threshold), threshold, auc, ap,
    eer, eer_threshold``; undefined entries are `Undefined` with a reason.

    Example:
        >>> m = binary_metrics([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4]); m["auc"], m["acc"]
        (1.0, 1.0)
    """
    y, s, why = _clean(y_true, y_score)
    n = int(y.size)
    n_fake = int(np.sum(y == 1)) if not why else 0
    e, e_thr = eer(y, s)
    return {
        "n": n,
        "n_fake": n_fake,
        "n_real": n - n_fake if not why else 0,
        "acc": accuracy(y, s, 0.5),
        "acc_thr": accuracy(y, s, threshold),
        "threshold": float(threshold),
        "auc": roc_auc(y, s),
        "ap": average_precision(y, s),
        "eer": e,
        "eer_threshold": e_thr,
    }


def sigmoid(x: ArrayLike) -> np.ndarray:
    """Numerically stable logistic function (logits -> probabilities)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out
