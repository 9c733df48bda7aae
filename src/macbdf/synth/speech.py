"""Procedural speech: a source-filter synthesiser with per-speaker voices and CV syllables.

An utterance is a list of *keypoints* (time, articulatory/acoustic parameters) that are linearly
interpolated: formants F1..F3, voicing and frication amplitudes, frication centre, mouth opening.
From the same keypoints come the audio (glottal source -> formant filter, frication noise ->
band filter, in the STFT domain so it is vectorised) and the per-frame mouth opening that drives
the rendered face, which is what makes real clips lip-synced.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> voice = Voice(f0=120.0, f0_range=0.25, formant_scale=1.0, rate=4.5, breathiness=0.1,
    ...               jitter=0.01, shimmer=0.05, tilt=0.6)
    >>> utt = make_utterance(rng, voice, duration=2.0)
    >>> audio = render_speech(utt, voice, rng=np.random.default_rng(1))
    >>> audio.shape, audio.dtype
    ((32000,), dtype('float32'))
    >>> mouth_track(utt, fps=25, num_frames=50).shape
    (50,)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

SAMPLE_RATE = 16000

# Vowel targets for an adult male voice (Peterson & Barney style averages): F1, F2, F3 in Hz,
# plus how far the mouth opens for it (0 closed .. 1 wide open).
VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0, 1.00),
    "ae": (660.0, 1720.0, 2410.0, 0.85),
    "o": (570.0, 840.0, 2410.0, 0.70),
    "e": (530.0, 1840.0, 2480.0, 0.60),
    "er": (490.0, 1350.0, 1690.0, 0.45),
    "i": (270.0, 2290.0, 3010.0, 0.30),
    "u": (300.0, 870.0, 2240.0, 0.28),
}

# Consonants: kind, F2 locus (Hz, where the CV transition starts), frication centre (Hz),
# voiced?, mouth opening during the consonant.
CONSONANTS: dict[str, tuple[str, float, float, bool, float]] = {
    "p": ("stop", 800.0, 1200.0, False, 0.0),
    "b": ("stop", 800.0, 1200.0, True, 0.0),
    "t": ("stop", 1800.0, 4000.0, False, 0.12),
    "d": ("stop", 1800.0, 4000.0, True, 0.12),
    "k": ("stop", 2200.0, 2500.0, False, 0.18),
    "g": ("stop", 2200.0, 2500.0, True, 0.18),
    "m": ("nasal", 900.0, 0.0, True, 0.0),
    "n": ("nasal", 1700.0, 0.0, True, 0.1),
    "s": ("fric", 1800.0, 6000.0, False, 0.12),
    "sh": ("fric", 2000.0, 3200.0, False, 0.15),
    "f": ("fric", 1000.0, 5000.0, False, 0.05),
    "v": ("fric", 1000.0, 5000.0, True, 0.05),
    "z": ("fric", 1800.0, 6000.0, True, 0.12),
    "l": ("approx", 1100.0, 0.0, True, 0.3),
    "r": ("approx", 1300.0, 0.0, True, 0.25),
    "w": ("approx", 700.0, 0.0, True, 0.1),
    "j": ("approx", 2200.0, 0.0, True, 0.2),
}

# Keypoint columns.
T, F1, F2, F3, AV, AN, NC, MO, F0 = range(9)


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: mean pitch (Hz), pitch range (fraction), formant scale (vocal tract
    length), speaking rate (syllables/s), breathiness, jitter/shimmer (fractions), spectral tilt."""

    f0: float
    f0_range: float
    formant_scale: float
    rate: float
    breathiness: float
    jitter: float
    shimmer: float
    tilt: float
    flat: bool = False  # flat-prosody TTS: monotone f0, no jitter/shimmer/breaths

    def monotone(self) -> "Voice":
        return replace(self, flat=True, jitter=0.0, shimmer=0.0, breathiness=0.0)


@dataclass
class Utterance:
    """Keypoints (K, 9) sorted by time, columns T F1 F2 F3 AV AN NC MO F0 (F0 is a relative
    pitch multiplier), and the syllable onsets (for tests and timing manipulations)."""

    keys: np.ndarray
    duration: float
    syllables: list[tuple[float, float]]
    labels: list[str] = field(default_factory=list)  # "ba", "shi", ... one per syllable


def make_voice(rng: np.random.Generator, female: bool) -> Voice:
    """Random speaker voice; women higher f0 and shorter vocal tract (higher formants)."""
    f0 = rng.uniform(170.0, 250.0) if female else rng.uniform(88.0, 145.0)
    return Voice(
        f0=float(f0),
        f0_range=float(rng.uniform(0.12, 0.35)),
        formant_scale=float((1.15 if female else 1.0) * rng.uniform(0.93, 1.07)),
        rate=float(rng.uniform(3.6, 5.6)),
        breathiness=float(rng.uniform(0.03, 0.25)),
        jitter=float(rng.uniform(0.004, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.10)),
        tilt=float(rng.uniform(0.4, 0.9)),
    )


def make_utterance(rng: np.random.Generator, voice: Voice, duration: float, regular: bool = False) -> Utterance:
    """Phrases of CV syllables separated by pauses, filling `duration` seconds.

    `regular=True` gives TTS-like timing: every syllable the same length, fixed pauses.
    """
    rows: list[list[float]] = []
    sylls: list[tuple[float, float]] = []
    labels: list[str] = []
    mean_syl = 1.0 / voice.rate

    def key(t: float, f1: float, f2: float, f3: float, av: float, an: float, nc: float, mo: float, f0: float) -> None:
        s = voice.formant_scale
        rows.append([t, f1 * s, f2 * s, f3 * s, av, an, nc, mo, f0])

    t = float(rng.uniform(0.08, 0.3))
    key(0.0, 500, 1500, 2500, 0, 0, 0, 0, 1.0)
    key(t, 500, 1500, 2500, 0, 0, 0, 0, 1.0)
    vowel_names = list(VOWELS)
    cons_names = list(CONSONANTS)
    while t < duration - 0.25:
        n_syl = int(rng.integers(3, 9))
        # Declination over the phrase, a random accent on one syllable.
        accent = int(rng.integers(0, n_syl))
        for k in range(n_syl):
            if regular:
                dur = mean_syl
            else:
                dur = float(np.clip(rng.normal(mean_syl, 0.3 * mean_syl), 0.45 * mean_syl, 2.0 * mean_syl))
            if t + dur > duration - 0.12:
                break
            c = cons_names[int(rng.integers(len(cons_names)))]
            v = vowel_names[int(rng.integers(len(vowel_names)))]
            kind, f2_locus, nc, voiced, mo_c = CONSONANTS[c]
            f1v, f2v, f3v, mo_v = VOWELS[v]
            pitch = 1.0 + voice.f0_range * (0.5 * (1 - k / max(n_syl - 1, 1)) - 0.25)
            if k == accent:
                pitch += voice.f0_range * 0.6
            if not regular:
                pitch *= float(rng.uniform(0.95, 1.05))
            c_dur = dur * (0.35 if kind == "stop" else 0.3)
            av_c = {"stop": 0.0, "nasal": 0.35, "fric": 0.25 if voiced else 0.0, "approx": 0.55}[kind]
            an_c = {"stop": 0.0, "nasal": 0.0, "fric": 0.5, "approx": 0.0}[kind]
            f1c = 250.0 if kind in ("nasal", "stop") else 350.0
            # Consonant: starts from the locus, (stops: closure then a burst).
            key(t + 0.005, f1c, f2_locus, 2500, av_c * (1.0 if kind != "stop" else 0.0), an_c, nc, mo_c, pitch)
            if kind == "stop":
                key(t + c_dur * 0.8, f1c, f2_locus, 2500, 0.0, 0.0, nc, mo_c, pitch)
                key(t + c_dur * 0.85, f1c, f2_locus, 2500, 0.1 if voiced else 0.0, 0.7, nc, mo_c + 0.1, pitch)
                key(t + c_dur, f1c, f2_locus, 2500, 0.3 if voiced else 0.05, 0.25, nc, mo_c + 0.2, pitch)
            else:
                key(t + c_dur, f1c, f2_locus, 2500, av_c, an_c, nc, mo_c, pitch)
            # CV transition to the vowel target, vowel steady state, then a short release.
            key(t + c_dur + 0.045, f1v, f2v, f3v, 1.0, 0.0, nc, mo_v, pitch)
            key(t + dur * 0.85, f1v, f2v, f3v, 0.9, 0.0, nc, mo_v * 0.95, pitch * 0.98)
            sylls.append((round(t, 3), round(t + dur, 3)))
            labels.append(c + v)
            t += dur
        # Phrase end: close the mouth and pause.
        key(t + 0.03, 450, 1500, 2500, 0.0, 0.0, 0.0, 0.05, 0.9)
        pause = 0.3 if regular else float(rng.uniform(0.12, 0.55))
        t += pause
        key(t - 0.01, 450, 1500, 2500, 0.0, 0.0, 0.0, 0.0, 1.0)
    key(duration, 450, 1500, 2500, 0.0, 0.0, 0.0, 0.0, 1.0)
    keys = np.asarray(rows, dtype=np.float64)
    keys = keys[np.argsort(keys[:, T], kind="stable")]
    keys[:, T] = np.clip(keys[:, T], 0.0, duration)
    return Utterance(keys=keys, duration=duration, syllables=sylls, labels=labels)


def _interp(keys: np.ndarray, col: int, times: np.ndarray) -> np.ndarray:
    return np.interp(times, keys[:, T], keys[:, col])


def mouth_track(utt: Utterance, fps: float, num_frames: int) -> np.ndarray:
    """Mouth opening in [0, 1] per video frame (mean over each frame interval)."""
    # Average over 4 sub-samples per frame so a short burst is not missed or over-weighted.
    t = (np.arange(num_frames)[:, None] + (np.arange(4)[None, :] + 0.5) / 4) / fps
    return np.clip(_interp(utt.keys, MO, t.ravel()).reshape(num_frames, 4).mean(1), 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, n: int, step: int) -> np.ndarray:
    """Unit-variance noise changing every `step` samples, linearly interpolated."""
    m = n // step + 2
    return np.interp(np.arange(n) / step, np.arange(m), rng.standard_normal(m))


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    pad = n_fft
    xp = np.pad(x, (pad, pad + n_fft))
    n_frames = (len(xp) - n_fft) // hop + 1
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    win = np.hanning(n_fft + 1)[:-1]
    return np.fft.rfft(xp[idx] * win, axis=1)  # (frames, n_fft//2+1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    frames = np.fft.irfft(spec, n=n_fft, axis=1)
    win = np.hanning(n_fft + 1)[:-1]
    n = hop * (len(frames) - 1) + n_fft
    out = np.zeros(n)
    norm = np.zeros(n)
    for i, fr in enumerate(frames):  # few hundred frames: the loop is cheap
        out[i * hop : i * hop + n_fft] += fr * win
        norm[i * hop : i * hop + n_fft] += win * win
    out /= np.maximum(norm, 1e-6)
    return out[n_fft : n_fft + length]


def _resonance(freqs: np.ndarray, fc: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """|H(f)| of an analog 2nd-order resonator, unit gain at DC. freqs (F,), fc/bw (frames,)."""
    r = freqs[None, :] / fc[:, None]
    return 1.0 / np.sqrt((1 - r * r) ** 2 + (freqs[None, :] * bw[:, None] / fc[:, None] ** 2) ** 2)


def glottal_source(f0: np.ndarray, sr: int, rng: np.random.Generator, jitter: float, shimmer: float) -> np.ndarray:
    """Derivative of a Rosenberg glottal pulse train following the per-sample f0 (Hz)."""
    n = len(f0)
    f0 = f0 * (1.0 + jitter * _smooth_noise(rng, n, max(1, sr // 200)))
    phase = np.cumsum(f0 / sr)
    frac = phase - np.floor(phase)
    open_q, close_q = 0.45, 0.2
    g = np.where(
        frac < open_q,
        0.5 * (1 - np.cos(np.pi * frac / open_q)),
        np.where(frac < open_q + close_q, np.cos(0.5 * np.pi * (frac - open_q) / close_q), 0.0),
    )
    src = np.diff(g, prepend=g[0]) * sr / np.maximum(f0, 1.0)
    amp = 1.0 + shimmer * _smooth_noise(rng, n, max(1, sr // 150))
    return src * amp


def render_speech(
    utt: Utterance,
    voice: Voice,
    rng: np.random.Generator,
    sr: int = SAMPLE_RATE,
    breaths: bool = True,
) -> np.ndarray:
    """Synthesise the utterance with this voice; float32 mono at `sr`, peak about 0.5."""
    n = int(round(utt.duration * sr))
    ts = np.arange(n) / sr
    keys = utt.keys
    rel = _interp(keys, F0, ts)
    if voice.flat:
        rel = np.full_like(rel, 1.0)
    else:
        # Slow natural drift on top of the syllable accents.
        rel = rel * (1.0 + 0.03 * _smooth_noise(rng, n, sr // 4))
    f0 = voice.f0 * rel
    src = glottal_source(f0, sr, rng, voice.jitter, voice.shimmer)
    av = _interp(keys, AV, ts)
    an = _interp(keys, AN, ts)
    # Aspiration noise synchronous with the glottal cycle gives the breathy part of the voice.
    noise = rng.standard_normal(n)
    voiced = av * (src / (np.std(src) + 1e-9) + voice.breathiness * 2.0 * noise * (0.5 + 0.5 * np.sign(src)))
    fric = an * rng.standard_normal(n)

    n_fft, hop = 512, 128
    sv = _stft(voiced, n_fft, hop)
    sn = _stft(fric, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    ft = (np.arange(sv.shape[0]) * hop - n_fft) / sr  # frame centre times (frames were padded)
    ft = np.clip(ft + n_fft / 2 / sr, 0, utt.duration)
    env = np.ones((len(ft), len(freqs)))
    for col, bw0 in ((F1, 80.0), (F2, 110.0), (F3, 170.0)):
        fc = np.maximum(_interp(keys, col, ft), 150.0)
        env *= _resonance(freqs, fc, np.full_like(fc, bw0) + 0.05 * fc)
    f4 = np.full(len(ft), 3500.0 * voice.formant_scale)
    env *= _resonance(freqs, f4, np.full_like(f4, 250.0))
    # Spectral tilt of the source beyond what the pulse shape gives (voice "brightness").
    env *= (1.0 + freqs / 500.0)[None, :] ** (-voice.tilt * 0.5)
    nc = np.maximum(_interp(keys, NC, ft), 1000.0)
    fric_env = _resonance(freqs, nc, 0.35 * nc) * (freqs[None, :] > 800)
    # Frication well below the vowels (about -15 dB), as in natural speech.
    out = _istft(sv * env + sn * fric_env * 0.2, n_fft, hop, n)

    if breaths and not voice.flat:
        out = out + _breaths(utt, rng, sr, n) * np.std(out)
    peak = np.max(np.abs(out)) + 1e-9
    return (0.5 * out / peak).astype(np.float32)


def _breaths(utt: Utterance, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Soft band-limited inhalation noise in the longer pauses."""
    out = np.zeros(n)
    silent = utt.keys[:, AV] + utt.keys[:, AN] <= 1e-6
    times = utt.keys[:, T]
    for i in range(len(times) - 1):
        if silent[i] and silent[i + 1] and times[i + 1] - times[i] > 0.25 and rng.random() < 0.7:
            a, b = int(times[i] * sr), int(times[i + 1] * sr)
            seg = rng.standard_normal(b - a)
            # Cheap band-pass: difference of two moving averages.
            seg = np.convolve(seg, np.ones(3) / 3, "same") - np.convolve(seg, np.ones(24) / 24, "same")
            out[a:b] = seg * np.hanning(b - a) * rng.uniform(0.05, 0.15)
    return out


# ---------------------------------------------------------------------------------------------
# Channel effects (applied to real and fake audio alike) and vocoder artefacts (fakes only).

def apply_channel(audio: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Room, microphone colour, background noise and gain: natural variation of real recordings."""
    x = audio.astype(np.float64)
    if rng.random() < 0.5:  # small-room reverberation: exponentially decaying noise impulse
        rt = rng.uniform(0.05, 0.35)
        m = int(rt * sr)
        ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / m) * rng.uniform(0.05, 0.25)
        ir[0] = 1.0
        x = np.fft.irfft(np.fft.rfft(x, len(x) + m) * np.fft.rfft(ir, len(x) + m))[: len(x)]
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    # Random mic/EQ colour: gentle low/high shelving.
    lo = rng.uniform(-4, 4)
    hi = rng.uniform(-8, 3)
    gain_db = lo * (f < 300) + hi * (f > 3500) * np.clip((f - 3500) / 2000, 0, 1)
    x = np.fft.irfft(spec * 10 ** (gain_db / 20), len(x))
    snr_db = rng.uniform(18, 45)
    noise = rng.standard_normal(len(x))
    if rng.random() < 0.5:  # fan / traffic-like low-frequency noise (one-pole low-pass)
        a = rng.uniform(0.8, 0.97)
        spec_n = np.fft.rfft(noise)
        noise = np.fft.irfft(spec_n / np.abs(1 - a * np.exp(-2j * np.pi * f / sr)), len(x))
    if rng.random() < 0.3:  # mains hum
        t = np.arange(len(x)) / sr
        hz = 50.0 if rng.random() < 0.5 else 60.0
        noise = noise + 0.5 * np.std(noise) * (np.sin(2 * np.pi * hz * t) + 0.5 * np.sin(2 * np.pi * 3 * hz * t))
    noise *= np.sqrt(np.mean(x ** 2) + 1e-12) / (np.std(noise) + 1e-12) * 10 ** (-snr_db / 20)
    x = (x + noise) * rng.uniform(0.5, 1.3)
    return np.clip(x, -0.98, 0.98).astype(np.float32)


def vocoder_artefacts(audio: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """What a neural/parametric vocoder leaves behind, scaled by `strength` in [0, 1]:
    phase incoherence (frame resynthesis with partly random phase -> "phasey" buzz), a
    band-limit, and spectral smearing across frames."""
    if strength <= 0:
        return audio
    n = len(audio)
    n_fft, hop = 512, 128
    s = _stft(audio.astype(np.float64), n_fft, hop)
    mag, ph = np.abs(s), np.angle(s)
    rand_ph = rng.uniform(-np.pi, np.pi, size=ph.shape)
    ph = ph + strength * 0.9 * np.angle(np.exp(1j * (rand_ph - ph)))
    # Temporal smoothing of the magnitude (vocoders average over frames).
    k = 1 + int(round(2 * strength))
    if k > 1:
        ker = np.ones(k) / k
        mag = np.apply_along_axis(lambda c: np.convolve(c, ker, "same"), 0, mag)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    cutoff = 8000 - strength * rng.uniform(1500, 3500)
    mag = mag * np.clip((cutoff + 300 - freqs) / 600, 0, 1)[None, :]
    y = _istft(mag * np.exp(1j * ph), n_fft, hop, n)
    y *= (np.std(audio) + 1e-9) / (np.std(y) + 1e-9)
    return y.astype(np.float32)


def crossfade_insert(base: np.ndarray, other: np.ndarray, periods: list[list[float]], sr: int = SAMPLE_RATE,
                     fade_s: float = 0.015) -> np.ndarray:
    """`base` with `other` inside each [start, end] period (seconds), short linear crossfades."""
    w = np.zeros(len(base))
    t = np.arange(len(base)) / sr
    for a, b in periods:
        w = np.maximum(w, np.clip(np.minimum(t - a, b - t) / fade_s + 0.5, 0.0, 1.0))
    return (base * (1 - w) + other[: len(base)] * w).astype(np.float32)
