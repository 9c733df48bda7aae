"""Log-mel spectrogram of the paper's Eq. 1, on a time axis shared with the video frames.

Eq. 1:  M(t, m) = sum_f H_m(f) |S(t, f)|^2,   output = log(M + eps)

* ``S``: short-time Fourier transform, periodic Hann window of ``win_ms`` (400 samples at 16 kHz)
  zero-padded centred to ``n_fft`` (512), frames *centred* on their time stamp (the signal is
  zero-padded by ``n_fft // 2`` at both ends), i.e. librosa's ``center=True, pad_mode="constant"``.
* ``H_m``: triangular mel filters on the **Slaney** mel scale (linear below 1 kHz, logarithmic above)
  with Slaney area normalisation (each filter has unit area in Hz) -- librosa's default
  (``htk=False, norm="slaney"``). ``htk=True`` switches to the HTK scale ``2595 log10(1 + f/700)``
  (same normalisation). We keep Slaney as the default because it is what most audio-visual
  deepfake detectors' front ends (librosa-based) use; the paper does not say.
* Time axis: mel frame ``j`` is centred at sample ``round(j * sr / (fps * mel_per_frame))``, so
  video frame ``t`` owns mel frames ``[t * mel_per_frame, (t + 1) * mel_per_frame)`` and the two
  streams never drift. With the defaults (16 kHz, 25 fps, 4 mel frames per video frame) the step is
  exactly the configured 10 ms hop (160 samples); for other frame rates the hop is the nearest one
  that divides the video frame period (e.g. 30 fps: 3 frames of 11.1 ms).

Example:
    >>> import numpy as np
    >>> from macbdf.config import PreprocessConfig
    >>> cfg = PreprocessConfig()
    >>> x = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    >>> log_mel_spectrogram(x, cfg, num_frames=100).shape
    (100, 64)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from macbdf.config import PreprocessConfig

_BLOCK = 2048   # frames per FFT block: bounds memory on hour-long audio


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz -> mel (Slaney's Auditory Toolbox scale, or HTK's when ``htk``)."""
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None, htk: bool = False) -> np.ndarray:
    """Triangular mel filters ``H`` of Eq. 1, Slaney area-normalised; (n_mels, n_fft // 2 + 1) float64.

    Example:
        >>> mel_filterbank(16000, 512, 64).shape
        (64, 257)
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2), htk)
    widths = np.diff(edges)                                   # (n_mels + 1,)
    ramps = edges[:, None] - fft_freqs[None, :]               # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]                   # rising edge of filter m
    upper = ramps[2:] / widths[1:, None]                      # falling edge
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]      # unit area per filter
    return weights


def stft_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded centred to ``n_fft``; float64 (n_fft,)."""
    n = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    out = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    out[left: left + win_length] = w
    return out


def stft_params(cfg: PreprocessConfig) -> dict[str, Any]:
    """Integer STFT settings derived from the config (window and FFT sizes in samples, step)."""
    win = int(round(cfg.sample_rate * cfg.win_ms / 1000.0))
    n_fft = max(int(cfg.n_fft), win)
    step = cfg.sample_rate / (cfg.fps * cfg.mel_per_frame)   # samples between mel frame centres
    return {"win_length": win, "n_fft": n_fft, "step": step,
            "hop_length": int(round(cfg.sample_rate * cfg.hop_ms / 1000.0))}


def frame_centres(cfg: PreprocessConfig, start_frame: int, num_frames: int) -> np.ndarray:
    """Absolute sample index of the centre of mel frames [start_frame, start_frame + num_frames)."""
    step = stft_params(cfg)["step"]
    return np.round((start_frame + np.arange(num_frames)) * step).astype(np.int64)


_FB_CACHE: dict[tuple, np.ndarray] = {}


def _filters(cfg: PreprocessConfig, n_fft: int, htk: bool) -> np.ndarray:
    key = (cfg.sample_rate, n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, htk)
    if key not in _FB_CACHE:
        _FB_CACHE[key] = mel_filterbank(cfg.sample_rate, n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, htk).astype(np.float32)
    return _FB_CACHE[key]


def log_mel_frames(segment: np.ndarray, centres: np.ndarray, cfg: PreprocessConfig, *, htk: bool = False) -> np.ndarray:
    """Eq. 1 for frames centred at ``centres`` (indices into ``segment``; outside reads as 0).

    Returns float32 (len(centres), n_mels).
    """
    p = stft_params(cfg)
    n_fft, half = p["n_fft"], p["n_fft"] // 2
    window = stft_window(p["win_length"], n_fft).astype(np.float32)
    fb = _filters(cfg, n_fft, htk)                            # (n_mels, F)
    seg = np.asarray(segment, dtype=np.float32).reshape(-1)
    out = np.empty((len(centres), cfg.n_mels), np.float32)
    if len(centres) == 0:
        return out
    # Zero-pad so every frame [c - half, c + half) indexes inside the padded signal.
    lo = min(0, int(centres.min()) - half)
    hi = max(seg.size, int(centres.max()) + half)
    padded = np.zeros(hi - lo, np.float32)
    padded[-lo: -lo + seg.size] = seg
    offs = np.arange(n_fft)
    for b in range(0, len(centres), _BLOCK):
        c = centres[b: b + _BLOCK] - half - lo
        frames = padded[c[:, None] + offs[None, :]] * window  # (n, n_fft)
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2      # |S(t, f)|^2, (n, F)
        mel = power.astype(np.float32) @ fb.T                 # (n, n_mels)
        out[b: b + len(c)] = np.log(mel + cfg.log_eps)
    return out


def log_mel_spectrogram(audio: np.ndarray, cfg: PreprocessConfig, *, num_frames: int | None = None,
                        start_frame: int = 0, htk: bool = False) -> np.ndarray:
    """Log-mel spectrogram (Eq. 1) of mono ``audio`` at ``cfg.sample_rate``; float32 (frames, n_mels).

    Args:
        audio: 1-D samples; ``audio[0]`` is time 0 of the clip.
        cfg: preprocessing settings (window, FFT size, mel bands, fps, mel frames per video frame).
        num_frames: number of mel frames; default ``1 + len(audio) // step`` (librosa's count).
            Audio shorter than needed is zero-padded (silence -> ``log(eps)``), longer is ignored.
        start_frame: index of the first mel frame (for windows of a long clip).
        htk: HTK mel scale instead of Slaney's.

    Example:
        >>> import numpy as np
        >>> from macbdf.config import PreprocessConfig
        >>> m = log_mel_spectrogram(np.zeros(1600, np.float32), PreprocessConfig(), num_frames=8)
        >>> m.shape, float(m.max()) == float(np.float32(np.log(1e-6)))
        ((8, 64), True)
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if num_frames is None:
        num_frames = 1 + int(audio.size // stft_params(cfg)["step"])
    return log_mel_frames(audio, frame_centres(cfg, start_frame, num_frames), cfg, htk=htk)


def log_mel_from_reader(reader: Any, cfg: PreprocessConfig, start_frame: int, num_frames: int) -> np.ndarray:
    """Eq. 1 for mel frames [start_frame, start_frame + num_frames) of a streaming ``AudioReader``.

    Reads only the samples those frames need, so a long file is processed window by window with
    exactly the values :func:`log_mel_spectrogram` gives on the whole signal.
    """
    centres = frame_centres(cfg, start_frame, num_frames)
    half = stft_params(cfg)["n_fft"] // 2
    a, b = int(centres[0]) - half, int(centres[-1]) + half
    seg = reader.read(a, b)
    return log_mel_frames(seg, centres - a, cfg)


SILENCE_BELOW_DB = 35.0   # a mel frame is silent this far below the clip's loud level (95th percentile)
SILENCE_FLOOR_DB = 6.0    # ... or within this of the digital-silence floor (all mel bins at log eps)


def silence_profile(logmel: np.ndarray, cfg: PreprocessConfig) -> dict[str, float | None]:
    """Leading / trailing silence (s) and loudness (dB) of a clip from its Eq. 1 log-mel.

    A mel frame's level is ``10 log10(sum_m exp(logmel))`` (dB of the mel power). A frame is silent
    when it lies ``SILENCE_BELOW_DB`` below the clip's 95th-percentile level, or within
    ``SILENCE_FLOOR_DB`` of the level of digital silence (every bin at ``log eps``). Leading /
    trailing silence is the run of silent frames at the start / end, in seconds (one mel frame =
    ``1 / (fps * mel_per_frame)``); a wholly silent clip has both equal to its length.
    ``loudness_db`` is the level of the mean mel power (relative to full-scale mel power, not LUFS:
    comparable between clips of one cache). None values for a clip without mel frames.

    Example:
        >>> cfg = PreprocessConfig()
        >>> x = np.r_[np.zeros(8000), np.sin(np.arange(16000) * 0.2)].astype(np.float32)  # 0.5 s silence
        >>> p = silence_profile(log_mel_spectrogram(x, cfg, num_frames=150), cfg)
        >>> round(p["leading_silence_s"], 2), p["trailing_silence_s"] < 0.05
        (0.49, True)
    """
    lm = np.asarray(logmel, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] == 0:
        return {"leading_silence_s": None, "trailing_silence_s": None, "loudness_db": None}
    # log-sum-exp over the mel bins, in dB
    peak = lm.max(axis=1, keepdims=True)
    level = 10.0 / np.log(10.0) * (peak[:, 0] + np.log(np.exp(lm - peak).sum(axis=1)))
    floor = 10.0 * np.log10(lm.shape[1] * cfg.log_eps)
    thr = max(float(np.percentile(level, 95)) - SILENCE_BELOW_DB, floor + SILENCE_FLOOR_DB)
    loud = np.flatnonzero(level >= thr)
    step = 1.0 / (cfg.fps * cfg.mel_per_frame)
    n = lm.shape[0]
    lead = int(loud[0]) if loud.size else n
    trail = int(n - 1 - loud[-1]) if loud.size else n
    mean_power = float(np.mean(np.power(10.0, level / 10.0)))
    return {"leading_silence_s": round(lead * step, 4), "trailing_silence_s": round(trail * step, 4),
            "loudness_db": round(10.0 * np.log10(max(mean_power, 1e-30)), 3)}
