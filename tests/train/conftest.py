"""Fixtures for the trainer tests: a tiny learnable cache written straight in the cache format.

The cache follows docs/architecture.md (manifest.jsonl + cache_config.json + safetensors sample files
with frames / logmel / frame labels and the record in the metadata), so these tests do not depend on
decoding or face detection. Fake video tracks carry a bright block in the face crops and fake audio
tracks a loud mel band, so a tiny model learns the task in a few dozen steps.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from macbdf.config import PreprocessConfig

FACE, N_MELS, T = 32, 32, 8
CATS = ("RVRA", "RVFA", "FVRA", "FVFA")


def write_cache(root: Path, n_train: int = 24, n_val: int = 12, seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    pre = PreprocessConfig(face_size=FACE, n_mels=N_MELS)
    mpf = pre.mel_per_frame
    root.mkdir(parents=True, exist_ok=True)
    (root / "cache_config.json").write_text(json.dumps(pre.to_dict()))
    records = []
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "val"
        cat = CATS[i % 4]
        vfake, afake = int(cat[0] == "F"), int(cat[2] == "F")
        nf = int(rng.integers(T - 2, T + 5))  # some clips shorter than the window (padding), most longer
        frames = rng.integers(40, 120, size=(nf, FACE, FACE, 3), dtype=np.uint8)
        if vfake:
            frames[:, 8:20, 8:20, :] = 230
        mel = rng.normal(-6.0, 1.0, size=(nf * mpf, N_MELS)).astype(np.float16)
        if afake:
            mel[:, 10:16] += 6.0
        vid = f"s{i:03d}"
        rel = f"shards/000/{vid}.safetensors"
        rec = {
            "video_id": vid, "path": f"{vid}.mp4", "label": int(vfake or afake), "video_label": vfake,
            "audio_label": afake, "fake_periods": [], "category": cat,
            "method": "real" if cat == "RVRA" else ("faceswap" if vfake else "tts"), "split": split,
            "identity": f"id{i % 6}", "dataset": "synth", "extra": {}, "file": rel, "num_frames": nf,
            "fps": 25.0, "duration": nf / 25.0, "flags": [],
        }
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_file(
            {"frames": frames, "logmel": mel,
             "frame_label_video": np.full(nf, vfake, np.uint8), "frame_label_audio": np.full(nf, afake, np.uint8)},
            str(root / rel), metadata={"record": json.dumps(rec)},
        )
        records.append(rec)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "failures.jsonl").write_text("")
    return root


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cache(tmp_path_factory.mktemp("cache") / "c")
