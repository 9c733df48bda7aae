"""`macbdf prepare`: cache format, failures, resume, shards + merge, and the CacheDataset on top."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from macbdf.cli import main
from macbdf.config import PreprocessConfig
from macbdf.data.dataset import CacheDataset, collate
from macbdf.data import cache


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, clip_maker) -> Path:
    """A generic manifest dataset: 4 good clips (one partially fake), 3 bad files."""
    d = tmp_path_factory.mktemp("ds")
    (d / "v").mkdir()
    rows = []
    for i in range(4):
        clip_maker(d / "v" / f"c{i}.mp4", seconds=1.2 + 0.4 * i, audio_rate=None if i == 3 else 16000)
        row = {"path": f"v/c{i}.mp4", "video_id": f"clip-{i}", "split": "train" if i < 3 else "test",
               "label": 0, "method": "real"}
        if i == 1:
            row.update(label=1, video_label=1, audio_label=0, fake_periods=[[0.4, 0.8]], method="faceswap")
        if i == 2:
            row.update(label=1, video_label=0, audio_label=1, method="tts")
        rows.append(row)
    (d / "v" / "text.mp4").write_text("not a video\n")
    (d / "v" / "empty.mp4").write_bytes(b"")
    good = (d / "v" / "c0.mp4").read_bytes()
    (d / "v" / "trunc.mp4").write_bytes(good[: len(good) // 2])
    for name in ("text", "empty", "trunc"):
        rows.append({"path": f"v/{name}.mp4", "video_id": f"bad-{name}", "label": 0, "split": "train"})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _prepare(root: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "--dataset", "manifest", "--root", str(root), "--out", str(out),
                 "--face-size", "32", "--quiet", *extra])


def test_prepare_writes_cache_and_records_failures(dataset_dir, tmp_path, capsys):
    out = tmp_path / "cache"
    assert _prepare(dataset_dir, out, "--json") == 1          # some inputs failed
    summary = json.loads(capsys.readouterr().out)
    assert summary["prepared"] == 4 and summary["failed"] == 3
    fails = {r["video_id"]: r for r in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert set(fails) == {"bad-text", "bad-empty", "bad-trunc"}
    assert all(r["reason"] and "\n" not in r["reason"] and r["path"] for r in fails.values())
    assert "empty" in fails["bad-empty"]["reason"]
    assert PreprocessConfig.from_dict(json.loads((out / "cache_config.json").read_text())).face_size == 32
    recs = cache.read_cache_manifest(out)
    assert sorted(r.video_id for r in recs) == ["clip-0", "clip-1", "clip-2", "clip-3"]
    by_id = {r.video_id: r for r in recs}
    r1 = by_id["clip-1"]
    assert r1.file.startswith("shards/") and r1.num_frames == 40 and r1.fps == 25.0
    assert "no_face" in r1.flags and "no_audio" in by_id["clip-3"].flags
    s = cache.read_sample(out, r1)
    assert s["frames"].shape == (40, 32, 32, 3) and s["frames"].dtype == np.uint8
    assert s["logmel"].shape == (160, 64) and s["logmel"].dtype == np.float16
    # fake_periods [[0.4, 0.8]] at 25 fps -> frames 10..19 (video only; audio real)
    assert s["frame_label_video"].tolist() == [0] * 10 + [1] * 10 + [0] * 20
    assert not s["frame_label_audio"].any()
    s2 = cache.read_sample(out, by_id["clip-2"])        # audio fake, no periods: every frame
    assert s2["frame_label_audio"].all() and not s2["frame_label_video"].any()
    # The record travels inside the sample file too; no temporary files are left behind.
    assert cache.read_sample_record(out / r1.file).video_id == "clip-1"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_resume_skips_done_files(dataset_dir, tmp_path, capsys):
    out = tmp_path / "cache"
    assert _prepare(dataset_dir, out, "--limit", "2") == 0
    first = {p: p.stat().st_mtime_ns for p in out.glob("shards/*/*.safetensors")}
    assert len(first) == 2
    capsys.readouterr()
    assert _prepare(dataset_dir, out, "--json") == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 2 and summary["prepared"] == 2
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())    # untouched
    assert len(cache.read_cache_manifest(out)) == 4


def test_config_mismatch_is_a_usage_error(dataset_dir, tmp_path, capsys):
    out = tmp_path / "cache"
    assert _prepare(dataset_dir, out, "--limit", "1") == 0
    assert main(["prepare", "--dataset", "manifest", "--root", str(dataset_dir), "--out", str(out),
                 "--face-size", "48", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_shards_partition_and_merge(dataset_dir, tmp_path, capsys):
    out = tmp_path / "cache"
    for k in range(3):
        _prepare(dataset_dir, out, "--shard", f"{k}/3")
    ids = []
    for k in range(3):
        m = out / f"manifest-{k}-of-3.jsonl"
        f = out / f"failures-{k}-of-3.jsonl"
        ids += [json.loads(line)["video_id"] for p in (m, f) for line in p.read_text().splitlines()]
    assert sorted(ids) == sorted(["clip-0", "clip-1", "clip-2", "clip-3", "bad-text", "bad-empty", "bad-trunc"])
    assert not (out / "manifest.jsonl").exists()
    assert len(cache.read_cache_manifest(out)) == 4                 # readers accept unmerged shards
    assert main(["prepare", "--merge", "--out", str(out)]) == 0
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4
    assert len((out / "failures.jsonl").read_text().splitlines()) == 3
    assert main(["prepare", "--merge", "--rescan", "--out", str(out)]) == 0
    assert len(cache.read_cache_manifest(out)) == 4


def test_bad_usage_exit_2(tmp_path, capsys):
    assert main(["prepare", "--dataset", "manifest", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert main(["prepare", "--dataset", "folder", "--root", str(tmp_path), "--out", str(tmp_path / "c"),
                 "--shard", "3/3"]) == 2
    assert main(["prepare", "--dataset", "nosuchdataset", "--root", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_library_call_raises_one_line_usage_errors(dataset_dir, tmp_path):
    """`prepare_cache` is the library behind the command: usage errors are `PrepareError`, no exit codes."""
    from macbdf.data.prepare_cache import PrepareError, prepare_cache

    with pytest.raises(PrepareError, match="--root not found"):
        prepare_cache("manifest", tmp_path / "nope.jsonl", tmp_path / "c", progress=False)
    with pytest.raises(PrepareError, match="0 <= K < N"):
        prepare_cache("manifest", dataset_dir, tmp_path / "c", shard=(3, 3), progress=False)
    info = prepare_cache("manifest", dataset_dir, tmp_path / "c", cfg=PreprocessConfig(face_size=32), limit=1,
                         shard=(0, 1), progress=False)
    assert info["prepared"] == 1 and info["shard"] == "0/1" and info["manifest_file"] == "manifest-0-of-1.jsonl"


def test_parallel_workers_match_serial(dataset_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _prepare(dataset_dir, a, "--limit", "3")
    _prepare(dataset_dir, b, "--limit", "3", "--workers", "2")
    for r in cache.read_cache_manifest(a):
        x, y = cache.read_sample(a, r), cache.read_sample(b, r)
        np.testing.assert_array_equal(x["frames"], y["frames"])
        np.testing.assert_array_equal(x["logmel"], y["logmel"])


def test_cache_dataset_windows_labels_and_collate(dataset_dir, tmp_path):
    out = tmp_path / "cache"
    _prepare(dataset_dir, out)
    ds = CacheDataset(out, split=["train", "val"], num_frames=16, train=True, face_size=24)   # val may be carved from train
    assert len(ds) == 3 and ds.method_vocab == {"real": 0, "faceswap": 1, "tts": 2}
    torch.manual_seed(0)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch["video"].shape == (3, 16, 3, 24, 24) and batch["video"].dtype == torch.float32
    assert 0.0 <= float(batch["video"].min()) and float(batch["video"].max()) <= 1.0
    assert batch["audio"].shape == (3, 64, 64) and batch["frame_mask"].all()
    for key in ("label", "video_label", "audio_label"):
        assert batch[key].shape == (3,) and batch[key].dtype == torch.float32
    assert batch["frame_label_video"].shape == (3, 16) and batch["method_id"].dtype == torch.int64
    # Evaluation: the centred window of the partially faked clip contains its fake frames 10..19.
    ev = CacheDataset(out, num_frames=16, train=False)
    i1 = [r.video_id for r in ev.records].index("clip-1")
    item = ev[i1]
    assert int(item["start_frame"]) == 12 and item["label"] == 1.0 and item["method_id"] == 1
    assert item["frame_label_video"].tolist() == [1.0] * 8 + [0.0] * 8
    # A window outside the fake period is a real window.
    first = CacheDataset(out, num_frames=8, train=False, eval_window="first")[i1]
    assert first["label"] == 0.0 and first["method_id"] == 0
    # per-modality keys: clip-1 is a video-only fake (faceswap), clip-2 an audio-only fake (tts)
    assert ev.video_method_vocab == {"real": 0, "faceswap": 1} and ev.audio_method_vocab == {"real": 0, "tts": 1}
    assert (int(item["video_method_id"]), int(item["audio_method_id"])) == (1, 0)
    i2 = ev[[r.video_id for r in ev.records].index("clip-2")]
    assert (int(i2["video_method_id"]), int(i2["audio_method_id"])) == (0, 1)
    assert (int(first["video_method_id"]), int(first["audio_method_id"])) == (0, 0)   # the real window
    # Short clips are padded and masked; padding of the log-mel is silence.
    long_ds = CacheDataset(out, num_frames=100, train=False)
    it = long_ds[[r.video_id for r in long_ds.records].index("clip-0")]
    assert int(it["frame_mask"].sum()) == 30 and not it["frame_mask"][30:].any()
    assert torch.allclose(it["audio"][120:], torch.tensor(float(np.log(1e-6))))
    assert float(it["video"][30:].abs().sum()) == 0.0
