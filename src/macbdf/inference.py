"""Windowed inference: a clip of any length -> model windows -> batched forward -> one clip score.

One implementation for `macbdf.detect.Detector` (windows decoded from a video file),
`macbdf_train.evaluate` (windows of cached samples) and the trainer's validation (its logits ->
probabilities), in the spirit of pyannote.audio's ``Inference``. The steps::

    cut        frames (n, S, S, 3) uint8 + logmel (n * mpf, M)  ->  Window (t <= T frames) ...
    pad        macbdf.data.windows.pad_window: black frames, log(log_eps) log-mel, frame_mask
    batch      video (B, T, 3, S, S) float in [0, 1], audio (B, T * mpf, M), frame_mask (B, T)
    forward    model(batch) under inference_mode, `batch_windows` windows at a time
    sigmoid    logits -> probabilities (`macbdf.metrics.sigmoid`, float64)
    aggregate  "mean": window probabilities weighted by their real frames; "max": the most suspicious
    prefetch   `prefetch` prepares the next windows in a thread while the model runs (optional)

Example:
    >>> import numpy as np, torch, macbdf
    >>> _ = torch.manual_seed(0)
    >>> inf = WindowedInference(macbdf.create_model("tiny", ms_depth=0), batch_windows=2)
    >>> frames = np.zeros((20, 96, 96, 3), np.uint8)                 # 20 frames, T = 8: windows of 8, 8, 4
    >>> logmel = np.full((20 * 4, 64), -5.0, np.float32)
    >>> scores = list(inf.score(inf.cut(frames, logmel)))
    >>> [s.num_frames for s in scores], [s.window.start_frame for s in scores]
    ([8, 8, 4], [0, 8, 16])
    >>> p = aggregate(scores)                                         # frame-weighted mean
    >>> sorted(p), 0.0 < p["p_fake"] < 1.0, scores[2].frame_audio.shape
    (['p_audio_fake', 'p_fake', 'p_video_fake'], True, (4,))
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from macbdf.config import PreprocessConfig
from macbdf.data.windows import pad_window, silence_logmel, window_starts
from macbdf.metrics.sample import sigmoid

__all__ = ["AGGREGATIONS", "DEFAULT_BATCH_WINDOWS", "Window", "WindowScores", "WindowedInference", "aggregate", "aggregate_probs",
           "prefetch", "sigmoid"]

AGGREGATIONS = ("mean", "max")
# Windows per forward pass of detection (and frames the media pipeline prepares per chunk: 16 x T).
# On 2 CPU cores a 10 s clip is detected in 4.6x its decode time with 16, 5.5x with 8, 6.2x with 4
# and 4.9x with 32 (benchmarks/RESULTS.md `## speed (session 7)`); memory stays bounded at about
# 2 x 16 windows of crops plus one 16-window forward.
DEFAULT_BATCH_WINDOWS = 16
PROB_KEYS = (("p_fake", "logit"), ("p_audio_fake", "audio_logit"), ("p_video_fake", "video_logit"))
EMB_KEYS = ("emb_fused", "emb_audio", "emb_video")


@dataclass
class Window:
    """Up to ``T`` consecutive frames of a clip, not yet padded."""

    frames: np.ndarray      # uint8 (t, S, S, 3), t <= T
    logmel: np.ndarray      # (m, n_mels) log-mel, m <= t * mel_per_frame (float16 or float32)
    start_frame: int = 0    # index of the first frame in the clip
    tag: Any = None         # the caller's (a PreparedClip, a sample index, ...), handed back in WindowScores


@dataclass
class WindowScores:
    """The model's answer for one window (probabilities, not logits)."""

    window: Window
    num_frames: int                 # real (non-padded) frames t
    p_fake: float                   # multimodal head
    p_audio_fake: float             # unimodal audio head
    p_video_fake: float             # unimodal video head
    frame_audio: np.ndarray         # float64 (t,) frame head, audio
    frame_video: np.ndarray         # float64 (t,) frame head, video
    logits: dict[str, float] = field(default_factory=dict)      # logit, audio_logit, video_logit
    emb: dict[str, np.ndarray] = field(default_factory=dict)    # (D,) each; with embeddings=True only


def aggregate_probs(probs: np.ndarray, weights: np.ndarray, how: str = "mean") -> np.ndarray:
    """(W, K) window probabilities, (W,) weights -> (K,) clip probabilities ("mean" weighted, or "max").

    Example:
        >>> aggregate_probs(np.array([[0.2], [0.8]]), np.array([3.0, 1.0])).round(6).tolist()
        [0.35]
        >>> aggregate_probs(np.array([[0.2], [0.8]]), np.array([3.0, 1.0]), "max").tolist()
        [0.8]
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    probs = np.asarray(probs, dtype=np.float64)
    if how == "max":
        return probs.max(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    return (probs * w[:, None]).sum(axis=0) / w.sum()


def aggregate(scores: Sequence[WindowScores], how: str = "mean") -> dict[str, float]:
    """Clip probabilities ``p_fake``, ``p_audio_fake``, ``p_video_fake`` from its windows' scores.

    "mean" weights each window by its real frames (at least 1), so a short last window counts less;
    "max" takes the most suspicious window.
    """
    probs = np.array([[getattr(s, k) for k, _ in PROB_KEYS] for s in scores], dtype=np.float64)  # (W, 3)
    weights = np.array([max(s.num_frames, 1) for s in scores], dtype=np.float64)                 # (W,)
    agg = aggregate_probs(probs, weights, how)
    return {k: float(v) for (k, _), v in zip(PROB_KEYS, agg)}


def prefetch(make_iter: Callable[[], Iterator[Any]], depth: int,
             stats: dict[str, float] | None = None) -> Iterator[Any]:
    """``make_iter()`` run in a background thread at most ``depth`` items ahead (`read_ahead`);
    ``stats["busy_s"]`` adds up its working time. Close the result to stop it early."""
    from macbdf.media.decode import read_ahead   # (PyAV, OpenCV: only when prefetching)

    return read_ahead(_lazy(make_iter), depth, stats)


def _lazy(make_iter: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    # The source is created in the producer's thread, on its first item.
    it = make_iter()
    try:
        yield from it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


class WindowedInference:
    """Scores windows of clips with a model, ``batch_windows`` windows per forward pass.

    Args:
        model: a MACB-DF model; its ``config`` gives ``num_frames`` (T) and ``preprocess``.
        device: torch device the model runs on (the model is not moved here).
        batch_windows: windows per forward pass.
        embeddings: also return the pooled embeddings (``emb_*``) of each window.
    """

    def __init__(self, model: Any, *, device: Any = "cpu", batch_windows: int = DEFAULT_BATCH_WINDOWS, embeddings: bool = False) -> None:
        import torch

        self.model = model
        self.device = torch.device(device)
        cfg = model.config
        pre = cfg.preprocess
        self.preprocess: PreprocessConfig = (pre if isinstance(pre, PreprocessConfig)
                                             else PreprocessConfig.from_dict(dict(pre)))
        self.num_frames = int(cfg.num_frames)
        self.mel_per_frame = int(self.preprocess.mel_per_frame)
        self.face_size = int(self.preprocess.face_size)
        self.pad_logmel = silence_logmel(self.preprocess)
        self.batch_windows = max(1, int(batch_windows))
        self.embeddings = bool(embeddings)

    def cut(self, frames: np.ndarray, logmel: np.ndarray, tag: Any = None, start_frame: int = 0) -> Iterator[Window]:
        """Consecutive T-frame windows of a whole clip (views, no copies); one empty window for an
        empty clip. ``frames`` (n, S, S, 3) uint8, ``logmel`` (n * mpf, M)."""
        T, mpf = self.num_frames, self.mel_per_frame
        for s in window_starts(int(frames.shape[0]), T):
            e = min(s + T, int(frames.shape[0]))
            yield Window(frames=frames[s:e], logmel=logmel[s * mpf: e * mpf], start_frame=start_frame + s, tag=tag)

    def forward(self, windows: Sequence[Window]) -> list[WindowScores]:
        """Score up to any number of windows in one forward pass (padding each to T frames)."""
        import torch

        S = self.face_size
        padded = []
        for w in windows:
            if w.frames.shape[0] and tuple(w.frames.shape[1:3]) != (S, S):
                raise RuntimeError(f"face crops are {w.frames.shape[1]}x{w.frames.shape[2]}, "
                                   f"the model expects {S}x{S}")
            frames = w.frames if w.frames.shape[0] else np.zeros((0, S, S, 3), np.uint8)
            padded.append(pad_window(frames, w.logmel, self.num_frames, self.mel_per_frame, self.pad_logmel))
        video = np.stack([p.video for p in padded])    # (B, T, S, S, 3) uint8
        audio = np.stack([p.audio for p in padded])    # (B, T * mpf, M) float32
        mask = np.stack([p.mask for p in padded])      # (B, T) bool
        keys = [k for _, k in PROB_KEYS] + ["frame_logit_audio", "frame_logit_video"]
        keys += list(EMB_KEYS) if self.embeddings else []
        with torch.inference_mode():
            # (B, T, S, S, 3) uint8 -> (B, T, 3, S, S) float in [0, 1]; the model normalises.
            v = torch.from_numpy(video).to(self.device).permute(0, 1, 4, 2, 3).float().div_(255.0)
            batch = {"video": v, "audio": torch.from_numpy(audio).to(self.device),
                     "frame_mask": torch.from_numpy(mask).to(self.device)}
            out = self.model(batch)
            res = {k: out[k].detach().float().cpu().numpy() for k in keys if k in out}
        scores = []
        for i, (w, p) in enumerate(zip(windows, padded)):
            t = p.length
            logits = {k: float(res[k][i]) for _, k in PROB_KEYS}
            probs = {name: float(sigmoid(res[k][i])) for name, k in PROB_KEYS}
            scores.append(WindowScores(
                window=w, num_frames=t, **probs,
                frame_audio=sigmoid(res["frame_logit_audio"][i, :t]),
                frame_video=sigmoid(res["frame_logit_video"][i, :t]),
                logits=logits,
                emb={k: res[k][i].reshape(-1) for k in EMB_KEYS if k in res},
            ))
        return scores

    def score(self, windows: Iterable[Window], timings: dict[str, float] | None = None) -> Iterator[WindowScores]:
        """Score windows in order, ``batch_windows`` at a time; yields each window's scores as soon
        as its batch is done. ``timings["model_s"]`` (when given) adds up the forward time."""
        pending: list[Window] = []
        for w in windows:
            pending.append(w)
            if len(pending) >= self.batch_windows:
                yield from self._timed_forward(pending, timings)
                pending = []
        if pending:
            yield from self._timed_forward(pending, timings)

    def _timed_forward(self, windows: list[Window], timings: dict[str, float] | None) -> list[WindowScores]:
        t0 = time.perf_counter()
        out = self.forward(windows)
        if timings is not None:
            timings["model_s"] = timings.get("model_s", 0.0) + time.perf_counter() - t0
        return out
