"""Fixtures for the synthetic benchmark tests: two tiny generated datasets and a decoder."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest

from macbdf.synth import generate


@pytest.fixture(scope="session")
def favc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 clips (two blocks) in the FakeAVCeleb layout, rendered in-process."""
    out = tmp_path_factory.mktemp("synth_favc") / "favc"
    return generate(out, "fakeavceleb", num_clips=8, seed=11, duration_range=(1.2, 1.6), size=160,
                    workers=1, progress=False)


@pytest.fixture(scope="session")
def lavdf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 clips (one block per split) in the LAV-DF layout, through the worker pool, `gan` held out."""
    out = tmp_path_factory.mktemp("synth_lavdf") / "lavdf"
    return generate(out, "lavdf", num_clips=12, seed=5, duration_range=(2.0, 2.4), size=128, workers=2,
                    holdout_families="gan", progress=False)


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(frames (T,H,W,3) uint8 RGB, audio (N,) float32 mono, stream facts)."""
    with av.open(str(path)) as c:
        vs, as_ = c.streams.video[0], c.streams.audio[0]
        facts = {"fps": float(vs.average_rate), "rate": as_.rate, "channels": as_.codec_context.channels,
                 "vcodec": vs.codec_context.name, "acodec": as_.codec_context.name,
                 "duration": float(c.duration) / 1e6 if c.duration else None}
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(vs)])
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
    return frames, audio, facts


@pytest.fixture(scope="session")
def decode() -> Callable[[Path], tuple[np.ndarray, np.ndarray, dict]]:
    return _decode
