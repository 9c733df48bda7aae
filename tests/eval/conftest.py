"""Fixtures for the evaluation tests: a tiny prepared cache written directly in the cache format
of docs/architecture.md (no synth/prepare needed), with a learnable signal.

Fake video tracks are brighter in the face region, fake audio tracks have more energy in the
upper mel bands; partial fakes carry fake periods so that localisation runs too.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.data.manifest import SampleRecord, category_of, write_manifest

PRE = PreprocessConfig(face_size=32, n_mels=16)
METHODS = {"RVRA": "real", "RVFA": "tts", "FVRA": "faceswap", "FVFA": "faceswap-tts"}


def make_tiny_cache(out: Path, per_cat: dict[str, int] | None = None, num_frames: int = 12, seed: int = 0,
                    partial_every: int = 3, with_unseen: bool = True) -> Path:
    """Write a cache of ``per_cat`` clips per split (dict split -> clips per category)."""
    from safetensors.numpy import save_file

    per_cat = per_cat or {"train": 6, "val": 3, "test": 4}
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cache_config.json").write_text(json.dumps(PRE.to_dict()))
    S, mpf, F = PRE.face_size, PRE.mel_per_frame, PRE.n_mels
    recs = []
    k = 0
    for split, n in per_cat.items():
        for cat, method in METHODS.items():
            for i in range(n):
                vl, al = int(cat[0] == "F"), int(cat[2] == "F")
                m = method
                if with_unseen and split == "test" and cat == "FVRA" and i == 0:
                    m = "unseen_blur"  # a method never seen in training
                T = num_frames + (i % 3) * 5  # clips longer than one window too
                periods: list[list[float]] = []
                flv = np.full(T, vl, np.uint8)
                fla = np.full(T, al, np.uint8)
                if (vl or al) and k % partial_every == 0:
                    a, b = 2, min(T, 8)
                    periods = [[a / PRE.fps, b / PRE.fps]]
                    flv[:] = 0
                    fla[:] = 0
                    if vl:
                        flv[a:b] = 1
                    if al:
                        fla[a:b] = 1
                frames = rng.integers(40, 120, size=(T, S, S, 3)).astype(np.uint8)
                frames[flv.astype(bool), 8:24, 8:24] += 100
                logmel = rng.normal(-4.0, 1.0, size=(T * mpf, F)).astype(np.float32)
                logmel[np.repeat(fla.astype(bool), mpf), F // 2:] += 3.0
                vid = f"{split}_{cat}_{i}"
                rec = SampleRecord(
                    video_id=vid, path=f"/nowhere/{vid}.mp4", label=int(vl or al), video_label=vl,
                    audio_label=al, fake_periods=periods, category=category_of(vl, al), method=m,
                    split=split, identity=f"id{i}", dataset="synth", file=f"shards/000/{vid}.safetensors",
                    num_frames=T, fps=PRE.fps, duration=T / PRE.fps,
                )
                p = out / rec.file
                p.parent.mkdir(parents=True, exist_ok=True)
                save_file({"frames": frames, "logmel": logmel.astype(np.float16),
                           "frame_label_video": flv, "frame_label_audio": fla}, str(p),
                          metadata={"record": json.dumps(rec.to_dict())})
                recs.append(rec)
                k += 1
    write_manifest(recs, out / "manifest.jsonl")
    (out / "failures.jsonl").write_text("")
    return out


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_cache(tmp_path_factory.mktemp("eval_cache") / "cache")


@pytest.fixture(scope="session")
def cache_factory():
    """`make_tiny_cache` itself, for tests that need a cache of their own shape."""
    return make_tiny_cache


@pytest.fixture(scope="session")
def tiny_pre() -> PreprocessConfig:
    return PRE
