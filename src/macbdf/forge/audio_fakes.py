"""Audio manipulations of ``macbdf forge`` and the processing every written clip shares.

All functions take and return mono float32 audio at one sample rate (16 kHz in forge) and are
deterministic: randomness is drawn by the planner and passed in as parameters, so a clip's
``forge_info.json`` entry says exactly what was done to it.

Families (see :data:`AUDIO_FAMILIES`):
  * ``audio_swap``: another speaker's speech (:func:`fit_length` of the donor's audio);
  * ``audio_same_speaker``: the same speaker's other words (another segment of that identity);
  * ``av_offset``: the clip's own audio shifted by ``offset_s`` (> 0: audio late), the gap filled
    from the rest of the clip (:func:`shifted`);
  * ``audio_splice``: a stretch replaced by other audio with short cross-fades (:func:`splice`);
  * ``voice_change``: WORLD vocoder (``pyworld``): F0 shift and spectral-envelope frequency warp
    (:func:`voice_change`);
  * ``time_stretch``: WORLD re-synthesis on a stretched time axis (:func:`time_stretch`).

Example:
    >>> x = np.sin(np.linspace(0, 400, 16000)).astype(np.float32)
    >>> y = shifted(x, 0, 8000, 1600)          # 0.1 s late at 16 kHz
    >>> bool(np.array_equal(y[1600:], x[:6400]))
    True
"""
from __future__ import annotations

import glob
import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np

AUDIO_FAMILIES = ("audio_swap", "audio_same_speaker", "av_offset", "audio_splice", "voice_change", "time_stretch")
# Families whose audio track is an unedited recording of real speech, fake only in its pairing with
# the face: no audio-only model can tell it from a real track, so it is marked (``audio_recorded``)
# and the unimodal audio losses leave it out (models/losses.py).
RECORDED_AUDIO_FAMILIES = ("audio_swap", "audio_same_speaker", "av_offset")
TARGET_DBFS = -23.0        # loudness every written clip is normalised to (RMS of its active frames)
PEAK_LIMIT = 0.98
FRAME_PERIOD_MS = 5.0      # WORLD analysis hop
CROSSFADE_S = 0.01         # splice edges: 10 ms linear cross-fades (no click, still a real seam)

_PYWORLD: ModuleType | None = None


class VoiceToolsUnavailable(RuntimeError):
    """pyworld is not installed (the message says what to install)."""


def pyworld() -> ModuleType:
    """The compiled WORLD module of the ``pyworld`` package.

    pyworld 0.3.5's ``__init__`` imports ``pkg_resources`` (gone from recent setuptools) only to
    read its own version; when that import fails, the compiled module next to it is loaded
    directly (it has no Python dependencies of its own).
    """
    global _PYWORLD
    if _PYWORLD is not None:
        return _PYWORLD
    try:
        import pyworld as pw  # noqa: PLC0415 - optional heavy dependency

        _PYWORLD = pw
        return pw
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise VoiceToolsUnavailable("voice_change / time_stretch need pyworld (pip install 'pyworld>=0.3.5,<0.4')") from None
    spec = importlib.util.find_spec("pyworld")
    libs = [p for base in (spec.submodule_search_locations or []) for p in glob.glob(os.path.join(base, "pyworld*.so"))
            + glob.glob(os.path.join(base, "pyworld*.pyd"))] if spec else []
    if not libs:
        raise VoiceToolsUnavailable("pyworld is installed without its compiled module; reinstall it")
    s = importlib.util.spec_from_file_location("pyworld.pyworld", libs[0])
    assert s is not None and s.loader is not None
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    _PYWORLD = mod
    return mod


def frame_rms_db(x: np.ndarray, sr: int, frame_s: float = 0.02) -> np.ndarray:
    """RMS level (dBFS) of consecutive ``frame_s`` frames."""
    n = max(1, int(sr * frame_s))
    k = len(x) // n
    if k == 0:
        return np.full(1, -120.0)
    fr = np.asarray(x[: k * n], np.float64).reshape(k, n)
    return 10 * np.log10(np.mean(fr ** 2, axis=1) + 1e-12)


def speech_activity(x: np.ndarray, sr: int) -> float:
    """Share of 20 ms frames that carry sound: above -50 dBFS and within 25 dB of the loud frames.

    A cheap voice-activity proxy (talking-face clips have one dominant voice); 0.0 for silence.

    Example:
        >>> sr = 16000; t = np.arange(sr) / sr
        >>> round(speech_activity(np.where(t < 0.5, 0.1 * np.sin(2 * np.pi * 200 * t), 0.0), sr), 1)
        0.5
    """
    db = frame_rms_db(x, sr)
    loud = float(np.percentile(db, 95))
    if loud < -50:
        return 0.0
    return float(np.mean(db > max(-50.0, loud - 25.0)))


def normalize_loudness(x: np.ndarray, sr: int, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale so the active frames' RMS is ``target_dbfs`` (an RMS stand-in for -23 LUFS), peaks
    limited to :data:`PEAK_LIMIT`. Every written clip, real or fake, goes through this.

    Example:
        >>> x = 0.5 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
        >>> y = normalize_loudness(x, 16000)
        >>> round(float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))), 1)
        -23.0
    """
    x = np.asarray(x, np.float32)
    db = frame_rms_db(x, sr)
    loud = float(np.percentile(db, 95))
    if loud < -70:
        return x.copy()
    active = db > loud - 25.0          # relative: the level of the source must not matter
    n = max(1, int(sr * 0.02))
    frames = x[: (len(x) // n) * n].reshape(-1, n)[active] if len(x) >= n else x[None]
    rms = float(np.sqrt(np.mean(frames.astype(np.float64) ** 2))) + 1e-12
    gain = 10 ** (target_dbfs / 20) / rms
    peak = float(np.abs(x).max()) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (x * gain).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` trimmed, or extended by repeating it (with a 10 ms cross-fade at each seam), to ``n``.

    Example:
        >>> fit_length(np.arange(5, dtype=np.float32), 3).tolist()
        [0.0, 1.0, 2.0]
    """
    x = np.asarray(x, np.float32)
    if len(x) >= n:
        return x[:n].copy()
    if len(x) == 0:
        return np.zeros(n, np.float32)
    out = x.copy()
    fade = min(160, len(x) // 4)
    while len(out) < n:
        if fade > 0:
            ramp = np.linspace(0, 1, fade, dtype=np.float32)
            head = x[:fade] * ramp + out[-fade:] * (1 - ramp)
            out = np.concatenate([out[:-fade], head, x[fade:]])
        else:
            out = np.concatenate([out, x])
    return out[:n]


def shifted(clip_audio: np.ndarray, start: int, n: int, offset: int) -> np.ndarray:
    """``n`` samples of ``clip_audio`` from ``start``, delayed by ``offset`` samples (< 0: early).

    Output sample t is clip sample ``start + t - offset``; outside the clip it wraps around the
    clip (its other words, not silence: silence would be a giveaway the real copies lack).
    """
    L = len(clip_audio)
    if L == 0:
        return np.zeros(n, np.float32)
    idx = (start - offset + np.arange(n)) % L
    return np.asarray(clip_audio, np.float32)[idx]


def splice(x: np.ndarray, insert: np.ndarray, a: int, b: int, fade: int | None = None, sr: int = 16000) -> np.ndarray:
    """``x`` with samples [a, b) replaced by ``insert[: b - a]`` (cross-faded over ``fade`` samples
    just inside the stretch, so everything outside [a, b) is untouched).

    Example:
        >>> y = splice(np.zeros(100, np.float32), np.ones(100, np.float32), 20, 60, fade=0)
        >>> float(y[:20].sum()), float(y[20:60].sum()), float(y[60:].sum())
        (0.0, 40.0, 0.0)
    """
    y = np.asarray(x, np.float32).copy()
    seg = fit_length(insert, b - a)
    fade = int(CROSSFADE_S * sr) if fade is None else fade
    fade = min(fade, (b - a) // 4)
    w = np.ones(b - a, np.float32)
    if fade > 0:
        ramp = np.linspace(0, 1, fade + 2, dtype=np.float32)[1:-1]
        w[:fade] = ramp
        w[-fade:] = ramp[::-1]
    y[a:b] = seg * w + y[a:b] * (1 - w)
    return y


def _world(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pw = pyworld()
    xd = np.ascontiguousarray(x, np.float64)
    f0, t = pw.dio(xd, sr, frame_period=FRAME_PERIOD_MS)
    f0 = pw.stonemask(xd, f0, t, sr)
    sp = pw.cheaptrick(xd, f0, t, sr)
    ap = pw.d4c(xd, f0, t, sr)
    return f0, sp, ap


def _synth(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, sr: int, n: int) -> np.ndarray:
    y = pyworld().synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                             sr, FRAME_PERIOD_MS)
    return fit_length(np.asarray(y, np.float32), n)


def warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """Spectral envelope frequency-scaled by ``alpha`` (> 1: formants up, a shorter vocal tract)."""
    bins = sp.shape[1]
    src = np.clip(np.arange(bins) / alpha, 0, bins - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    w = src - lo
    return np.ascontiguousarray(sp[:, lo] * (1 - w) + sp[:, hi] * w)


def voice_change(x: np.ndarray, sr: int, semitones: float, warp: float) -> np.ndarray:
    """WORLD analysis -> F0 x 2^(semitones/12), envelope warped by ``warp`` -> re-synthesis.

    Example:
        >>> sr = 16000; t = np.arange(sr) / sr
        >>> x = (0.3 * np.sign(np.sin(2 * np.pi * 120 * t))).astype(np.float32)
        >>> voice_change(x, sr, 4.0, 1.1).shape                     # doctest: +SKIP
        (16000,)
    """
    f0, sp, ap = _world(x, sr)
    f0 = f0 * (2.0 ** (semitones / 12.0))
    return _synth(f0, warp_envelope(sp, warp), ap, sr, len(x))


def time_stretch(x_long: np.ndarray, sr: int, rate: float, n: int) -> np.ndarray:
    """``n`` samples of ``x_long`` played at ``rate`` x speed (> 1 faster), pitch kept (WORLD).

    ``x_long`` should hold about ``n * rate`` samples (the caller takes them from the clip).
    """
    f0, sp, ap = _world(x_long, sr)
    m = len(f0)
    out_frames = max(2, int(round(m / rate)))
    src = np.clip(np.arange(out_frames) * rate, 0, m - 1)
    idx = np.round(src).astype(int)     # nearest frame: interpolating F0 across voicing edges smears them
    return _synth(f0[idx], sp[idx], ap[idx], sr, n)


def apply_audio_family(family: str, params: dict[str, Any], *, clip_audio: np.ndarray, start: int, n: int,
                       sr: int, donor_audio: np.ndarray | None) -> np.ndarray:
    """The ``n``-sample fake audio of one segment (``clip_audio[start:start + n]`` is the real one).

    ``donor_audio``: the other speaker's (or the same speaker's other) audio, already cut to start
    where the planner chose (``audio_swap``, ``audio_same_speaker``, ``audio_splice`` with a donor).
    """
    real = shifted(clip_audio, start, n, 0)
    if family in ("audio_swap", "audio_same_speaker"):
        assert donor_audio is not None
        return fit_length(donor_audio, n)
    if family == "av_offset":
        return shifted(clip_audio, start, n, int(round(params["offset_s"] * sr)))
    if family == "audio_splice":
        a, b = int(round(params["start_s"] * sr)), int(round(params["end_s"] * sr))
        if donor_audio is not None:
            insert = donor_audio
        else:
            insert = shifted(clip_audio, int(round(params["from_s"] * sr)), b - a, 0)
        return splice(real, insert, a, b, sr=sr)
    if family == "voice_change":
        return voice_change(real, sr, float(params["semitones"]), float(params["warp"]))
    if family == "time_stretch":
        rate = float(params["rate"])
        return time_stretch(shifted(clip_audio, start, int(np.ceil(n * rate)) + sr // 10, 0), sr, rate, n)
    raise ValueError(f"unknown audio family {family!r}")
