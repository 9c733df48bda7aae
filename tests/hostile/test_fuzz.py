"""Bounded, seeded fuzzing (issue 15): byte mutations and truncations of a small valid MP4 (made here)
through `detect`, `prepare` and the server, and of a cache sample through the readers; plus
property-based cases in test_properties.py.

Every input must give an answer, never a traceback, a non-finite number, a 5xx or a leftover file.
About 30 s on 2 CPU cores.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hostile_media import strict_json, write_cache, write_clip

from macbdf.detect import ABSTAIN_REASONS, VERDICTS, DetectionResult

SEED = 15
N_MEDIA = 14      # mutants of the MP4
N_SAMPLE = 24     # mutants of the cache sample


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One seeded mutation: flip bytes, zero or shuffle a range, duplicate or drop a chunk, or truncate."""
    b = bytearray(data)
    kind = int(rng.integers(0, 5))
    n = len(b)
    if kind == 0:                                   # flip 1..64 random bytes
        for i in rng.integers(0, n, int(rng.integers(1, 65))):
            b[int(i)] ^= int(rng.integers(1, 256))
    elif kind == 1:                                 # zero a range
        i, k = int(rng.integers(0, n)), int(rng.integers(1, 4096))
        b[i:i + k] = bytes(len(b[i:i + k]))
    elif kind == 2:                                 # truncate
        del b[int(rng.integers(1, n)):]
    elif kind == 3:                                 # duplicate a chunk in place
        i, j = sorted(int(x) for x in rng.integers(0, n, 2))
        b[j:j] = b[i:i + 2048]
    else:                                           # drop a chunk
        i = int(rng.integers(0, n))
        del b[i:i + int(rng.integers(1, 2048))]
    return bytes(b)


@pytest.fixture(scope="module")
def mutants(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("fuzz")
    src = write_clip(d / "seed.mp4", seconds=0.48, size=(96, 72), seed=7)
    data = src.read_bytes()
    rng = np.random.default_rng(SEED)
    out = []
    for k in range(N_MEDIA):
        p = d / "mutants" / f"m{k:02d}.mp4"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(mutate(data, rng))
        out.append(p)
    return out


def _check(r: DetectionResult) -> None:
    d = r.to_dict()
    strict_json(json.dumps(d, allow_nan=False))
    if r.error is not None:
        assert "\n" not in r.error and "Traceback" not in r.error and r.verdict is None
        return
    assert r.verdict in VERDICTS
    if r.verdict == "abstain":
        assert r.abstain_reason in ABSTAIN_REASONS and r.p_fake is None
    else:
        assert math.isfinite(r.p_fake) and 0.0 <= r.p_fake <= 1.0
        for p in (r.p_audio_fake, r.p_video_fake):
            assert p is None or math.isfinite(p)
        assert all(math.isfinite(x) for x in r.frame_scores["audio"] + r.frame_scores["video"])


def test_fuzz_detect(det, mutants: list[Path]) -> None:
    answers = [det.detect(p, timeout_s=60.0) for p in mutants]
    for r in answers:
        _check(r)
    # the mutations are not all fatal: some clips are still judged, some fail (sanity of the fuzzer)
    assert any(r.error is None for r in answers) and any(r.error is not None for r in answers)


def test_fuzz_prepare(mutants: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from macbdf.cli import main
    from macbdf.data.manifest import read_manifest
    from macbdf.data.cache import read_failures, verify_sample

    out = tmp_path / "cache"
    rc = main(["prepare", "--dataset", "folder", "--root", str(mutants[0].parent), "--out", str(out), "--quiet",
               "--face-size", "32"])
    err = capsys.readouterr().err
    assert rc in (0, 1) and "Traceback" not in err
    recs = read_manifest(out / "manifest.jsonl")
    fails = read_failures(out)
    assert len(recs) + len(fails) == N_MEDIA
    for r in recs:
        assert verify_sample(out / r.file) is True
    assert all("\n" not in f["reason"] for f in fails)
    assert not list(out.rglob("*.tmp"))


def test_fuzz_server(det, mutants: list[Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from macbdf.serve import ServeSettings, create_app

    up = tmp_path / "uploads"
    up.mkdir()
    with TestClient(create_app(det, ServeSettings(tmp_dir=str(up)))) as c:
        for p in mutants[: N_MEDIA // 2]:
            r = c.post("/v1/detect", files={"file": (p.name, p.read_bytes(), "video/mp4")})
            assert r.status_code < 500, r.text
            body = strict_json(r.text)
            assert str(up) not in r.text
            if r.status_code == 200:
                assert body["verdict"] in VERDICTS
    assert list(up.iterdir()) == []


def test_fuzz_cache_sample(tmp_path: Path) -> None:
    from macbdf.data.dataset import CacheDataset
    from macbdf.data.cache import CacheError, read_sample, verify_sample

    cache = write_cache(tmp_path / "c", n_train=2, n_val=0)
    rec = json.loads((cache / "manifest.jsonl").read_text().splitlines()[0])
    path = cache / rec["file"]
    good = path.read_bytes()
    clean = read_sample(cache, rec)
    rng = np.random.default_rng(SEED)
    outcomes = {"refused": 0, "intact": 0}
    for _ in range(N_SAMPLE):
        path.write_bytes(mutate(good, rng))
        try:
            ok = verify_sample(path)
        except CacheError as e:
            assert "\n" not in str(e) and rec["file"] in str(e)
            outcomes["refused"] += 1
        else:
            # Accepted only when the tensors are exactly the written ones (e.g. a flip in header padding).
            assert ok is True
            got = read_sample(cache, rec)
            assert all(np.array_equal(got[k], clean[k]) for k in clean)
            outcomes["intact"] += 1
        ds = CacheDataset(cache, num_frames=8, train=False)
        item = ds[0] if ds.records[0].file == rec["file"] else ds[1]
        if "bad_sample" not in item:
            assert np.isfinite(item["audio"].numpy()).all()
    assert outcomes["refused"] > 0
