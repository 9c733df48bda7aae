"""Detection for users: score videos with a trained MACB-DF checkpoint.

Why one file of ~640 lines: the public `Detector` API and its result types (from_pretrained, detect,
batch, stream, the verdict rules), kept together so the user-facing contract reads in one place;
windowing and the forward pass live in `macbdf.inference`.

`Detector` wraps a model and the preprocessing it was trained with. A video of any length is
decoded window by window (`macbdf.media.prepare.iter_windows`, `num_frames` frames per window, the
model's training window), windows are scored in small batches, and the per-window outputs are
merged into one `DetectionResult`. Padding, batching, the forward, the sigmoid, the aggregation and the
prefetch thread are `macbdf.inference`'s, the same code `macbdf evaluate` scores cached clips with:

* ``p_fake`` / ``p_audio_fake`` / ``p_video_fake``: sigmoid of the multimodal / audio / video
  sample logits, aggregated over windows. The default aggregation ``"mean"`` is the mean of the
  window probabilities weighted by each window's number of real (non-padded) frames, so a short
  last window counts less; ``"max"`` takes the most suspicious window instead (more sensitive to a
  short fake passage inside a long real video, at the price of more false alarms).
* ``frame_scores``: per-frame sigmoid of the frame heads, audio and video, on the video's frame
  grid (``fps`` = the checkpoint's preprocessing frame rate).
* ``segments``: contiguous runs where a frame score reaches ``frame_threshold`` (see
  `find_segments`), labelled ``audio``, ``video`` or ``both``.

Memory stays bounded on long videos: at most about ``2 * batch_windows`` windows of face crops and
log-mel are held at once (one batch being scored, one being prepared by a background thread);
only the per-frame scores (two floats per frame) grow with the length.

Example:
    >>> from macbdf import Detector                                   # doctest: +SKIP
    >>> det = Detector.from_pretrained("runs/demo/checkpoint")         # doctest: +SKIP
    >>> r = det("clip.mp4")                                            # doctest: +SKIP
    >>> r.verdict, round(r.p_fake, 3), r.segments[:1]                  # doctest: +SKIP
    ('fake', 0.912, [{'start': 1.2, 'end': 3.4, 'modality': 'audio', 'score': 0.87}])
    >>> for w in det.stream("long.mp4"):                              # doctest: +SKIP
    ...     print(w.start_s, w.p_fake)
"""
from __future__ import annotations

import dataclasses
import errno
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from macbdf.config import PreprocessConfig
from macbdf.inference import AGGREGATIONS, DEFAULT_BATCH_WINDOWS, WindowedInference, aggregate_probs

__all__ = [
    "DetectionResult",
    "VERDICTS",
    "ABSTAIN_REASONS",
    "finite_json",
    "WindowResult",
    "Detector",
    "DetectionTimeout",
    "find_segments",
    "AGGREGATIONS",
]

VERDICTS = ("real", "fake", "abstain")
# Why a result abstains (verdict "abstain", p-values None): the clip has no track that can be judged.
ABSTAIN_REASONS = ("too_short", "no_face", "video_too_small", "non_finite_input", "non_finite_output",
                   "nothing_decodable")
# Fewer frames than this (at the checkpoint's fps) are no evidence for either track: a 1-frame video,
# a PNG renamed .mp4, an audio file whose only video is its cover art. 0.2 s is also the shortest
# segment `find_segments` reports.
MIN_EVIDENCE_S = 0.2
# Flags that make a track unusable for a verdict (the other track may still decide).
_AUDIO_UNUSABLE = ("no_audio", "non_finite_audio")
_VIDEO_UNUSABLE = ("no_face", "video_too_small")
# Frame scores are rounded in the result: 4 decimals are far below any meaningful score
# difference and keep the JSON of a 10-minute video small.
_SCORE_DECIMALS = 4


def finite_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Inf) replaced by None, recursively (strict JSON).

    Example:
        >>> finite_json({"p": float("nan"), "xs": [1.0, float("inf")], "n": 2})
        {'p': None, 'xs': [1.0, None], 'n': 2}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


class DetectionTimeout(Exception):
    """Raised inside the window loop when a deadline passed (the server's per-job timeout)."""


@dataclass
class DetectionResult:
    """The answer for one input file; the fields are exactly the JSON object of `macbdf detect --json`.

    ``error`` is None when the file was scored, else a one-line reason (then the scores are None
    and ``verdict`` is None). ``verdict`` is ``real``, ``fake`` or ``abstain``: a clip with no track
    that can be judged (too short, no face and no usable audio, non-finite input or model output,
    nothing decodable) abstains with ``abstain_reason`` set and its p-values None. When only one
    track is usable the verdict rests on that track: ``p_fake`` is its unimodal probability (for a
    clip without usable audio, the multimodal head's when the model's ``no_audio_head`` is ``"fused"``),
    the other track's p-value is None, and ``flags`` says ``no_audio`` (or ``no_video``). ``frame_scores`` is ``{"audio": [...], "video": [...], "fps": f}``;
    ``segments`` is a list of ``{"start": s, "end": s, "modality": "audio"|"video"|"both",
    "score": p}`` in seconds; ``timings`` holds ``decode_prepare_s``, ``model_s``, ``total_s``.

    Example:
        >>> r = DetectionResult(path="x.mp4", error="not a media file")
        >>> r.to_dict()["verdict"] is None
        True
    """

    path: str
    p_fake: float | None = None
    p_audio_fake: float | None = None
    p_video_fake: float | None = None
    verdict: str | None = None
    threshold: float = 0.5
    frame_scores: dict[str, Any] = field(default_factory=lambda: {"audio": [], "video": [], "fps": 0.0})
    segments: list[dict[str, Any]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(
        default_factory=lambda: {"decode_prepare_s": 0.0, "model_s": 0.0, "total_s": 0.0}
    )
    duration: float | None = None
    # What the model is and is not good for (its model card, in brief) and where the threshold
    # came from: shown beside every verdict so nobody reads a synthetic-only model's "FAKE" as fact.
    model: dict[str, Any] | None = None
    abstain_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain, strictly JSON-serialisable dict (same keys as the dataclass fields; no NaN/Inf)."""
        return finite_json(asdict(self))

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class WindowResult:
    """Scores of one window of `Detector.stream` (times in seconds from the start of the video)."""

    index: int
    start_frame: int
    num_frames: int
    start_s: float
    end_s: float
    p_fake: float
    p_audio_fake: float
    p_video_fake: float
    frame_scores: dict[str, list[float]]
    flags: list[str]                 # the media pipeline's flags for the file so far (see iter_windows)
    face_coverage: float | None = None  # share of this window's frames where a face was found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_line(exc: BaseException) -> str:
    """A one-line, user-facing reason for an exception (no traceback)."""
    from macbdf.media.prepare import MediaError

    msg = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return f"symbolic link loop: {exc.filename or msg}"
    if isinstance(exc, MediaError):
        return msg or "media error"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or msg}"
    if isinstance(exc, IsADirectoryError):
        return f"is a directory: {exc.filename or msg}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or msg}"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _majority_smooth(mask: np.ndarray, k: int) -> np.ndarray:
    """Sliding majority vote over k frames (k odd): removes isolated flips in a thresholded score."""
    if k <= 1 or mask.size == 0:
        return mask
    pad = k // 2
    padded = np.pad(mask.astype(np.int32), pad, mode="edge")
    counts = np.convolve(padded, np.ones(k, dtype=np.int32), mode="valid")
    return counts > pad


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end_exclusive)] of the True runs of a 1-D boolean array."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist()))


def find_segments(
    audio: Sequence[float] | np.ndarray,
    video: Sequence[float] | np.ndarray,
    fps: float,
    threshold: float = 0.5,
    *,
    smooth_frames: int = 5,
    min_duration_s: float = 0.2,
    merge_gap_s: float = 0.2,
) -> list[dict[str, Any]]:
    """Fake segments implied by per-frame scores.

    A frame is suspicious in a modality when its score is >= ``threshold``; each modality's mask
    is smoothed by a sliding majority vote over ``smooth_frames`` frames; a segment is a run of
    frames suspicious in either modality, runs closer than ``merge_gap_s`` are joined, and
    segments shorter than ``min_duration_s`` are dropped. Its ``modality`` is
    ``both`` when each modality is suspicious on at least half of the run's frames, else the
    modality suspicious on more frames; its ``score`` is the mean score of that modality over the
    run (for ``both``, the mean of the frame-wise maximum).

    Example:
        >>> a = [0.1] * 10 + [0.9] * 10 + [0.1] * 5
        >>> v = [0.1] * 25
        >>> find_segments(a, v, fps=10.0)
        [{'start': 1.0, 'end': 2.0, 'modality': 'audio', 'score': 0.9}]
    """
    a = np.asarray(audio, dtype=np.float64)
    v = np.asarray(video, dtype=np.float64)
    n = min(a.size, v.size)
    if n == 0 or fps <= 0:
        return []
    a, v = a[:n], v[:n]
    k = max(1, int(smooth_frames))
    k = k if k % 2 == 1 else k + 1
    ma = _majority_smooth(a >= threshold, k)
    mv = _majority_smooth(v >= threshold, k)
    min_frames = max(1, int(math.ceil(min_duration_s * fps - 1e-9)))
    max_gap = int(math.floor(merge_gap_s * fps + 1e-9))
    runs: list[tuple[int, int]] = []
    for s, e in _runs(ma | mv):
        if runs and s - runs[-1][1] < max_gap:  # a short dip between two runs: one segment
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    segments: list[dict[str, Any]] = []
    for s, e in runs:
        if e - s < min_frames:
            continue
        fa, fv = float(ma[s:e].mean()), float(mv[s:e].mean())
        if fa >= 0.5 and fv >= 0.5:
            modality, score = "both", float(np.maximum(a[s:e], v[s:e]).mean())
        elif fa >= fv:
            modality, score = "audio", float(a[s:e].mean())
        else:
            modality, score = "video", float(v[s:e].mean())
        segments.append(
            {
                "start": round(s / fps, 3),
                "end": round(e / fps, 3),
                "modality": modality,
                "score": round(score, _SCORE_DECIMALS),
            }
        )
    return segments


def _merge_flags(last: list[str], own: list[str], face_coverage: float | None) -> list[str]:
    """File-level flags from the last window's (the media pipeline accumulates most of them over
    the windows seen so far) with the face flags recomputed from the whole file's face coverage
    (the pipeline computes coverage per window), plus the detector's own (``truncated``)."""
    from macbdf.media.prepare import FACE_PARTIAL_BELOW

    out = list(last)
    if face_coverage is not None:
        out = [f for f in out if f not in ("no_face", "face_partial")]
        if face_coverage == 0.0:
            out.append("no_face")
        elif face_coverage < FACE_PARTIAL_BELOW:
            out.append("face_partial")
    for f in own:
        if f not in out:
            out.append(f)
    return out


class Detector:
    """Scores videos with a MACB-DF model; see the module docstring for how windows are merged.

    Args:
        model: a `macbdf.models` MACBDF (its ``config`` gives ``num_frames`` and ``preprocess``).
        threshold: sample-level decision threshold on ``p_fake`` (the checkpoint's calibrated one).
        device: torch device string.
        frame_threshold: threshold on frame scores for segments (default: ``threshold``).
        aggregation: ``"mean"`` (frame-weighted mean of window probabilities) or ``"max"``.
        batch_windows: windows per forward pass (memory is bounded by about twice this).
        prefetch: prepare the next windows in a background thread while the model runs (the
            two stages overlap; ``timings`` then reports each stage's own time, which can add
            up to more than ``total_s``). Default (None): on for GPU devices, off on CPU, where
            the decoder thread would compete with torch's intra-op threads for the same cores
            (measured on 2 busy cores: 7.0 s instead of 2.5 s for a 3 s clip). On a CPU with
            spare cores, ``prefetch=True`` with ``torch.set_num_threads(cores - 1)`` overlaps them.
        face_detector: optional detector object passed to the media pipeline (e.g. YuNet).
        meta: the checkpoint's config dict (kept for reference, e.g. ``trained_on``).

    Example:
        >>> import macbdf                                                   # doctest: +SKIP
        >>> det = macbdf.Detector(macbdf.create_model("tiny"), threshold=0.5)  # doctest: +SKIP
        >>> det("clip.mp4").p_fake                                         # doctest: +SKIP
        0.49
    """

    def __init__(
        self,
        model: Any,
        *,
        threshold: float = 0.5,
        device: str = "cpu",
        frame_threshold: float | None = None,
        aggregation: str = "mean",
        batch_windows: int = DEFAULT_BATCH_WINDOWS,
        prefetch: bool | None = None,
        face_detector: Any = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        cfg = model.config
        pre = cfg.preprocess
        self.preprocess: PreprocessConfig = (
            pre if isinstance(pre, PreprocessConfig) else PreprocessConfig.from_dict(dict(pre))
        )
        self.num_frames = int(cfg.num_frames)
        self.threshold = float(threshold)
        self.frame_threshold = float(self.threshold if frame_threshold is None else frame_threshold)
        self.aggregation = aggregation
        self.batch_windows = max(1, int(batch_windows))
        self.prefetch = self.device.type != "cpu" if prefetch is None else bool(prefetch)
        self.face_detector = face_detector
        self.inference = WindowedInference(self.model, device=self.device, batch_windows=self.batch_windows)
        self.meta = dict(meta or {})
        from macbdf.modelcard import UNKNOWN_SUMMARY

        brief = self.meta.get("card_brief") or {"recipe": "unknown", "summary": UNKNOWN_SUMMARY, "not_for": [],
                                                 "stale": False, "calibrated_on": None}
        self.model_info: dict[str, Any] = {**brief, "threshold_source": self.meta.get("threshold_source", "argument")}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        device: str = "cpu",
        threshold: float | None = None,
        **kwargs: Any,
    ) -> "Detector":
        """Load a checkpoint directory (``model.safetensors`` + ``config.json``).

        The threshold is, in order: ``threshold`` when given; the user's calibration
        (``calibration.json``, written by `macbdf calibrate`); the trainer's validation threshold
        (``config.json["threshold"]``); 0.5. A ``frame_threshold`` in config.json sets the segment
        threshold. The model card (``model_card.json``) is read and shown in every result's ``model``.
        Raises ``macbdf.checkpoint.CheckpointError`` (one line) for a missing, incomplete or
        corrupt checkpoint.

        Example:
            >>> det = Detector.from_pretrained("runs/demo/checkpoint", device="cpu")  # doctest: +SKIP
        """
        from macbdf.checkpoint import load_model

        from macbdf.calibration import read_calibration
        from macbdf.modelcard import card_brief, read_card

        model, meta = load_model(checkpoint_dir, device)
        cal = read_calibration(checkpoint_dir)
        if threshold is not None:
            thr, source = threshold, "argument"
        elif cal is not None:
            thr, source = cal["threshold"], f"calibrated on {cal.get('n_clips')} real clips at FPR {cal.get('target_fpr')}"
        elif meta.get("threshold") is not None:
            thr, source = meta["threshold"], "validation split of the training data"
        else:
            thr, source = 0.5, "default 0.5"
        thr = float(thr)
        meta = {**meta, "calibration": cal, "card_brief": card_brief(read_card(checkpoint_dir)),
                "threshold_source": source}
        kwargs.setdefault("frame_threshold", meta.get("frame_threshold"))
        return cls(model, threshold=thr, device=device, meta=meta, **kwargs)

    # ------------------------------------------------------------------ scoring
    def _windows(
        self,
        path: str | os.PathLike[str],
        timings: dict[str, float],
        *,
        max_frames: int | None = None,
        deadline: float | None = None,
        flags_out: list[str] | None = None,
    ) -> Iterator[WindowResult]:
        """Decode, prepare and score consecutive windows (`macbdf.inference`); yields them in order."""
        from macbdf.inference import Window, prefetch
        from macbdf.media.prepare import iter_windows

        fps = float(self.preprocess.fps)
        T = self.num_frames

        def source() -> Iterator[Window]:
            # The media pipeline has a fixed cost per window it emits (audio read + log-mel call),
            # so it prepares one batch worth of frames at a time (measured ~1.3-1.8x faster than
            # T-frame windows); the chunk is then cut into model windows (views, no copies).
            chunks = iter_windows(path, self.preprocess, T * self.batch_windows, face_detector=self.face_detector,
                                  deadline=deadline)
            try:
                for chunk in chunks:
                    yield from self.inference.cut(chunk.frames, chunk.logmel, tag=chunk,
                                                  start_frame=int(chunk.start_frame))
            finally:
                chunks.close()

        stats: dict[str, float] = {}
        it: Iterator[Window] = prefetch(source, self.batch_windows, stats) if self.prefetch else source()

        def windows() -> Iterator[Window]:
            # The consumer's side: deadline, the --max-seconds cut, and (inline) the decode time.
            frames_seen = 0
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    raise DetectionTimeout("detection timed out")
                t0 = time.perf_counter()
                w = next(it, None)
                if not self.prefetch:
                    timings["decode_prepare_s"] += time.perf_counter() - t0
                if w is None:
                    return
                n = int(w.frames.shape[0])
                if n == 0:
                    continue
                if max_frames is not None and frames_seen + n > max_frames:
                    keep = max_frames - frames_seen
                    if flags_out is not None and "truncated" not in flags_out:
                        flags_out.append("truncated")
                    if keep > 0:
                        yield dataclasses.replace(w, frames=w.frames[:keep],
                                                  logmel=w.logmel[: keep * self.preprocess.mel_per_frame])
                    return
                frames_seen += n
                yield w

        index = 0
        try:
            for s in self.inference.score(windows(), timings):
                chunk = s.window.tag
                n, start = s.num_frames, s.window.start_frame
                yield WindowResult(
                    index=index,
                    start_frame=start,
                    num_frames=n,
                    start_s=round(start / fps, 3),
                    end_s=round((start + n) / fps, 3),
                    p_fake=s.p_fake,
                    p_audio_fake=s.p_audio_fake,
                    p_video_fake=s.p_video_fake,
                    frame_scores={
                        "audio": np.round(s.frame_audio.astype(np.float64), _SCORE_DECIMALS).tolist(),
                        "video": np.round(s.frame_video.astype(np.float64), _SCORE_DECIMALS).tolist(),
                    },
                    flags=list(getattr(chunk, "flags", []) or []),
                    face_coverage=(getattr(chunk, "info", None) or {}).get("face_coverage"),
                )
                index += 1
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # releases the container if we stopped early
            timings["decode_prepare_s"] += stats.get("busy_s", 0.0)

    def stream(self, path: str | os.PathLike[str]) -> Iterator[WindowResult]:
        """Yield one `WindowResult` per window, in order, as soon as its batch is scored.

        Unlike `__call__`, errors are raised (``macbdf.media.MediaError`` with a one-line reason).

        Example:
            >>> for w in det.stream("long.mp4"):      # doctest: +SKIP
            ...     print(f"{w.start_s:6.1f}s {w.p_fake:.2f}")
        """
        timings = {"decode_prepare_s": 0.0, "model_s": 0.0}
        yield from self._windows(path, timings)

    def detect(
        self,
        path: str | os.PathLike[str],
        *,
        max_frames: int | None = None,
        timeout_s: float | None = None,
        display_path: str | None = None,
    ) -> DetectionResult:
        """Score one file; never raises for bad input (the result's ``error`` says why).

        A clip that cannot be judged gets ``verdict == "abstain"`` and an ``abstain_reason``.

        ``max_frames`` stops after that many frames (flag ``truncated``); ``timeout_s`` gives up
        between windows once exceeded (error ``detection timed out``); ``display_path`` is the
        name reported in ``path`` (the server reports the upload's name, not its temp file).
        """
        from macbdf.media.decode import MediaTimeout, NothingDecodable

        t_start = time.perf_counter()
        deadline = None if timeout_s is None else time.monotonic() + float(timeout_s)
        timings = {"decode_prepare_s": 0.0, "model_s": 0.0, "total_s": 0.0}
        fps = float(self.preprocess.fps)
        result = DetectionResult(
            path=str(path) if display_path is None else display_path,
            threshold=self.threshold,
            frame_scores={"audio": [], "video": [], "fps": fps},
            timings=timings,
            model=dict(self.model_info),
        )
        flags: list[str] = []
        fa: list[float] = []
        fv: list[float] = []
        win_p: list[tuple[float, float, float, int]] = []
        last_flags: list[str] = []
        face_found = 0.0
        face_known = True
        try:
            # os.stat follows links: a loop raises ELOOP (reported as such, not as "file not found").
            st = os.stat(path)
            if os.path.isdir(path):
                raise IsADirectoryError(21, "is a directory", str(path))
            del st
            for w in self._windows(path, timings, max_frames=max_frames, deadline=deadline, flags_out=flags):
                fa.extend(w.frame_scores["audio"])
                fv.extend(w.frame_scores["video"])
                win_p.append((w.p_fake, w.p_audio_fake, w.p_video_fake, w.num_frames))
                last_flags = w.flags
                if w.face_coverage is None:
                    face_known = False
                else:
                    face_found += w.face_coverage * w.num_frames
            if not win_p:
                raise NothingDecodable("no frames could be decoded")
        except NothingDecodable:
            # A media file whose video has no decodable frame: nothing to judge, which is an answer.
            result.verdict, result.abstain_reason = "abstain", "nothing_decodable"
            result.flags = flags
            timings["total_s"] = round(time.perf_counter() - t_start, 4)
            return result
        except Exception as e:  # bad input must become a flagged result, never abort a batch
            timed_out = isinstance(e, (DetectionTimeout, MediaTimeout))
            result.error = "detection timed out" if timed_out else _one_line(e)
            result.flags = flags
            timings["total_s"] = round(time.perf_counter() - t_start, 4)
            for k in ("decode_prepare_s", "model_s"):
                timings[k] = round(timings[k], 4)
            return result

        probs = np.asarray([p[:3] for p in win_p], dtype=np.float64)  # (W, 3)
        weights = np.asarray([p[3] for p in win_p], dtype=np.float64)  # (W,)
        agg = aggregate_probs(probs, weights, self.aggregation)
        result.flags = _merge_flags(last_flags, flags, face_found / len(fa) if face_known else None)
        result.duration = round(len(fa) / fps, 3)
        self._decide(result, agg, fa, fv, fps)
        timings["total_s"] = round(time.perf_counter() - t_start, 4)
        for k in ("decode_prepare_s", "model_s"):
            timings[k] = round(timings[k], 4)
        return result

    def _decide(self, result: DetectionResult, agg: np.ndarray, fa: list[float], fv: list[float], fps: float) -> None:
        """Verdict from the usable tracks only (see `DetectionResult`); sets p-values, scores, segments."""
        flags = result.flags
        n = len(fa)
        audio_ok = not any(f in flags for f in _AUDIO_UNUSABLE)
        video_ok = not any(f in flags for f in _VIDEO_UNUSABLE)
        reason = None
        if n < max(1, math.ceil(MIN_EVIDENCE_S * fps - 1e-9)):
            reason = "too_short"
        elif not audio_ok and not video_ok:
            reason = ("non_finite_input" if "non_finite_audio" in flags
                      else next(f for f in _VIDEO_UNUSABLE if f in flags))
        if reason is None:
            p_all, p_a, p_v = (float(x) for x in agg)
            fused = video_ok and (audio_ok or self.model.config.no_audio_head == "fused")
            used = ([p_all] if fused else []) + ([p_a] if audio_ok else []) + ([p_v] if video_ok else [])
            scores = (fa if audio_ok else []) + (fv if video_ok else [])
            # NaN weights or an overflowing input give NaN logits: that is no evidence either way.
            if not all(math.isfinite(x) for x in used) or not np.isfinite(np.asarray(scores, np.float64)).all():
                reason = "non_finite_output"
        if reason is not None:
            result.verdict, result.abstain_reason = "abstain", reason
            result.p_fake = result.p_audio_fake = result.p_video_fake = None
            result.frame_scores = {"audio": [], "video": [], "fps": fps}
            result.segments = []
            return
        if audio_ok and video_ok:
            p_fake = p_all
        elif video_ok:
            # the multimodal head saw silence: decide on the video track alone, unless the model
            # was trained with silent clips of both classes (config.no_audio_head == "fused")
            p_fake = p_all if self.model.config.no_audio_head == "fused" else p_v
            if "no_audio" not in flags:
                flags.append("no_audio")
        else:
            p_fake = p_a
            if "no_video" not in flags:
                flags.append("no_video")
        result.p_fake = round(p_fake, 6)
        result.p_audio_fake = round(p_a, 6) if audio_ok else None
        result.p_video_fake = round(p_v, 6) if video_ok else None
        result.verdict = "fake" if result.p_fake >= self.threshold else "real"
        ka, kv = (fa if audio_ok else []), (fv if video_ok else [])
        result.frame_scores = {"audio": ka, "video": kv, "fps": fps}
        zeros = [0.0] * n
        result.segments = find_segments(ka or zeros, kv or zeros, fps, self.frame_threshold)

    def __call__(self, path: str | os.PathLike[str]) -> DetectionResult:
        """Score one file (see `detect`)."""
        return self.detect(path)

    def batch(self, paths: Iterable[str | os.PathLike[str]], *, progress: bool = False) -> list[DetectionResult]:
        """Score several files one after the other; a bad file gets an error result, the rest go on.

        Files are processed sequentially (windows of one file are batched); memory stays that of
        one file.

        Example:
            >>> results = det.batch(["a.mp4", "b.mkv"])   # doctest: +SKIP
            >>> [r.verdict for r in results]              # doctest: +SKIP
            ['real', 'fake']
        """
        paths = list(paths)
        if progress:
            from tqdm.auto import tqdm

            it: Iterable[Any] = tqdm(paths, desc="detect", unit="file")
        else:
            it = paths
        return [self.detect(p) for p in it]
