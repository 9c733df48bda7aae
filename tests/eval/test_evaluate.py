"""The evaluation runner and `macbdf evaluate` on a tiny cache (windowing, report, CLI, errors)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from macbdf.cli import main
from macbdf.config import PreprocessConfig
from macbdf.data.manifest import read_manifest
from macbdf.models.config import ModelConfig
from macbdf_train.evaluate import evaluate, format_report, load_cache_records, score_split



class StubModel(nn.Module):
    """Scores = mean brightness of each valid frame; sample logit = logit of the window mean."""

    def __init__(self, num_frames: int = 8) -> None:
        super().__init__()
        self.config = ModelConfig(num_frames=num_frames, preprocess=PreprocessConfig(face_size=32, n_mels=16))

    def forward(self, batch: dict) -> dict:
        v = batch["video"]  # (B, T, 3, S, S)
        m = batch["frame_mask"].float()
        per_frame = v.mean(dim=(2, 3, 4)).clamp(1e-4, 1 - 1e-4)  # (B, T)
        win = (per_frame * m).sum(1) / m.sum(1).clamp_min(1)
        lg = torch.logit(per_frame)
        B = v.shape[0]
        return {"logit": torch.logit(win), "audio_logit": torch.zeros(B), "video_logit": torch.logit(win),
                "frame_logit_audio": torch.zeros_like(lg), "frame_logit_video": lg,
                "emb_fused": torch.ones(B, 4), "emb_audio": torch.ones(B, 4), "emb_video": torch.ones(B, 4)}


def test_whole_clip_windows_and_frame_weighted_mean(tiny_cache: Path) -> None:
    from safetensors.numpy import load_file

    recs = [r for r in load_cache_records(tiny_cache) if r.split == "test"]
    scored = score_split(StubModel(num_frames=8), tiny_cache, recs, batch_size=3, progress=False)
    assert len(scored.records) == len(recs) and not scored.failures
    for i, r in enumerate(scored.records):
        frames = load_file(str(tiny_cache / r.file))["frames"].astype(np.float64) / 255.0
        per_frame = frames.mean(axis=(1, 2, 3))
        assert r.num_frames > 8 or i >= 0  # clips of 12, 17 and 22 frames: 2-3 windows each
        assert scored.frame_video[i].shape == (r.num_frames,)
        np.testing.assert_allclose(scored.frame_video[i], per_frame, rtol=1e-4)
        # frame-weighted mean of window means == mean over all frames
        np.testing.assert_allclose(scored.p[i], per_frame.mean(), rtol=1e-4)
        assert scored.frame_label_video[i].shape == (r.num_frames,)


def test_max_aggregation_takes_the_most_suspicious_window(tiny_cache: Path) -> None:
    from safetensors.numpy import load_file

    recs = [r for r in load_cache_records(tiny_cache) if r.split == "test"]
    scored = score_split(StubModel(num_frames=8), tiny_cache, recs, batch_size=3, progress=False, aggregation="max")
    for i, r in enumerate(scored.records):
        per_frame = load_file(str(tiny_cache / r.file))["frames"].astype(np.float64).mean(axis=(1, 2, 3)) / 255.0
        windows = [per_frame[s:s + 8].mean() for s in range(0, r.num_frames, 8)]   # consecutive, last one short
        np.testing.assert_allclose(scored.p[i], max(windows), rtol=1e-4)
    rep = evaluate("stub", tiny_cache, model=StubModel(8), progress=False, aggregation="max")
    assert rep["aggregation"] == "max"
    with pytest.raises(Exception, match="aggregation"):
        score_split(StubModel(8), tiny_cache, recs, progress=False, aggregation="median")


def test_report_sections_on_stub(tiny_cache: Path) -> None:
    m = StubModel(8)
    rep = evaluate("stub", tiny_cache, model=m, meta={"trained_on": str(tiny_cache)}, progress=False,
                   keep_scores=True)
    # fake video is brighter in the cache: the brightness stub separates video fakes
    assert rep["per_category"]["FVRA"]["auc"] == 1.0 and rep["per_category"]["FVFA"]["auc"] == 1.0
    assert rep["per_category"]["RVFA"]["auc"] < 0.9  # audio-only fakes are invisible to it
    assert rep["threshold"]["source"] == "val"
    assert rep["frame"]["auc_video"] > 0.95
    assert "ap" in rep["localization"] and rep["localization"]["n_segments"] > 0
    assert rep["unseen_methods"]["methods"] == ["unseen_blur"]
    assert rep["cross_dataset"] is False
    assert len(rep["scores"]["p"]) == rep["overall"]["n"]
    text = format_report(rep)
    assert "RVFA" in text and "localisation" in text and "unseen_blur" in text


def test_evaluate_cli_on_trained_tiny_checkpoint(tiny_cache: Path, tmp_path: Path, cache_factory) -> None:
    from macbdf_train.trainer import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(data=str(tiny_cache), out=str(run), model="tiny", steps=4, batch_size=8, eval_every=4,
                      progress=False, tensorboard=False, seed=0))
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--checkpoint", str(run), "--data", str(tiny_cache), "--json", str(out),
               "--plots", str(tmp_path / "plots"), "--quiet"])
    assert rc == 0
    rep = json.loads(out.read_text())  # strict JSON: NaN became null with a note
    for k in ("overall", "per_category", "per_method", "per_modality", "frame", "localization", "threshold"):
        assert k in rep
    o = rep["overall"]
    assert o["n"] == 16 and 0.0 <= o["auc"] <= 1.0 and 0.0 <= o["acc"] <= 1.0
    assert set(rep["per_category"]) == {"RVRA", "RVFA", "FVRA", "FVFA"}
    assert rep["per_category"]["RVRA"]["auc"] is None and "real-only" in rep["notes"]["per_category.RVRA.auc"]
    assert set(rep["per_modality"]) == {"audio", "video"}
    assert (tmp_path / "plots" / "roc.png").is_file()
    # cross-dataset: the same checkpoint on another cache, all samples, checkpoint threshold
    other = cache_factory(tmp_path / "other", per_cat={"test": 2}, seed=3, with_unseen=False)
    out2 = tmp_path / "cross.json"
    rc = main(["evaluate", "--checkpoint", str(run), "--data", str(other), "--split", "all",
               "--threshold-from", "checkpoint", "--json", str(out2), "--quiet"])
    assert rc == 0
    rep2 = json.loads(out2.read_text())
    assert rep2["cross_dataset"] is True and rep2["threshold"]["source"] == "checkpoint"
    assert rep2["overall"]["n"] == 8
    # --bootstrap: seeded 95% intervals whose estimates are the report's own figures
    out3 = tmp_path / "boot.json"
    argv = ["evaluate", "--checkpoint", str(run), "--data", str(tiny_cache), "--json", str(out3), "--quiet",
            "--bootstrap", "300", "--bootstrap-seed", "4"]
    assert main(argv) == 0
    rep3 = json.loads(out3.read_text())
    b = rep3["bootstrap"]
    assert b["n_boot"] == 300 and b["seed"] == 4
    o3 = rep3["overall"]
    for k, key in (("auc", "auc"), ("ap", "ap"), ("acc", "acc"), ("acc_thr", "acc_thr")):
        iv = b["metrics"][k]
        assert iv["estimate"] == pytest.approx(o3[key]) and iv["low"] <= iv["estimate"] <= iv["high"]
    from macbdf.metrics.stats import bootstrap_ci

    rep4 = evaluate(run, tiny_cache, split="test", progress=False, keep_scores=True, bootstrap=300, bootstrap_seed=4)
    direct = bootstrap_ci(rep4["scores"]["label"], rep4["scores"]["p"], "auc", n_boot=300, seed=4)
    assert b["metrics"]["auc"]["low"] == pytest.approx(direct.low) and b["metrics"]["auc"]["high"] == pytest.approx(direct.high)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(tiny_cache), "--bootstrap", "-1"]) == 2


def test_evaluate_cli_errors(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture, cache_factory,
                             tiny_pre) -> None:
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", str(tiny_cache), "--quiet"])
    assert rc == 2 and "checkpoint" in capsys.readouterr().err
    from macbdf.checkpoint import save_model
    import macbdf

    ck = tmp_path / "ck"
    save_model(macbdf.create_model("tiny", preprocess=tiny_pre.to_dict()), ck)
    rc = main(["evaluate", "--checkpoint", str(ck), "--data", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a prepared cache" in err and "Traceback" not in err
    rc = main(["evaluate", "--checkpoint", str(ck), "--data", str(tiny_cache), "--threshold-from", "best"])
    assert rc == 2
    # a corrupt sample file is reported, the others are evaluated, exit code 1
    broken = tmp_path / "broken"
    cache_factory(broken, per_cat={"test": 1}, with_unseen=False)
    victim = read_manifest(broken / "manifest.jsonl")[0]
    (broken / victim.file).write_bytes(b"not a safetensors file")
    out = tmp_path / "b.json"
    rc = main(["evaluate", "--checkpoint", str(ck), "--data", str(broken), "--json", str(out), "--quiet"])
    rep = json.loads(out.read_text())
    assert rc == 1 and rep["failures"][0]["video_id"] == victim.video_id and rep["overall"]["n"] == 3
    assert not math.isnan(rep["threshold"]["value"])
