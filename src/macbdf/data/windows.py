"""Model windows of a clip: where they start and how a short one is padded (the single rule).

Training (`macbdf.data.dataset.CacheDataset`), evaluation and detection (`macbdf.inference`) all
pad here. A window holds ``T = num_frames`` video frames and ``T * mel_per_frame`` log-mel rows. A
window with fewer frames (the end of a clip, or a clip shorter than ``T``) is padded with black
frames and log-mel rows of ``log(log_eps)`` -- the floor of Eq. 1, i.e. silence (0 would read as a
loud sound) -- and its ``mask`` is False on the padding. Log-mel rows missing at the end of the real
frames (an audio stream a little shorter than the video) are silence too.

Example:
    >>> import numpy as np
    >>> w = pad_window(np.ones((3, 8, 8, 3), np.uint8), np.zeros((10, 4), np.float16), 5, 4, -23.0)
    >>> w.video.shape, w.audio.shape, w.mask.tolist(), w.length
    ((5, 8, 8, 3), (20, 4), [True, True, True, False, False], 3)
    >>> float(w.audio[9, 0]), float(w.audio[10, 0])      # rows 10, 11 of frame 2 had no audio
    (0.0, -23.0)
    >>> list(window_starts(20, 8)), list(window_starts(0, 8))
    ([0, 8, 16], [0])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macbdf.config import PreprocessConfig

__all__ = ["PaddedWindow", "pad_window", "silence_logmel", "window_starts"]


def silence_logmel(cfg: PreprocessConfig) -> float:
    """The log-mel value of silence, ``log(cfg.log_eps)``: the padding of every window."""
    return float(np.log(cfg.log_eps))


def window_starts(num_frames: int, window: int) -> range:
    """First frames of the consecutive ``window``-frame windows covering ``num_frames`` frames
    (one window, empty, for an empty clip)."""
    return range(0, max(1, int(num_frames)), int(window))


@dataclass
class PaddedWindow:
    video: np.ndarray   # uint8   (T, S, S, 3)       black after `length`
    audio: np.ndarray   # float32 (T * mel_per_frame, n_mels)  log(log_eps) where there is no audio
    mask: np.ndarray    # bool    (T,)               True on the `length` real frames
    length: int         # real frames t <= T


def pad_window(frames: np.ndarray, logmel: np.ndarray, num_frames: int, mel_per_frame: int,
               pad_logmel: float) -> PaddedWindow:
    """Pad (or cut) ``frames`` (t, S, S, 3) uint8 and ``logmel`` (m, n_mels) to one model window.

    Only the first ``min(t, num_frames)`` frames and the log-mel rows that belong to them are kept.
    """
    T, mpf = int(num_frames), int(mel_per_frame)
    t = min(int(frames.shape[0]), T)
    video = np.zeros((T,) + tuple(frames.shape[1:]), dtype=np.uint8)
    video[:t] = frames[:t]
    audio = np.full((T * mpf, int(logmel.shape[1])), pad_logmel, dtype=np.float32)
    m = min(int(logmel.shape[0]), t * mpf)
    audio[:m] = logmel[:m]
    mask = np.zeros(T, dtype=bool)
    mask[:t] = True
    return PaddedWindow(video=video, audio=audio, mask=mask, length=t)
