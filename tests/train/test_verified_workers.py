"""A sample's checksum is verified once per run, also when DataLoader workers (fresh every epoch) load it."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from macbdf.cli import main
from macbdf.data.dataset import CacheDataset, collate


def _epoch(ds: CacheDataset, workers: int) -> list[str]:
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate)
    seen: list[str] = []
    for batch in loader:
        files = batch.pop("verified_files", [])
        assert "verified_file" not in batch and all(isinstance(f, str) for f in files)
        seen += files
        ds.mark_verified(files)           # what the trainer does with every batch
    return seen


def test_worker_verifications_reach_the_main_process(tiny_cache: Path) -> None:
    ds = CacheDataset(tiny_cache, split="train", num_frames=8, train=True)
    files = sorted(str(r.file) for r in ds.records)
    first = _epoch(ds, workers=1)
    assert sorted(set(first)) == files            # each file verified (in the worker) and reported
    assert ds._verified == set(files)             # ... and now known to the main process
    assert _epoch(ds, workers=1) == []            # the next epoch's fresh worker reads no file whole again
    plain = CacheDataset(tiny_cache, split="train", num_frames=8, train=True, verify=False)
    assert _epoch(plain, workers=0) == []         # no verification, nothing reported


def test_training_with_a_worker_consumes_the_reports(tiny_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--data", str(tiny_cache), "--out", str(out), "--model", "tiny", "--steps", "6",
               "--batch-size", "4", "--workers", "1", "--eval-every", "0", "--no-progress"])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "train" for r in rows)
    assert not any(r.get("kind") == "bad_sample" for r in rows)   # the report is not mistaken for a sample
