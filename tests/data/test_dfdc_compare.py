"""DFDC per-modality labels derived by comparing fakes with their originals, on real MP4 files."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np

from macbdf.data.adapters import load_dataset
from macbdf.data.adapters.dfdc_compare import audio_similarity, video_difference

FPS, SR, SECONDS, W, H = 25, 16000, 2.0, 160, 128


def _content(seed: int):
    rng = np.random.default_rng(seed)
    n = int(FPS * SECONDS)
    base = rng.integers(0, 255, (H // 8, W // 8, 3)).astype(np.float32)
    base = np.kron(base, np.ones((8, 8, 1), np.float32))
    frames = []
    for k in range(n):
        f = np.roll(base, k, axis=1) * 0.7 + 40 * np.sin(k / 5.0)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    t = np.arange(int(SR * SECONDS)) / SR
    f0 = 110 + 40 * seed
    audio = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return frames, (0.2 * audio).astype(np.float32)


def _swap_face(frames):
    out = []
    for f in frames:
        g = f.copy()
        g[40:90, 50:110] = 255 - g[40:90, 50:110]  # a strongly changed compact region
        out.append(g)
    return out


def _write(path, frames, audio):
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=SR)
        a.layout = "mono"
        for f in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        for i in range(0, audio.size, 1024):
            af = av.AudioFrame.from_ndarray(audio[None, i:i + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, i, Fraction(1, SR)
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)


def test_scores_separate_same_and_different_signals():
    frames, audio = _content(0)
    _, other = _content(1)
    assert audio_similarity(audio, audio * 0.9) > 0.99
    assert audio_similarity(audio, other) < 0.9
    assert video_difference([f[..., 0] for f in frames[:3]], [f[..., 0] for f in frames[:3]]) == 0.0
    swapped = _swap_face(frames[:3])
    assert video_difference([f[..., 0] for f in frames[:3]], [f[..., 0] for f in swapped]) > 50


def test_compare_mode_derives_categories_from_real_mp4s(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    part.mkdir()
    frames, audio = _content(0)
    _, other_audio = _content(2)
    _write(part / "orig.mp4", frames, audio)
    _write(part / "fv.mp4", _swap_face(frames), audio)
    _write(part / "fa.mp4", frames, other_audio)
    _write(part / "fvfa.mp4", _swap_face(frames), other_audio)
    meta = {"orig.mp4": {"label": "REAL", "split": "train"}}
    for k in ("fv.mp4", "fa.mp4", "fvfa.mp4"):
        meta[k] = {"label": "FAKE", "split": "train", "original": "orig.mp4"}
    meta["lost.mp4"] = {"label": "FAKE", "split": "train", "original": "not_here.mp4"}
    (part / "lost.mp4").write_bytes(b"")
    (part / "metadata.json").write_text(json.dumps(meta))
    recs = {r.video_id: r for r in load_dataset("dfdc", tmp_path, modality_labels="compare")}
    assert recs["orig.mp4"].category == "RVRA"
    assert recs["fv.mp4"].category == "FVRA", recs["fv.mp4"].extra
    assert recs["fa.mp4"].category == "RVFA", recs["fa.mp4"].extra
    assert recs["fvfa.mp4"].category == "FVFA", recs["fvfa.mp4"].extra
    assert recs["fv.mp4"].extra["dfdc_audio_similarity"] > 0.9
    lost = recs["lost.mp4"]
    assert (lost.video_label, lost.audio_label, lost.extra["dfdc_compare_error"]) == (None, None, "original not available")
