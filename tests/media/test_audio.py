"""Log-mel (Eq. 1) against reference implementations."""
from __future__ import annotations

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.media.audio import hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 523.0 * t)).astype(np.float32)


def _reference_log_mel(x: np.ndarray, sr: int, n_fft: int, win: int, hop: int, n_mels: int, eps: float) -> np.ndarray:
    """Independent direct computation: explicit DFT per frame + the triangular mel formula."""
    # Slaney mel scale and area-normalised triangles, written out from their definitions.
    def mel(f):
        return f / (200 / 3) if f < 1000 else 15 + np.log(f / 1000) / (np.log(6.4) / 27)

    def inv(m):
        return m * (200 / 3) if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)

    edges = [inv(m) for m in np.linspace(mel(0.0), mel(sr / 2), n_mels + 2)]
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    H = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo <= f <= c:
                H[m, k] = (f - lo) / (c - lo)
            elif c < f <= hi:
                H[m, k] = (hi - f) / (hi - c)
        H[m] *= 2 / (hi - lo)
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left: left + win] = [0.5 - 0.5 * np.cos(2 * np.pi * i / win) for i in range(win)]
    padded = np.concatenate([np.zeros(n_fft // 2), x.astype(np.float64), np.zeros(n_fft // 2)])
    n_frames = 1 + len(x) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    basis = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)   # explicit DFT matrix
    out = np.zeros((n_frames, n_mels))
    for t in range(n_frames):
        frame = padded[t * hop: t * hop + n_fft] * window
        S = basis @ frame
        out[t] = np.log(H @ (np.abs(S) ** 2) + eps)
    return out


def test_matches_direct_dft_reference():
    cfg = PreprocessConfig()
    x = _signal(4000)
    ours = log_mel_spectrogram(x, cfg)
    ref = _reference_log_mel(x, 16000, 512, 400, 160, 64, cfg.log_eps)
    assert ours.shape == ref.shape == (1 + 4000 // 160, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("n_mels,htk", [(64, False), (128, False), (80, True)])
def test_matches_librosa(n_mels, htk):
    librosa = pytest.importorskip("librosa")
    cfg = PreprocessConfig(n_mels=n_mels)
    x = _signal(16000 + 77, seed=n_mels)
    M = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=n_mels, fmin=0.0,
                                       fmax=8000.0, htk=htk, norm="slaney")
    ref = np.log(M + cfg.log_eps).T
    ours = log_mel_spectrogram(x, cfg, htk=htk)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3, rtol=1e-4)
    fb = mel_filterbank(16000, 512, n_mels, htk=htk)
    np.testing.assert_allclose(fb, librosa.filters.mel(sr=16000, n_fft=512, n_mels=n_mels, htk=htk), atol=1e-7)


def test_mel_scale_roundtrip():
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    for htk in (False, True):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk), htk), f, atol=1e-6)


def test_fixed_mel_frames_per_video_frame_and_windows_agree():
    for fps in (25.0, 30.0):
        cfg = PreprocessConfig(fps=fps)
        T = 40
        x = _signal(int(16000 * T / fps))
        m = log_mel_spectrogram(x, cfg, num_frames=T * cfg.mel_per_frame)
        assert m.shape == (T * cfg.mel_per_frame, cfg.n_mels)
        # Any window computed on its own equals the same rows of the whole spectrogram.
        part = log_mel_spectrogram(x, cfg, num_frames=10 * cfg.mel_per_frame, start_frame=17 * cfg.mel_per_frame)
        np.testing.assert_allclose(part, m[17 * cfg.mel_per_frame: 27 * cfg.mel_per_frame], atol=1e-5)
    assert PreprocessConfig().mel_per_frame == 4


def test_silence_is_log_eps():
    cfg = PreprocessConfig()
    m = log_mel_spectrogram(np.zeros(0, np.float32), cfg, num_frames=12)
    assert m.shape == (12, 64) and np.allclose(m, np.log(cfg.log_eps))
