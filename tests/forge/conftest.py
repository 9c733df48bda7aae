"""Fixtures for the forge tests: a few procedural talking heads as "real" sources, a faceless clip,
a silent clip, and one forged dataset (kept cache) shared by the read-only tests."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from macbdf.synth.clip import render_clip
from macbdf.synth.encode import write_mp4
from macbdf.synth.plan import ClipSpec

REPO = Path(__file__).resolve().parents[2]
REALCORPUS = REPO.parent / "shared" / "realcorpus"

# (file, identity, with audio): two clips of "ann" (same-speaker donors), three more speakers, one
# silent speaker, and a clip without a face.
SOURCES = [("ann_1.mp4", "ann", True), ("ann_2.mp4", "ann", True), ("bob.mp4", "bob", True),
           ("cat.mp4", "cat", True), ("dan.mp4", "dan", True), ("eve_silent.mp4", "eve", False)]
FORGE_KW = dict(segment_s=2.0, min_segment_s=1.5, fakes_per_segment=5, crop_size=96, seed=3,
                split_file=None, progress=False)


def _render(path: Path, ident: int, seed: int, frames: int, audio: bool) -> None:
    spec = ClipSpec(index=seed, file=path.name, identity=ident, split="train", category="RVRA", num_frames=frames,
                    base_seed=1000 + seed, clip_seed=2000 + seed)
    clip = render_clip(spec, 0, 128)
    write_mp4(path, clip.frames, clip.audio if audio else None)


@pytest.fixture(scope="session")
def src_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Source clips (2.4 s, 128 px) + MANIFEST.csv (identities) + splits.json (cat alone in val, dan alone in test)."""
    d = tmp_path_factory.mktemp("forge_src")
    idents = {"ann": 0, "bob": 1, "cat": 2, "dan": 3, "eve": 4}
    for k, (name, who, audio) in enumerate(SOURCES):
        _render(d / name, idents[who], k, 60, audio)
    # No face: a drifting colour gradient with a tone.
    n = 50
    g = np.linspace(0, 255, 128, dtype=np.float32)
    frames = np.stack([np.stack([np.roll(g, 3 * i)[None, :].repeat(128, 0)] * 3, -1) for i in range(n)]).astype(np.uint8)
    t = np.arange(n * 640) / 16000
    write_mp4(d / "noface.mp4", frames, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    with open(d / "MANIFEST.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "identity", "has_audio", "audio_content"])
        for name, who, audio in SOURCES:
            w.writerow([name, "real", who, str(audio), "speech" if audio else "none"])
        w.writerow(["noface.mp4", "real", "nobody", "True", "speech"])
        w.writerow(["some_fake.mp4", "fake", "ann", "True", "speech"])   # fakes are ignored (file need not exist)
    (d / "splits.json").write_text('{"ann": "train", "bob": "train", "cat": "val", "dan": "test", '
                                   '"eve": "train", "nobody": "train"}')
    return d


@pytest.fixture(scope="session")
def forged(src_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One LAV-DF forge of the sources (workers=1, cache kept) and its report."""
    from macbdf.forge import forge

    out = tmp_path_factory.mktemp("forged") / "lavdf"
    kw = dict(FORGE_KW, split_file=src_dir / "splits.json")
    rep = forge(src_dir, out, manifest=src_dir / "MANIFEST.csv", layout="lavdf", workers=1, keep_cache=True, **kw)
    return out, rep


@pytest.fixture(scope="session")
def forge_kw(src_dir: Path) -> dict:
    """The small-clip forge settings shared by the tests (2 s segments, 96 px crops, the splits.json table)."""
    return dict(FORGE_KW, split_file=src_dir / "splits.json")


@pytest.fixture(scope="session")
def realcorpus() -> Path:
    """../shared/realcorpus (real talking-face clips); tests using it skip when it is absent."""
    if not (REALCORPUS / "MANIFEST.csv").is_file():
        pytest.skip("../shared/realcorpus not present (internal real clips)")
    return REALCORPUS
