"""Temporal forgery localisation: segments from frame scores, AP@IoU and AR@N.

Protocol (LAV-DF / BA-TFD, Cai et al. 2022-2023; the same metrics as AV-Deepfake1M):

* A *proposal* is ``(score, start_s, end_s)``; a ground-truth segment is ``(start_s, end_s)``
  (a record's ``fake_periods``). IoU is the 1-D intersection over union in seconds.
* **AP@t** (t = 0.5, 0.75, 0.95): proposals of all videos are pooled and ranked by score; a
  proposal is a true positive when it matches a not yet matched ground-truth segment of its
  own video with IoU >= t, else a false positive (every proposal on a real video is a false
  positive); recall is divided by the number of ground-truth segments of all videos.
  ``protocol="standard"`` (default) matches each proposal, in score order within its video,
  to the unmatched segment of highest IoU and integrates the interpolated precision envelope
  over recall from 0 (ActivityNet / VOC all-points). ``protocol="lavdf"`` reproduces the
  reference code of LAV-DF (``metrics.py``) exactly, for numbers comparable with published
  tables: strict ``IoU > t``; each proposal takes the *first* unmatched segment (in label
  order) that it overlaps enough; AP is the sum of ``Δrecall * max precision at a higher or
  equal recall``, walked down from recall 1 -- which leaves out the stretch between recall 0
  and the first proposal's recall (so one perfect proposal for one segment scores 0 there).
* **AR@N** (N = 1, 5, 10, 20, 50, 100): for each video the N highest-scored proposals; a
  ground-truth segment is recalled at threshold t when one of them reaches IoU >= t
  (``> t`` with ``protocol="lavdf"``); recall is pooled over all segments of all videos and
  averaged over t in 0.5:0.05:0.95.

Frame scores become proposals through `segments_from_scores`: frame i covers
``[i / fps, (i + 1) / fps)``; for each threshold of a ladder the runs of consecutive frames
scoring >= threshold (gaps of up to ``merge_gap`` frames bridged, runs shorter than
``min_frames`` dropped) become segments; duplicates across thresholds are removed. A
segment's confidence is its mean frame score times one minus the mean score of its context
(a quarter of its length, at least 2 frames, on each side): a whole event outranks the
fragments that a high threshold cuts out of it. The ladder gives several nested candidates
per event, which is what AR@N needs, while the confidence ranks complete runs first for AP.

Example:
    >>> gt = {"a": [[1.0, 2.0]], "b": []}
    >>> props = {"a": [[0.9, 1.0, 2.0], [0.3, 3.0, 3.5]], "b": [[0.2, 0.0, 1.0]]}
    >>> localization_ap(props, gt, iou_thresholds=(0.5,))[0.5]
    1.0
    >>> round(localization_ar(props, gt, n_list=(1,))[1], 3)
    1.0
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from macbdf.metrics.sample import Undefined

AP_IOU_THRESHOLDS = (0.5, 0.75, 0.95)
AR_N_LIST = (1, 5, 10, 20, 50, 100)
AR_IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())
DEFAULT_LADDER = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PROTOCOLS = ("standard", "lavdf")


def iou_1d(proposals: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """IoU matrix (P, G) between segments (P, 2) and (G, 2), in the same time unit.

    Example:
        >>> iou_1d(np.array([[0.0, 2.0]]), np.array([[1.0, 3.0], [5.0, 6.0]])).tolist()
        [[0.3333333333333333, 0.0]]
    """
    p = np.asarray(proposals, dtype=np.float64).reshape(-1, 2)
    g = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(p[:, None, 1], g[None, :, 1]) - np.maximum(p[:, None, 0], g[None, :, 0]), 0, None
    )
    union = (p[:, 1] - p[:, 0])[:, None] + (g[:, 1] - g[:, 0])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def segments_from_scores(
    scores: Sequence[float] | np.ndarray,
    fps: float,
    thresholds: Iterable[float] = DEFAULT_LADDER,
    min_frames: int = 1,
    merge_gap: int = 0,
    max_segments: int | None = 100,
) -> np.ndarray:
    """Proposals ``(K, 3) = [score, start_s, end_s]`` from per-frame fake probabilities.

    Sorted by score, highest first; see the module docstring for the procedure.

    Example:
        >>> segments_from_scores([0.0, 0.9, 0.8, 0.0], fps=2.0, thresholds=(0.5,)).round(3).tolist()
        [[0.85, 0.5, 1.5]]
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0 or fps <= 0:
        return np.zeros((0, 3))
    s = np.nan_to_num(s, nan=0.0)
    found: dict[tuple[int, int], float] = {}
    for thr in thresholds:
        on = s >= thr
        if merge_gap > 0 and on.any():
            on = _close_gaps(on, merge_gap)
        # run boundaries: +1 starts, -1 ends (end index exclusive)
        edges = np.diff(np.r_[0, on.astype(np.int8), 0])
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for a, b in zip(starts, ends):
            if b - a >= min_frames and (a, b) not in found:
                found[(int(a), int(b))] = _run_confidence(s, int(a), int(b))
    if not found:
        return np.zeros((0, 3))
    out = np.array([[sc, a / fps, b / fps] for (a, b), sc in found.items()], dtype=np.float64)
    out = out[np.argsort(-out[:, 0], kind="mergesort")]
    return out[:max_segments] if max_segments else out


def _run_confidence(s: np.ndarray, a: int, b: int) -> float:
    """mean score inside [a, b) times (1 - mean score of the context on both sides).

    The context (a quarter of the run's length, at least 2 frames, per side) penalises a
    fragment cut out of a longer event by a high threshold: its neighbours score high too,
    so it ranks below the whole event (the "completeness" idea of actionness grouping).
    """
    w = max(2, int(round(0.25 * (b - a))))
    ctx = np.r_[s[max(0, a - w) : a], s[b : b + w]]
    outside = float(ctx.mean()) if ctx.size else 0.0
    return float(s[a:b].mean()) * (1.0 - outside)


def _close_gaps(on: np.ndarray, gap: int) -> np.ndarray:
    """Fill runs of at most ``gap`` False frames lying between True frames."""
    on = on.copy()
    idx = np.flatnonzero(on)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= gap + 1:
            on[a:b] = True
    return on


def _as_props(p: Sequence[Sequence[float]] | np.ndarray | None) -> np.ndarray:
    arr = np.asarray(p if p is not None else np.zeros((0, 3)), dtype=np.float64).reshape(-1, 3)
    return arr[np.argsort(-arr[:, 0], kind="mergesort")]


def _as_gt(g: Sequence[Sequence[float]] | np.ndarray | None) -> np.ndarray:
    return np.asarray(g if g is not None else np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)


def _match(props: np.ndarray, gt: np.ndarray, thr: float, protocol: str) -> np.ndarray:
    """is-TP flag per proposal (proposals already sorted by score) for one video."""
    tp = np.zeros(len(props), dtype=bool)
    if len(props) == 0 or len(gt) == 0:
        return tp
    ious = iou_1d(props[:, 1:], gt)
    used = np.zeros(len(gt), dtype=bool)
    for i in range(len(props)):
        if protocol == "lavdf":
            ok = np.flatnonzero((ious[i] > thr) & ~used)
            if ok.size:
                used[ok[0]] = tp[i] = True
        else:
            cand = np.where(used, -1.0, ious[i])
            j = int(np.argmax(cand))
            if cand[j] >= thr:
                used[j] = tp[i] = True
    return tp


def _ap_from_ranked(tp: np.ndarray, n_gt: int, protocol: str) -> float:
    if tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, tp.size + 1)
    recall = ctp / n_gt
    if protocol == "lavdf":
        # reference: curve = [(1, 0)] + points from last to first; y_max is the running max
        # of the upper (higher-recall) end of each step
        x = np.r_[1.0, recall[::-1]]
        y = np.r_[0.0, precision[::-1]]
        y_max = np.maximum.accumulate(y)
        return float(np.sum((x[:-1] - x[1:]) * y_max[:-1]))
    mrec = np.r_[0.0, recall, 1.0]
    mpre = np.r_[0.0, precision, 0.0]
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def localization_ap(
    proposals: Mapping[str, Sequence[Sequence[float]] | np.ndarray],
    ground_truth: Mapping[str, Sequence[Sequence[float]] | np.ndarray],
    iou_thresholds: Iterable[float] = AP_IOU_THRESHOLDS,
    protocol: str = "standard",
) -> dict[float, float]:
    """AP at each IoU threshold; ``proposals[vid]`` rows ``[score, start, end]``.

    Videos in ``ground_truth`` without proposals count their segments as missed; videos with
    proposals but no entry in ``ground_truth`` are taken as real (all proposals false).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    vids = list(dict.fromkeys(list(ground_truth) + list(proposals)))
    gts = {v: _as_gt(ground_truth.get(v)) for v in vids}
    props = {v: _as_props(proposals.get(v)) for v in vids}
    n_gt = sum(len(g) for g in gts.values())
    out: dict[float, float] = {}
    for thr in iou_thresholds:
        if n_gt == 0:
            out[float(thr)] = Undefined("no ground-truth fake segments")
            continue
        scores = np.concatenate([props[v][:, 0] for v in vids]) if vids else np.zeros(0)
        tps = np.concatenate([_match(props[v], gts[v], thr, protocol) for v in vids]) if vids else np.zeros(0, bool)
        order = np.argsort(-scores, kind="mergesort")
        out[float(thr)] = _ap_from_ranked(tps[order], n_gt, protocol)
    return out


def localization_ar(
    proposals: Mapping[str, Sequence[Sequence[float]] | np.ndarray],
    ground_truth: Mapping[str, Sequence[Sequence[float]] | np.ndarray],
    n_list: Iterable[int] = AR_N_LIST,
    iou_thresholds: Iterable[float] = AR_IOU_THRESHOLDS,
    protocol: str = "standard",
) -> dict[int, float]:
    """AR@N for each N, averaged over ``iou_thresholds`` (0.5:0.05:0.95 by default)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    thrs = np.asarray(list(iou_thresholds), dtype=np.float64)
    n_gt = sum(len(_as_gt(g)) for g in ground_truth.values())
    out: dict[int, float] = {}
    for n in n_list:
        if n_gt == 0:
            out[int(n)] = Undefined("no ground-truth fake segments")
            continue
        hits = np.zeros(len(thrs))
        for v, g in ground_truth.items():
            g = _as_gt(g)
            p = _as_props(proposals.get(v))[: int(n)]
            if len(g) == 0 or len(p) == 0:
                continue
            best = iou_1d(p[:, 1:], g).max(axis=0)  # (G,) best IoU per segment
            hit = best[None, :] > thrs[:, None] if protocol == "lavdf" else best[None, :] >= thrs[:, None]
            hits += hit.sum(axis=1)
        out[int(n)] = float(np.mean(hits / n_gt))
    return out
