"""Train and evaluate read an unmerged `prepare --shard K/N` cache (issue 13, item 2): `prepare --help`
promises that readers accept the shard manifests, and every reader goes through `macbdf.data.cache`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from macbdf.cli import main
from macbdf.data import cache


@pytest.fixture(scope="module")
def sharded_cache(tmp_path_factory: pytest.TempPathFactory, clip_writer) -> Path:
    """8 short drawn clips (4 train, 2 val, 2 test; every other one labelled fake), prepared as shards 0/2 and 1/2."""
    d = tmp_path_factory.mktemp("sharded")
    rows = []
    for i in range(8):
        clip_writer(d / f"c{i}.mp4", seconds=0.64, size=(96, 72), seed=i)
        split = "train" if i < 4 else ("val" if i < 6 else "test")
        fake = i % 2
        rows.append({"path": f"c{i}.mp4", "video_id": f"c{i}", "split": split, "label": fake,
                     "video_label": fake, "audio_label": 0, "method": "faceswap" if fake else "real"})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "cache"
    for k in range(2):
        assert main(["prepare", "--dataset", "manifest", "--root", str(d / "manifest.jsonl"), "--out", str(out),
                     "--face-size", "32", "--n-mels", "16", "--shard", f"{k}/2", "--quiet"]) == 0
    assert not (out / "manifest.jsonl").exists() and len(cache.manifest_files(out)) == 2
    return out


def test_train_and_evaluate_on_unmerged_shards(sharded_cache: Path, tmp_path: Path) -> None:
    from macbdf_train.evaluate import evaluate
    from macbdf_train.trainer import TrainConfig, train

    run = tmp_path / "run"
    s = train(TrainConfig(data=str(sharded_cache), out=str(run), model="tiny", steps=2, batch_size=2, eval_every=2,
                          save_every=2, progress=False, seed=0, overrides={"ms_depth": 0}))
    assert s["steps"] == 2 and s["final_val"]["n"] == 2
    rep = evaluate(run, sharded_cache, split="test", progress=False)
    assert rep["overall"]["n"] == 2 and not rep["failures"]
    assert rep["threshold"]["source"] == "val"          # the val split of the shards was found too
