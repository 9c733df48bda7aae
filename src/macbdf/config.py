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

    # (min, max) of each numeric field: a config.json from elsewhere is checked before anything is
    # allocated from it (fps 0 would divide by zero, a huge face_size would allocate gigabytes).
    BOUNDS = {"fps": (1e-3, 240.0), "sample_rate": (1000, 192000), "n_mels": (1, 512), "win_ms": (1.0, 1000.0),
              "hop_ms": (0.1, 1000.0), "n_fft": (16, 16384), "f_min": (0.0, 96000.0), "log_eps": (1e-30, 1.0),
              "face_size": (8, 1024), "face_margin": (0.0, 4.0), "detect_every": (1, 1000),
              "detect_max_side": (16, 8192)}
    _INTS = ("sample_rate", "n_mels", "n_fft", "face_size", "detect_every", "detect_max_side")

    def validate(self) -> "PreprocessConfig":
        """Raise ValueError (one line) when a field has the wrong type or is out of `BOUNDS`.

        Example:
            >>> PreprocessConfig(fps=0).validate()
            Traceback (most recent call last):
            ...
            ValueError: invalid preprocess config: fps must be in [0.001, 240.0], got 0
        """
        problems = []
        for k, (lo, hi) in self.BOUNDS.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (k in self._INTS and not isinstance(v, int)):
                problems.append(f"{k} must be {'an integer' if k in self._INTS else 'a number'}, got {v!r}")
            elif not lo <= v <= hi:   # NaN fails this too
                problems.append(f"{k} must be in [{lo}, {hi}], got {v!r}")
        if self.f_max is not None and (isinstance(self.f_max, bool) or not isinstance(self.f_max, (int, float))
                                       or not 0 < self.f_max <= 96000):
            problems.append(f"f_max must be null or a number in (0, 96000], got {self.f_max!r}")
        if problems:
            raise ValueError("invalid preprocess config: " + "; ".join(problems))
        return self

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
