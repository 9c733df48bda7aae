"""Media and JSON helpers of the hostile-input tests (imported by the tests in this folder)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def remux_with_audio(src: Path, dst: Path, wave: np.ndarray, sr: int = 16000) -> Path:
    """``src``'s video packets (copied, not re-encoded) plus ``wave`` as float PCM (pcm_f32le) in MKV:
    float PCM is the one common format that can carry NaN, Inf and absurd sample values."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("pcm_f32le", rate=sr)
        aout.layout = "mono"
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            out.mux(pkt)
        pts = 0
        wave = np.asarray(wave, np.float32)
        for s in range(0, wave.size, 1024):
            chunk = wave[s:s + 1024]
            fr = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = sr, pts, Fraction(1, sr)
            pts += chunk.size
            for p in aout.encode(fr):
                out.mux(p)
        for p in aout.encode():
            out.mux(p)
    return dst


def tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def write_frames(path: Path, frames: list[np.ndarray], *, fps: int = 25, codec: str = "ffv1",
                 audio_seconds: float = 0.0, fmt: str | None = None, pix_fmt: str = "yuv420p") -> Path:
    """Encode RGB frames (any size, ffv1 takes 1x1) and optionally a tone, e.g. a 1-frame video."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        aout = None
        if audio_seconds:
            aout = c.add_stream("pcm_f32le", rate=16000)
            aout.layout = "mono"
        for img in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if aout is not None:
            wave = tone(audio_seconds)
            fr = av.AudioFrame.from_ndarray(wave[None, :], format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = 16000, 0, Fraction(1, 16000)
            for p in aout.encode(fr):
                c.mux(p)
            for p in aout.encode():
                c.mux(p)
    return path


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (what a strict parser, e.g. a browser's, does)."""
    import json

    def bad(c: str) -> None:
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=bad)


def write_clip(path: Path, **kw):
    """tests/conftest.py's drawn talking head (loaded by path: every test folder has a `conftest`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_macbdf_tests_top_conftest", Path(__file__).parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_clip(path, **kw)


def write_cache(root: Path, **kw):
    """tests/train/conftest.py's tiny learnable cache (8-frame, 32-pixel samples), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_macbdf_tests_train_conftest",
                                                  Path(__file__).parents[1] / "train" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_cache(root, **kw)


def rewrite_sample(path: Path, change, *, keep_checksum: bool = True) -> None:
    """Rewrite a cache sample's tensors with ``change(tensors)`` applied, metadata kept (the stored
    checksum then no longer matches); ``keep_checksum=False`` drops it (an old-format sample)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), "numpy") as f:
        tensors = {k: f.get_tensor(k).copy() for k in f.keys()}
        meta = dict(f.metadata())
    change(tensors)
    if not keep_checksum:
        meta.pop("sha256", None)
    save_file(tensors, str(path), metadata=meta)
