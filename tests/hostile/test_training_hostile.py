"""Issue 15, cases 2 and 4: bad cache samples are skipped and logged with their file (training and
validation), checksums catch damaged bytes, a NaN never reaches a checkpoint, and a run that skips too
many steps fails."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hostile_media import rewrite_sample, write_cache

from macbdf.checkpoint import load_model
from macbdf.data.cache import CacheError, read_sample, verify_sample
from macbdf_train.trainer import TrainConfig, TrainError, train


def _cfg(data: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(data=str(data), out=str(out), model="tiny", steps=6, batch_size=4, eval_every=3,
                                save_every=3, log_every=1, progress=False, tensorboard=False, seed=0,
                                overrides={"ms_depth": 0})
    base.update(kw)
    return TrainConfig(**base)


def _rows(cache: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (cache / "manifest.jsonl").read_text().splitlines()]


def _finite_checkpoint(d: Path) -> None:
    model, _ = load_model(d)   # load_model refuses NaN/Inf weights and buffers
    for name, t in model.state_dict().items():
        assert torch.isfinite(t.float()).all(), name


def test_checksum_catches_damaged_bytes_and_old_samples_still_load(tmp_path: Path) -> None:
    cache = write_cache(tmp_path / "c", n_train=4, n_val=0)
    rows = _rows(cache)
    assert verify_sample(cache / rows[0]["file"]) is True
    # Header intact, bytes random: refused, naming the file.
    rewrite_sample(cache / rows[0]["file"], lambda t: t["frames"].__setitem__(
        slice(None), np.random.default_rng(0).integers(0, 256, t["frames"].shape, dtype=np.uint8)))
    with pytest.raises(CacheError, match="checksum mismatch") as ei:
        read_sample(cache, rows[0])
    assert rows[0]["file"] in str(ei.value)
    # An old sample without a checksum loads (not verified), with a warning.
    rewrite_sample(cache / rows[1]["file"], lambda t: None, keep_checksum=False)
    with pytest.warns(UserWarning, match="no checksum"):
        assert verify_sample(cache / rows[1]["file"]) is False
    assert read_sample(cache, rows[1])["frames"].shape[1:] == (32, 32, 3)
    # ... but never with NaN/Inf inside.
    rewrite_sample(cache / rows[2]["file"], lambda t: t["logmel"].__setitem__(0, np.inf), keep_checksum=False)
    with pytest.raises(CacheError, match="non-finite"):
        read_sample(cache, rows[2])


def test_bad_samples_are_skipped_and_logged(tmp_path: Path) -> None:
    cache = write_cache(tmp_path / "c", n_train=12, n_val=6)
    rows = _rows(cache)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    damaged = {
        train_rows[0]["file"]: "checksum mismatch",     # random bytes behind an intact header
        train_rows[1]["file"]: "missing",               # deleted
        train_rows[2]["file"]: "unreadable",            # cut in half
        train_rows[3]["file"]: "non-finite",            # +Inf log-mel (checksum recomputed: only the value is bad)
        val_rows[0]["file"]: "missing",                 # validation too
    }
    rewrite_sample(cache / train_rows[0]["file"], lambda t: t["logmel"].__setitem__(slice(None), 1.0))
    os.unlink(cache / train_rows[1]["file"])
    os.unlink(cache / val_rows[0]["file"])
    p = cache / train_rows[2]["file"]
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    from macbdf.data.cache import tensor_checksum

    def inf_logmel(t: dict) -> None:
        t["logmel"][:] = np.inf
    path3 = cache / train_rows[3]["file"]
    rewrite_sample(path3, inf_logmel)
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path3), "numpy") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    meta["sha256"] = tensor_checksum(tensors)
    save_file(tensors, str(path3), metadata=meta)

    run = tmp_path / "run"
    s = train(_cfg(cache, run, max_skip_fraction=0.5))
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    bad = {r["file"]: r["reason"] for r in recs if r["kind"] == "bad_sample"}
    assert set(bad) == set(damaged)
    for f, words in damaged.items():
        assert words in bad[f] and f in bad[f], (f, bad[f])
    assert s["steps"] == 6 and s["final_val"]["n"] == len(val_rows) - 1
    _finite_checkpoint(run)
    _finite_checkpoint(run / "best")


def _inject_inf(monkeypatch: pytest.MonkeyPatch, video_ids: set[str]) -> None:
    """Let +Inf log-mel through the dataset's checks for some samples (a bug or a bad augmentation
    upstream of the model): the trainer itself must keep NaN out of the weights and buffers."""
    from macbdf.data import dataset as ds

    orig = ds.CacheDataset.__getitem__

    def getitem(self: Any, idx: int) -> dict[str, Any]:
        item = orig(self, idx)
        if item.get("video_id") in video_ids and "audio" in item:
            item["audio"] = torch.full_like(item["audio"], float("inf"))
        return item

    monkeypatch.setattr(ds.CacheDataset, "__getitem__", getitem)


def test_nan_batches_leave_no_trace_in_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = write_cache(tmp_path / "c", n_train=8, n_val=4)
    train_ids = {r["video_id"] for r in _rows(cache) if r["split"] == "train"}
    _inject_inf(monkeypatch, {sorted(train_ids)[0]})
    run = tmp_path / "run"
    s = train(_cfg(cache, run, steps=8, eval_every=4, save_every=4, max_skip_fraction=1.0))
    assert s["skipped_steps"] >= 1   # the batches holding the poisoned sample
    _finite_checkpoint(run)
    _finite_checkpoint(run / "best")
    skips = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"kind": "skip"' in line]
    assert len(skips) == s["skipped_steps"] and all(r["train/loss"] is None for r in skips)


def test_too_many_skipped_steps_fail_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = write_cache(tmp_path / "c", n_train=8, n_val=4)
    train_ids = {r["video_id"] for r in _rows(cache) if r["split"] == "train"}
    _inject_inf(monkeypatch, set(sorted(train_ids)[:4]))   # half the data: most batches hold one
    run = tmp_path / "run"
    with pytest.raises(TrainError, match="training failed: .* steps skipped .*max_skip_fraction=0.1"):
        train(_cfg(cache, run, steps=8, eval_every=4, save_every=4, max_skip_fraction=0.1))
    # the CLI: one line, exit 1
    from macbdf.cli import main

    rc = main(["train", "--data", str(cache), "--model", "tiny", "--out", str(tmp_path / "run2"), "--steps", "8",
               "--batch-size", "4", "--max-skip-fraction", "0.1", "--no-progress", "--no-tensorboard",
               "--set", "ms_depth=0"])
    assert rc == 1
