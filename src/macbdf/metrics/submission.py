"""The benchmarks' own file formats: write them from detections, score them against dataset metadata.

Formats (AV-Deepfake1M challenge, https://deepfakes1m.github.io; LAV-DF / BA-TFD):

* ``av1m-cls`` - classification: a text file, one ``file;score`` line per video (no header),
  ``score`` = probability that the video is fake. Scored by AUC against the metadata, where a video
  is fake when its ``fake_segments`` list is non-empty (as the official ``avdeepfake1m`` package).
* ``av1m-loc`` - temporal localisation: one JSON object ``{file: [[score, start_s, end_s], ...]}``.
  Every video has at least one proposal (the official loader panics on an empty list): where the
  frame scores give no segment, the whole clip is proposed with the clip's mean frame score.
  Scored by AP at IoU 0.5 / 0.75 / 0.9 / 0.95 and AR@50/30/20/10/5 averaged over IoU 0.5:0.05:0.95
  with the reference matching rules (`localization_ap` / `localization_ar`, ``protocol="lavdf"``,
  which equal the official ``avdeepfake1m._evaluation.ap_1d`` / ``ar_1d``).
* ``lavdf`` - BA-TFD style segment lists: a folder with one CSV per video, at the metadata's
  ``file`` path with ``.csv`` for the extension, header ``begin,end,score``, ``begin`` / ``end`` in
  frames (end exclusive) at the clip's frame rate. Scored against LAV-DF ``metadata.json``
  (``fake_periods`` in seconds; frames -> seconds with ``video_frames / duration``, else ``--fps``)
  by AP@0.5/0.75/0.95 and AR@100/50/20/10 (LAV-DF's table), same matching rules.

File keys: a detection's key is its path relative to ``root`` (POSIX separators) when given, else
the path as given. When scoring, a metadata ``file`` matches the prediction with the same key, or
else the one prediction whose key ends with ``/<file>`` (so absolute paths still match).

Example:
    >>> text = av1m_classification_text([("a.mp4", 0.9), ("b.mp4", 0.1)])
    >>> text.splitlines()
    ['a.mp4;0.9', 'b.mp4;0.1']
    >>> ground = [{"file": "a.mp4", "fake_segments": [[1.0, 2.0]]}, {"file": "b.mp4", "fake_segments": []}]
    >>> score_av1m_classification(parse_av1m_classification(text), ground)["auc"]
    1.0
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from macbdf.metrics.localization import localization_ap, localization_ar, segments_from_scores
from macbdf.metrics.sample import roc_auc

__all__ = [
    "FORMATS", "AV1M_AP_IOU", "AV1M_AR_N", "LAVDF_AP_IOU", "LAVDF_AR_N", "AR_IOU",
    "SubmissionError", "submission_key", "av1m_classification_text", "parse_av1m_classification",
    "clip_proposals", "av1m_localization_json", "parse_av1m_localization", "lavdf_segment_csv",
    "parse_lavdf_segment_csv", "load_metadata", "score_av1m_classification", "score_av1m_localization",
    "score_lavdf_segments", "score_submission", "write_submission_files",
]

FORMATS = ("av1m-cls", "av1m-loc", "lavdf")
AV1M_AP_IOU = (0.5, 0.75, 0.9, 0.95)
AV1M_AR_N = (50, 30, 20, 10, 5)
LAVDF_AP_IOU = (0.5, 0.75, 0.95)
LAVDF_AR_N = (100, 50, 20, 10)
AR_IOU = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


class SubmissionError(ValueError):
    """A malformed submission or metadata file; the message names the file (and line)."""


def submission_key(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """The file key of a video: relative to ``root`` (POSIX) when given and below it, else as given.

    Example:
        >>> submission_key("/data/av1m/test/id1/a.mp4", "/data/av1m/test")
        'id1/a.mp4'
    """
    p = os.path.abspath(os.fspath(path))
    if root is not None:
        r = os.path.abspath(os.fspath(root))
        if os.path.commonpath([p, r]) == r:
            return PurePosixPath(*Path(os.path.relpath(p, r)).parts).as_posix()
    return Path(os.fspath(path)).as_posix()


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def av1m_classification_text(items: Iterable[tuple[str, float | None]]) -> str:
    """``file;score`` lines; items without a finite score (failed / abstained videos) are left out."""
    lines = []
    for key, score in items:
        if ";" in key or "\n" in key:
            raise SubmissionError(f"a file key cannot contain ';' or a newline: {key!r}")
        if _finite(score):
            lines.append(f"{key};{float(score):.6g}")
    return "".join(line + "\n" for line in lines)


def parse_av1m_classification(text: str, where: str = "submission") -> dict[str, float]:
    """``{file: score}`` from ``file;score`` lines (blank lines skipped)."""
    out: dict[str, float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        key, sep, val = line.rpartition(";")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = float(val)
        except ValueError:
            raise SubmissionError(f"{where}:{n}: expected 'file;score', got {line[:80]!r}") from None
    return out


def clip_proposals(frame_scores: Mapping[str, Any], duration: float | None = None,
                   max_proposals: int = 100) -> list[list[float]]:
    """Localisation proposals ``[[score, start_s, end_s], ...]`` of one clip from its frame scores.

    Per frame the higher of the audio and video scores (a fake in either track), then
    `segments_from_scores` (threshold ladder, nested candidates, ranked). Never empty: without a
    segment (or without frame scores) the whole clip is proposed with its mean frame score.

    Example:
        >>> clip_proposals({"audio": [0.1, 0.1, 0.1, 0.1], "video": [0.1, 0.9, 0.9, 0.1], "fps": 2.0})[0]
        [0.81, 0.5, 1.5]
    """
    a = np.asarray(frame_scores.get("audio") or [], dtype=np.float64)
    v = np.asarray(frame_scores.get("video") or [], dtype=np.float64)
    fps = float(frame_scores.get("fps") or 0.0)
    n = max(a.size, v.size)
    s = np.full(n, np.nan)
    if n:
        s = np.fmax(np.pad(a, (0, n - a.size), constant_values=np.nan), np.pad(v, (0, n - v.size), constant_values=np.nan))
    props = segments_from_scores(s, fps, max_segments=max_proposals) if n and fps > 0 else np.zeros((0, 3))
    if len(props):
        return [[round(float(x), 6) for x in row] for row in props]
    end = float(duration) if duration else (n / fps if n and fps > 0 else 0.0)
    mean = float(np.nanmean(s)) if n and np.isfinite(s).any() else 0.0
    return [[round(mean, 6), 0.0, round(end, 6)]]


def av1m_localization_json(proposals: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """The AV-Deepfake1M localisation JSON; refuses an empty proposal list (the official loader panics)."""
    for key, rows in proposals.items():
        if not rows:
            raise SubmissionError(f"video {key!r} has no proposal (AV-Deepfake1M needs at least one)")
    return json.dumps({k: [[float(x) for x in r] for r in rows] for k, rows in proposals.items()})


def parse_av1m_localization(text: str, where: str = "submission") -> dict[str, np.ndarray]:
    """``{file: (K, 3) [score, start_s, end_s]}`` from the localisation JSON."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise SubmissionError(f"{where}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise SubmissionError(f"{where}: expected a JSON object {{file: [[score, start, end], ...]}}")
    out = {}
    for key, rows in obj.items():
        try:
            arr = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise SubmissionError(f"{where}: {key}: proposals must be [score, start, end] triples") from None
        out[str(key)] = arr
    return out


def lavdf_segment_csv(proposals: Sequence[Sequence[float]], fps: float) -> str:
    """BA-TFD style ``begin,end,score`` CSV (frames, end exclusive) from ``[score, start_s, end_s]`` rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["begin", "end", "score"])
    for score, start, end in proposals:
        w.writerow([int(round(start * fps)), int(round(end * fps)), f"{float(score):.6g}"])
    return buf.getvalue()


def parse_lavdf_segment_csv(text: str, fps: float, where: str = "segments") -> np.ndarray:
    """``(K, 3) [score, start_s, end_s]`` from a ``begin,end,score`` CSV in frames."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return np.zeros((0, 3))
    head = [c.strip().lower() for c in rows[0]]
    if sorted(head) != ["begin", "end", "score"]:
        raise SubmissionError(f"{where}:1: expected the header begin,end,score, got {','.join(rows[0])!r}")
    ib, ie, isc = head.index("begin"), head.index("end"), head.index("score")
    out = []
    for n, r in enumerate(rows[1:], 2):
        if not r:
            continue
        try:
            out.append([float(r[isc]), float(r[ib]) / fps, float(r[ie]) / fps])
        except (ValueError, IndexError):
            raise SubmissionError(f"{where}:{n}: expected numbers begin,end,score, got {','.join(r)!r}") from None
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def load_metadata(path: str | os.PathLike) -> list[dict[str, Any]]:
    """AV-Deepfake1M ``*_metadata.json`` or LAV-DF ``metadata.json``: a JSON list of objects with ``file``."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SubmissionError(f"cannot read metadata {path}: {e.__class__.__name__}") from None
    except json.JSONDecodeError as e:
        raise SubmissionError(f"{path}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, list) or not all(isinstance(x, dict) and isinstance(x.get("file"), str) for x in obj):
        raise SubmissionError(f"{path}: expected a JSON list of objects with a 'file' field")
    return obj


def _segments_of(item: Mapping[str, Any]) -> list[list[float]]:
    # AV-Deepfake1M: fake_segments; LAV-DF: fake_periods (both in seconds)
    segs = item.get("fake_segments", item.get("fake_periods"))
    return [[float(a), float(b)] for a, b in (segs or [])]


def _match_keys(files: Sequence[str], keys: Iterable[str]) -> dict[str, str]:
    """metadata file -> prediction key: the same key, or else the one key ending with '/' + file."""
    keys = list(keys)
    exact = set(keys)
    by_name: dict[str, list[str]] = {}
    for k in keys:
        by_name.setdefault(PurePosixPath(k).name, []).append(k)
    out = {}
    for f in files:
        if f in exact:
            out[f] = f
            continue
        cands = [k for k in by_name.get(PurePosixPath(f).name, []) if k.endswith("/" + f)]
        if len(cands) == 1:
            out[f] = cands[0]
    return out


def score_av1m_classification(scores: Mapping[str, float], metadata: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """AUC of ``file;score`` predictions; fake = non-empty ``fake_segments`` (official reading).

    Videos of the metadata without a prediction are listed in ``missing`` and left out of the AUC
    (the official scorer would stop with a KeyError).
    """
    files = [m["file"] for m in metadata]
    match = _match_keys(files, scores)
    y = [int(bool(_segments_of(m))) for m in metadata if m["file"] in match]
    s = [float(scores[match[m["file"]]]) for m in metadata if m["file"] in match]
    return {"format": "av1m-cls", "n": len(y), "n_fake": int(sum(y)), "auc": roc_auc(y, s),
            "missing": [f for f in files if f not in match],
            "unmatched_predictions": len(set(scores) - set(match.values()))}


def _loc_report(fmt: str, props: Mapping[str, np.ndarray], metadata: Sequence[Mapping[str, Any]],
                ap_iou: Sequence[float], ar_n: Sequence[int], missing: list[str], extra: int) -> dict[str, Any]:
    gt = {m["file"]: _segments_of(m) for m in metadata}
    ap = localization_ap(props, gt, iou_thresholds=ap_iou, protocol="lavdf")
    ar = localization_ar(props, gt, n_list=ar_n, iou_thresholds=AR_IOU, protocol="lavdf")
    return {"format": fmt, "n": len(gt), "n_segments": sum(len(g) for g in gt.values()),
            "ap": {str(k): v for k, v in ap.items()}, "ar": {str(k): v for k, v in ar.items()},
            "missing": missing, "unmatched_predictions": extra}


def score_av1m_localization(proposals: Mapping[str, np.ndarray], metadata: Sequence[Mapping[str, Any]],
                            ap_iou: Sequence[float] = AV1M_AP_IOU, ar_n: Sequence[int] = AV1M_AR_N) -> dict[str, Any]:
    """AP@IoU and AR@N of a localisation JSON against the metadata (a video without proposals misses)."""
    files = [m["file"] for m in metadata]
    match = _match_keys(files, proposals)
    props = {f: proposals[match[f]] for f in files if f in match}
    return _loc_report("av1m-loc", props, metadata, ap_iou, ar_n, [f for f in files if f not in match],
                       len(set(proposals) - set(match.values())))


def _fps_of(item: Mapping[str, Any], default: float) -> float:
    frames, dur = item.get("video_frames"), item.get("duration")
    if _finite(frames) and _finite(dur) and float(dur) > 0 and float(frames) > 0:
        return float(frames) / float(dur)
    return default


def score_lavdf_segments(folder: str | os.PathLike, metadata: Sequence[Mapping[str, Any]], fps: float = 25.0,
                         ap_iou: Sequence[float] = LAVDF_AP_IOU, ar_n: Sequence[int] = LAVDF_AR_N) -> dict[str, Any]:
    """AP / AR of a folder of ``begin,end,score`` CSVs (``<file without extension>.csv``)."""
    root = Path(folder)
    props: dict[str, np.ndarray] = {}
    missing = []
    for m in metadata:
        p = root / PurePosixPath(m["file"]).with_suffix(".csv")
        if not p.is_file():
            missing.append(m["file"])
            continue
        props[m["file"]] = parse_lavdf_segment_csv(p.read_text(encoding="utf-8"), _fps_of(m, fps), where=str(p))
    return _loc_report("lavdf", props, metadata, ap_iou, ar_n, missing, 0)


def score_submission(submission: str | os.PathLike, metadata: str | os.PathLike, fmt: str,
                     fps: float = 25.0) -> dict[str, Any]:
    """Score a submission file (or, for ``lavdf``, folder) against metadata; see the module docstring.

    Example:
        >>> score_submission("pred.json", "test_metadata.json", "av1m-loc")["ap"]["0.5"]   # doctest: +SKIP
        0.41
    """
    if fmt not in FORMATS:
        raise SubmissionError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    meta = load_metadata(metadata)
    if fmt == "lavdf":
        if not Path(submission).is_dir():
            raise SubmissionError(f"--format lavdf needs a folder of begin,end,score CSVs: {submission}")
        return score_lavdf_segments(submission, meta, fps=fps)
    try:
        text = Path(submission).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SubmissionError(f"cannot read submission {submission}: {e.__class__.__name__}") from None
    if fmt == "av1m-cls":
        return score_av1m_classification(parse_av1m_classification(text, str(submission)), meta)
    return score_av1m_localization(parse_av1m_localization(text, str(submission)), meta)


def write_submission_files(results: Sequence[Any], *, av1m_cls: str | os.PathLike | None = None,
                           av1m_loc: str | os.PathLike | None = None,
                           lavdf_segments: str | os.PathLike | None = None,
                           root: str | os.PathLike | None = None) -> dict[str, int]:
    """Write the chosen benchmark files from detection results (objects or dicts with ``path``,
    ``p_fake``, ``frame_scores``, ``duration``, ``error``); failed videos are left out.

    Returns counts: ``written`` videos and ``skipped`` (failed, or no finite score). Writes are atomic.

    Example:
        >>> write_submission_files(det_results, av1m_cls="cls.txt", av1m_loc="loc.json")  # doctest: +SKIP
        {'written': 12, 'skipped': 0}
    """
    from macbdf.filemode import atomic_write_text

    def get(r: Any, k: str) -> Any:
        return r.get(k) if isinstance(r, Mapping) else getattr(r, k, None)

    ok = [r for r in results if not get(r, "error") and _finite(get(r, "p_fake"))]
    keys = [submission_key(get(r, "path"), root) for r in ok]
    if len(set(keys)) != len(keys):
        raise SubmissionError("two inputs map to the same file key; give --submission-root so keys stay unique")
    if av1m_cls:
        atomic_write_text(av1m_cls, av1m_classification_text(zip(keys, (get(r, "p_fake") for r in ok))))
    props = {k: clip_proposals(get(r, "frame_scores") or {}, get(r, "duration")) for k, r in zip(keys, ok)}
    if av1m_loc:
        atomic_write_text(av1m_loc, av1m_localization_json(props))
    if lavdf_segments:
        base = Path(lavdf_segments)
        for k, r in zip(keys, ok):
            fps = float((get(r, "frame_scores") or {}).get("fps") or 25.0)
            atomic_write_text(base / PurePosixPath(k.lstrip("/")).with_suffix(".csv"), lavdf_segment_csv(props[k], fps))
    return {"written": len(ok), "skipped": len(results) - len(ok)}
