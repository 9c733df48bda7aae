"""Fixtures for the trainer tests: a tiny learnable cache written with the cache writer itself.

The samples go through `macbdf.data.cache.write_sample` (the function `macbdf prepare` uses), so the
tests read exactly the cache format, without paying for video decoding and face detection. Fake video
tracks carry a bright block in the face crops and fake audio tracks a loud mel band, so a tiny model
can learn the task.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.data.manifest import SampleRecord

FACE, N_MELS, T = 32, 32, 8
CATS = ("RVRA", "RVFA", "FVRA", "FVFA")


def write_cache(root: Path, n_train: int = 24, n_val: int = 12, seed: int = 0) -> Path:
    from macbdf.data.cache import write_cache_config, write_jsonl, write_sample
    from macbdf.media.prepare import PreparedClip

    rng = np.random.default_rng(seed)
    pre = PreprocessConfig(face_size=FACE, n_mels=N_MELS)
    mpf = pre.mel_per_frame
    root.mkdir(parents=True, exist_ok=True)
    write_cache_config(root, pre)
    rows = []
    for i in range(n_train + n_val):
        cat = CATS[i % 4]
        vfake, afake = int(cat[0] == "F"), int(cat[2] == "F")
        nf = int(rng.integers(T - 2, T + 5))  # some clips shorter than the window (padding), most longer
        frames = rng.integers(40, 120, size=(nf, FACE, FACE, 3), dtype=np.uint8)
        if vfake:
            frames[:, 8:20, 8:20, :] = 230
        mel = rng.normal(-6.0, 1.0, size=(nf * mpf, N_MELS)).astype(np.float32)
        if afake:
            mel[:, 10:16] += 6.0
        rec = SampleRecord(
            video_id=f"s{i:03d}", path=f"s{i:03d}.mp4", label=int(vfake or afake), video_label=vfake,
            audio_label=afake, category=cat, method="real" if cat == "RVRA" else ("faceswap" if vfake else "tts"),
            split="train" if i < n_train else "val", identity=f"id{i % 6}", dataset="synth",
        )
        clip = PreparedClip(frames=frames, logmel=mel, fps=pre.fps, duration=nf / pre.fps)
        rows.append(write_sample(root, rec, clip).to_dict())
    write_jsonl(rows, root / "manifest.jsonl")
    write_jsonl([], root / "failures.jsonl")
    return root


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cache(tmp_path_factory.mktemp("cache") / "c")
