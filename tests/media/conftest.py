"""Fixtures of the media tests: small generated clips (PyAV), no face unless marked media."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from macbdf.config import PreprocessConfig


def make_clip(path: Path, *, seconds: float = 1.2, fps: Fraction | int = 25, size: tuple[int, int] = (96, 64),
              codec: str = "libx264", audio_rate: int | None = 16000, channels: int = 1, tone_hz: float = 1000.0,
              rotation_ccw: int | None = None, level_step: int = 8, bar: bool = False,
              pix_fmt: str = "yuv420p", rgb: tuple[int, int, int] | None = None, lead_silence: float = 0.0) -> Path:
    """Write a clip whose frame i is a flat grey of level ``(i * level_step) % 256``.

    With ``rgb`` every frame is that solid colour instead. With ``bar`` a white bar covers the left
    1/6 of every frame (for rotation tests). Audio is a
    sine of ``tone_hz`` (digital silence for its first ``lead_silence`` seconds). ``rotation_ccw`` writes a
    display matrix (counter-clockwise degrees).
    """
    w, h = size
    container = av.open(str(path), "w")
    vs = container.add_stream(codec, rate=fps)
    vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
    if rotation_ccw is not None:
        vs.set_display_rotation(rotation_ccw)
    a_s = None
    if audio_rate:
        a_s = container.add_stream("aac", rate=audio_rate)
        a_s.layout = "stereo" if channels == 2 else "mono"
    n = int(round(seconds * float(fps)))
    for i in range(n):
        img = np.full((h, w, 3), (i * level_step) % 256, np.uint8) if rgb is None else np.full((h, w, 3), rgb, np.uint8)
        if bar:
            img[:, : max(2, w // 6)] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        for p in vs.encode(frame):
            container.mux(p)
    for p in vs.encode():
        container.mux(p)
    if a_s is not None:
        total = int(seconds * audio_rate)
        t = np.arange(total) / audio_rate
        sig = (0.3 * np.sin(2 * np.pi * tone_hz * t) * (t >= lead_silence)).astype(np.float32)
        chunk = 1024
        for s in range(0, total, chunk):
            part = sig[s: s + chunk]
            data = np.repeat(part[None, :], channels, axis=0) if channels == 2 else part[None, :]
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp",
                                            layout="stereo" if channels == 2 else "mono")
            af.sample_rate = audio_rate
            af.pts = s
            for p in a_s.encode(af):
                container.mux(p)
        for p in a_s.encode():
            container.mux(p)
    container.close()
    return path


@pytest.fixture
def cfg() -> PreprocessConfig:
    return PreprocessConfig(face_size=32)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A set of small clips covering codecs, frame rates, audio rates, rotation and no audio."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "h264_25": make_clip(d / "h264_25.mp4"),
        "h264_30_48k": make_clip(d / "h264_30_48k.mp4", fps=30, audio_rate=48000, channels=2, seconds=1.0),
        "h264_2997_44k": make_clip(d / "h264_2997_44k.mp4", fps=Fraction(30000, 1001), audio_rate=44100,
                                   channels=2, seconds=1.0),
        "mpeg4_noaudio": make_clip(d / "mpeg4_noaudio.mp4", codec="mpeg4", audio_rate=None),
        "rot90": make_clip(d / "rot90.mp4", size=(96, 48), rotation_ccw=-90, bar=True, seconds=0.6),
        "short": make_clip(d / "short.mp4", seconds=0.4),
    }


@pytest.fixture(scope="session")
def clip_maker():
    """``make_clip`` as a fixture (test folders are not packages, so no relative imports)."""
    return make_clip
