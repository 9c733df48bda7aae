"""Decision thresholds calibrated on a user's own real clips.

A model trained elsewhere scores a user's footage on its own scale: the threshold that
separated its validation split may call every one of the user's real clips fake. Calibration
scores clips the user knows to be real and puts the threshold where at most a chosen share of
them (the false-positive rate) would be called fake. It is stored with the checkpoint, in
``calibration.json`` beside ``config.json``, and `Detector.from_pretrained` uses it.

``calibration.json``::

    {"threshold": t, "target_fpr": 0.05, "n_clips": 40, "n_called_fake": 1, "fpr_on_clips": 0.025,
     "fpr_upper95": 0.13, "clips": [{"path": ..., "p_fake": ...}], "created": ..., "history": [...]}

``fpr_upper95`` is the exact (Clopper-Pearson) one-sided 95 % upper bound on the false-positive
rate given how many calibration clips were called fake: with few clips the rate cannot be pinned
down, and the number says how far it may be off. A new calibration keeps the previous ones in
``history``; nothing a user made is lost.

Example:
    >>> t = threshold_at_fpr([0.1, 0.2, 0.3, 0.4, 0.9], 0.2)
    >>> 0.4 < t <= 0.9 and sum(s >= t for s in [0.1, 0.2, 0.3, 0.4, 0.9]) == 1
    True
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

CALIBRATION_FILE = "calibration.json"


class CalibrationError(ValueError):
    """Calibration cannot be done with what was given (the message is one line)."""


def threshold_at_fpr(real_scores: Sequence[float], target_fpr: float) -> float:
    """The threshold (verdict fake when ``p >= threshold``) that calls at most
    ``floor(n * target_fpr)`` of these real clips fake.

    It lies midway between the last score that may be called fake and the next one below it,
    so a real clip scoring a little above a calibration clip is not flipped by rounding. When no
    clip may be called fake, it lies just above the highest score. Ties at the boundary are all
    kept below it (the rate is then lower than allowed, never higher), except a score of exactly
    1.0, which is fake at every threshold in [0, 1].
    """
    s = np.asarray([float(x) for x in real_scores], dtype=np.float64)
    if s.size == 0:
        raise CalibrationError("no real clip could be scored")
    if not np.all(np.isfinite(s)):
        raise CalibrationError("non-finite scores among the real clips")
    if not 0.0 <= target_fpr < 1.0:
        raise CalibrationError(f"--fpr must be in [0, 1), got {target_fpr}")
    desc = np.sort(s)[::-1]
    k = int(math.floor(s.size * target_fpr + 1e-9))  # clips allowed above the threshold
    if k == 0:
        return float(min(1.0, np.nextafter(desc[0], np.inf)))
    if k >= s.size:
        return float(desc[-1])
    hi, lo = float(desc[k - 1]), float(desc[k])
    return (hi + lo) / 2.0 if hi > lo else float(np.nextafter(lo, np.inf))


def _binom_cdf(k: int, n: int, p: float) -> float:
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound for a binomial rate with ``k`` events in ``n`` trials."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = k / n, 1.0
    for _ in range(80):  # bisection: P(X <= k | p) decreases in p
        mid = (lo + hi) / 2
        if _binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def calibrate_scores(scored: Iterable[Mapping[str, Any]], target_fpr: float) -> dict[str, Any]:
    """The calibration record for clips given as ``{"path": ..., "p_fake": ...}`` (known real)."""
    clips = [{"path": str(c["path"]), "p_fake": float(c["p_fake"])} for c in scored]
    thr = threshold_at_fpr([c["p_fake"] for c in clips], target_fpr)
    n = len(clips)
    called = sum(c["p_fake"] >= thr for c in clips)
    rec: dict[str, Any] = {
        "threshold": thr,
        "target_fpr": float(target_fpr),
        "n_clips": n,
        "n_called_fake": int(called),
        "fpr_on_clips": called / n,
        "fpr_upper95": round(clopper_pearson_upper(int(called), n), 4),
        "smallest_checkable_fpr": round(1.0 / n, 4),
        "clips": clips,
    }
    if target_fpr > 0 and n * target_fpr < 1:
        rec["warning"] = (f"{n} clips cannot show a false-positive rate of {target_fpr:g}: the threshold is set above "
                          f"every clip; use at least {math.ceil(1 / target_fpr)} real clips")
    return rec


def read_calibration(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The stored calibration of a checkpoint, or None (absent or unreadable: then it is not used)."""
    p = Path(ckpt_dir) / CALIBRATION_FILE
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict):
        return None
    t = rec.get("threshold")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 0.0 <= t <= 1.0:
        return None
    return rec


def write_calibration(ckpt_dir: str | os.PathLike, rec: Mapping[str, Any]) -> dict[str, Any]:
    """Store ``rec`` as the checkpoint's calibration; the previous one moves into ``history``."""
    from macbdf.filemode import atomic_write_text

    d = Path(ckpt_dir)
    old = read_calibration(d)
    out = dict(rec)
    out["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = []
    if old is not None:
        history = list(old.pop("history", []) or [])
        old.pop("clips", None)  # keep the history small: the numbers, not every clip again
        history.append(old)
    out["history"] = history
    atomic_write_text(d / CALIBRATION_FILE, json.dumps(out, indent=2, allow_nan=False) + "\n")
    return out


def calibration_brief(rec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the model card and results say about a calibration."""
    if not rec:
        return None
    return {k: rec.get(k) for k in ("threshold", "target_fpr", "n_clips", "fpr_on_clips", "fpr_upper95", "created")}
