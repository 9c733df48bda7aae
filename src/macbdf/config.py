"""Preprocessing settings shared by the media pipeline, the model config and the detector.

The same dataclass is saved inside every model config, so a checkpoint always knows how its
input was prepared (open_clip's create_model_and_transforms idea).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class PreprocessConfig:
    fps: float = 25.0                # video resampled to this rate by timestamps
    sample_rate: int = 16000         # audio resampled to mono at this rate
    n_mels: int = 64                 # Eq. 1: number of mel filters F
    win_ms: float = 25.0             # STFT window (400 samples at 16 kHz)
    hop_ms: float = 10.0             # STFT hop (160 samples at 16 kHz)
    n_fft: int = 512                 # FFT size (>= window)
    f_min: float = 0.0
    f_max: float | None = None       # None -> sample_rate / 2
    log_eps: float = 1e-6            # log(M + eps), Eq. 1's log
    face_size: int = 96              # square face crop side, pixels
    face_margin: float = 0.25        # box enlarged by this fraction per side before cropping
    detect_every: int = 5            # run the face detector on every k-th frame, track in between
    detect_max_side: int = 320       # frames downscaled so the longer side is at most this for detection
    # `prepare --trim-leading-silence`: drop the frames before the audio starts (fake periods shift
    # with them), so a dataset whose fakes start with silence cannot teach that shortcut (issue 12)
    trim_leading_silence: bool = False

    @property
    def mel_per_frame(self) -> int:
        """Mel frames per video frame; both streams share one time axis (4 at 25 fps, 10 ms hop)."""
        return max(1, round(1000.0 / self.fps / self.hop_ms))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
