"""Shared fixtures. Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real clips in ../shared/media; tests using them skip when the folder is absent."""
    if not SHARED_MEDIA.is_dir() or not any(SHARED_MEDIA.glob("*.mp4")):
        pytest.skip("../shared/media not present (internal test clips)")
    return SHARED_MEDIA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module (opt-in: runs compared bit for bit across
    processes need the default). On a small, busy CPU, torch's default (one per
    core) spends most of its time waiting at thread barriers (measured 5x slower). Restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Small generated clips and a tiny checkpoint, shared by the detect and serve tests.
def write_clip(path: Path, seconds: float = 1.6, fps: int = 25, size: tuple[int, int] = (160, 120),
               audio: bool = True, codec: str = "libx264", seed: int = 0) -> Path:
    """A drawn talking head (skin ellipse, eyes, moving mouth) with a modulated tone, encoded with PyAV."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    n = max(1, int(round(seconds * fps)))
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = None
        if audio:
            as_ = c.add_stream("aac", rate=16000)
            as_.layout = "mono"
        for i in range(n):
            img = np.full((h, w, 3), (60, 70, 90), np.uint8)
            cx, cy = w // 2 + int(3 * np.sin(i / 7)), h // 2
            cv2.ellipse(img, (cx, cy), (w // 6, h // 3), 0, 0, 360, (190, 160, 140), -1, cv2.LINE_AA)
            for dx in (-w // 14, w // 14):
                cv2.circle(img, (cx + dx, cy - h // 10), max(2, w // 50), (40, 30, 30), -1, cv2.LINE_AA)
            mouth = 2 + int(4 * abs(np.sin(i / 3)))
            cv2.ellipse(img, (cx, cy + h // 7), (w // 16, mouth), 0, 0, 360, (90, 40, 50), -1, cv2.LINE_AA)
            img = np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if as_ is not None:
            sr = 16000
            t = np.arange(int(seconds * sr)) / sr
            wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
            pts = 0
            for s in range(0, wave.size, 1024):
                chunk = wave[s:s + 1024]
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                fr.sample_rate = sr
                fr.pts = pts
                fr.time_base = Fraction(1, sr)
                pts += chunk.size
                for p in as_.encode(fr):
                    c.mux(p)
            for p in as_.encode():
                c.mux(p)
    return path


@pytest.fixture(scope="session")
def clip_writer():
    """``write_clip`` as a fixture (test folders are not packages, so no imports between them)."""
    return write_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """good.mp4 (1.6 s), long.mkv (3 s, several windows), noaudio.mp4, short.mp4 (0.32 s), and bad files."""
    d = tmp_path_factory.mktemp("clips")
    write_clip(d / "good.mp4")
    write_clip(d / "long.mkv", seconds=3.0, seed=1)
    write_clip(d / "noaudio.mp4", audio=False, seed=2)
    write_clip(d / "short.mp4", seconds=0.32, seed=3)  # one model window: the cheapest real request
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is a text file, not a video\n")
    good = (d / "good.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(good[: len(good) // 3])
    return d


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny model saved as a checkpoint (threshold 0.5).

    64-pixel face crops instead of 96 halve the forward time; the detector takes the size from the
    checkpoint's preprocessing config, which this also exercises.
    """
    import torch

    from macbdf import create_model
    from macbdf.checkpoint import save_model
    from macbdf.config import PreprocessConfig

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt")
    save_model(create_model("tiny", preprocess=PreprocessConfig(face_size=64)), d, extra={"threshold": 0.5, "trained_on": "random init (tests)"})
    return d
