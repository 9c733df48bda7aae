"""`macbdf ablate` (a couple of cells, a few steps, resumable) and `macbdf demo --quick` end to end."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from macbdf.cli import main


def test_ablate_two_cells_resumable(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "abl"
    argv = ["ablate", "--data", str(tiny_cache), "--out", str(out), "--cells", "full,audio_only",
            "--model", "tiny", "--steps", "3", "--batch-size", "8", "--lr-scale", "video_encoder=0.5"]
    assert main(argv) == 0
    # the multiplier reaches the cells that have a video encoder and is left out where there is none
    tc = {c: json.loads((out / "cells" / c / "run" / "train_config.json").read_text()) for c in ("full", "audio_only")}
    assert tc["full"]["lr_scales"] == {"video_encoder": 0.5} and tc["audio_only"]["lr_scales"] == {}
    md = (out / "ablation.md").read_text()
    assert str(tiny_cache.resolve()) in md  # marked with the data it ran on
    assert "test: 16 (12 fake / 4 real)" in md and "steps=3" in md
    assert "| full |" in md and "| audio_only |" in md
    rows = [r for r in csv.reader((out / "ablation.csv").read_text().splitlines()) if r and not r[0].startswith("#")]
    header, body = rows[0], rows[1:]
    assert [r[header.index("cell")] for r in body] == ["full", "audio_only"]
    for r in body:
        assert 0.0 <= float(r[header.index("auc")]) <= 1.0 and r[header.index("status")] == "done"
    rep = json.loads((out / "cells" / "audio_only" / "eval.json").read_text())
    assert rep["variant"]["modality"] == "audio" and set(rep["per_modality"]) == {"audio"}
    capsys.readouterr()
    # second run: nothing is retrained
    assert main(argv) == 0
    md2 = (out / "ablation.md").read_text()
    assert md2.count("| cached |") == 2


def test_ablate_usage_errors(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ablate", "--data", str(tiny_cache), "--out", str(tmp_path / "a"), "--cells", "nope"]) == 2
    assert "unknown cell" in capsys.readouterr().err
    assert main(["ablate", "--data", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert "not a prepared cache" in capsys.readouterr().err
    assert main(["ablate", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "wo_intra" in listing and "depth_6" in listing and "pareto_off" in listing
    assert main(["ablate", "--data", str(tiny_cache)]) == 2
    capsys.readouterr()
    assert main(["ablate", "--data", str(tiny_cache), "--out", str(tmp_path / "c"), "--lr-scale", "video_encoder"]) == 2
    err = capsys.readouterr().err
    assert "PREFIX=NUMBER" in err and err.count("\n") == 1
    assert main(["ablate", "--data", str(tiny_cache), "--out", str(tmp_path / "d"), "--lr-scale", "video_encoder=-1"]) == 2
    err = capsys.readouterr().err
    assert "must be > 0" in err and err.count("\n") == 1


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--preset", "compare"]) == 0
    text = capsys.readouterr().out
    assert "MACB-DF" in text and "audio-only" in text and "goal" in text
    # the full model is never called plain "MACB-DF (OM-Pareto)": its row says it carries our extension
    assert "MACB-DF (OM-Pareto)" not in text and "MACB-DF + sync ext." in text and "not part of the paper" in text
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["models"]) == {"macbdf", "macbdf_nosync", "audio_only", "video_only", "concat", "concat_nosync"}
    # fair comparisons: concat carries the same extension as the full model, the "no sync" rows do not
    tcs = {n: json.loads((out / "runs" / n / "config.json").read_text())["model"] for n in rep["models"]}
    assert tcs["macbdf"]["sync_dim"] == tcs["concat"]["sync_dim"] == 8
    assert tcs["macbdf_nosync"]["sync_dim"] == tcs["concat_nosync"]["sync_dim"] == 0
    assert tcs["concat"]["fusion"] == "concat" and tcs["macbdf"]["fusion"] == "macb"
    assert set(rep["comparisons"]) == {"fusion_with_sync", "fusion_without_sync", "sync_effect", "sync_effect_concat"}
    for c in rep["comparisons"].values():
        a, b = rep["models"][c["a"]]["auc"], rep["models"][c["b"]]["auc"]
        if a is not None and b is not None:
            assert c["diff"]["estimate"] == pytest.approx(a - b)
            assert c["diff"]["low"] <= c["diff"]["estimate"] <= c["diff"]["high"]
    ci = rep["models"]["macbdf"]["ci"]["auc"]
    assert ci["estimate"] == pytest.approx(rep["models"]["macbdf"]["auc"]) and ci["n_boot"] == 1000
    assert "test split is scored once" in rep["protocol"]
    for m in rep["models"].values():
        assert "auc" in m and "acc" in m and set(m["per_category"]) <= {"RVRA", "RVFA", "FVRA", "FVFA"}
        assert m["acc"] is not None and 0.0 <= m["acc"] <= 1.0
    assert (out / "checkpoint" / "config.json").is_file() and (out / "checkpoint" / "model.safetensors").is_file()
    assert rep["detect"]["results"] and rep["detect"]["results"][0]["verdict"] in ("fake", "real")
    assert (out / "roc.png").is_file()
    # the checkpoint works with `macbdf detect`
    clip = rep["detect"]["results"][0]["path"]
    assert main(["detect", "--checkpoint", str(out / "checkpoint"), clip, "--json", str(tmp_path / "d.json")]) == 0
    # resumable: a second run skips every stage
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--quick", "--preset", "compare"]) == 0
    assert capsys.readouterr().err.count("done earlier, skipped") == 16
    # the default preset (the main job) trains the full model only: here on the same data, with the same
    # settings as the comparison's full model, so every stage is skipped; the report has no baseline to
    # compare with and says so instead of claiming the goal
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    cap = capsys.readouterr()
    assert cap.err.count("done earlier, skipped") == 6 and "no baseline trained" in cap.out
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["models"]) == {"macbdf"} and rep["comparisons"] == {} and rep["goal"]["met"] is None
    assert rep["settings"]["preset"] == "synthetic"
    card = json.loads((out / "checkpoint" / "model_card.json").read_text())
    assert card["figures"]["demo_data"] == "16 synthetic clips rendered at 96 px, 1-1.2 s (demo preset synthetic, 4 steps)"
    # another training setting retrains (here one model) but keeps the data
    assert main(["demo", "--out", str(out), "--quick", "--steps", "5", "--models", "macbdf"]) == 0
    err = capsys.readouterr().err
    assert "synth: done earlier" in err and "prepare: done earlier" in err
    assert "train:macbdf: settings changed" in err
    assert json.loads((out / "runs" / "macbdf" / "train_config.json").read_text())["steps"] == 5
    # two models trained at the same time, one process each (1 thread each on this machine)
    assert main(["demo", "--out", str(out), "--quick", "--steps", "3", "--models", "macbdf,audio_only",
                 "--parallel", "2"]) == 0
    err = capsys.readouterr().err
    assert "in 2 parallel processes" in err and "train:audio_only: settings changed" in err
    rep = json.loads((out / "report.json").read_text())
    assert rep["train_parallel_wall_s"] > 0 and set(rep["models"]) == {"macbdf", "audio_only"}
    assert all(m["auc"] is not None or m["acc"] is not None for m in rep["models"].values())
    for name in ("macbdf", "audio_only"):
        tc = json.loads((out / "runs" / name / "train_config.json").read_text())
        assert tc["steps"] == 3 and (out / "runs" / name / "model.safetensors").is_file()
    assert main(["demo", "--out", str(out), "--quick", "--steps", "3", "--models", "macbdf", "--parallel", "1"]) == 0
    assert "train:macbdf: done earlier" in capsys.readouterr().err   # same settings: the parallel run counts
    # a folder of someone else's files is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(foreign), "--quick"]) == 2
    assert main(["demo", "--out", str(foreign), "--quick", "--seeds", "0,1"]) == 2
    assert main(["demo", "--out", str(tmp_path / "s"), "--quick", "--seeds", "1,x"]) == 2


@pytest.mark.slow
def test_demo_over_seeds_reports_t_and_bootstrap_intervals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from macbdf.metrics.stats import bootstrap_mean_ci, t_interval

    out = tmp_path / "seeds"
    assert main(["demo", "--out", str(out), "--quick", "--seeds", "0,1", "--models", "macbdf,macbdf_nosync"]) == 0
    text = capsys.readouterr().out
    assert "over seeds 0, 1" in text and "MACB-DF + sync ext." in text
    rep = json.loads((out / "report.json").read_text())
    per = {s: json.loads((out / f"seed_{s}" / "report.json").read_text()) for s in (0, 1)}
    assert per[0]["settings"]["seed"] == 0 and per[1]["settings"]["seed"] == 1
    aucs = [per[s]["models"]["macbdf"]["auc"] for s in (0, 1)]
    m = rep["models"]["macbdf"]["auc"]
    iv = t_interval(aucs)
    assert m["t"]["estimate"] == pytest.approx(iv.estimate) and m["t"]["high"] == pytest.approx(iv.high)
    ev = {s: json.loads((out / f"seed_{s}" / "stages" / "eval_macbdf.json").read_text())["scores"] for s in (0, 1)}
    boot = bootstrap_mean_ci([(ev[s]["label"], ev[s]["p"]) for s in (0, 1)], "auc", n_boot=1000, seed=0)
    assert m["bootstrap"]["low"] == pytest.approx(boot.low) and m["bootstrap"]["sets"] == 2
    c = rep["comparisons"]["sync_effect"]
    assert c["per_seed_diff"] == pytest.approx([per[s]["models"]["macbdf"]["auc"] - per[s]["models"]["macbdf_nosync"]["auc"]
                                                for s in (0, 1)])


def test_ablate_over_seeds_gives_intervals_effects_and_band_plots(tiny_cache: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    from macbdf.metrics import roc_auc
    from macbdf.metrics.stats import bootstrap_mean_ci, t_interval

    out = tmp_path / "abl"
    argv = ["ablate", "--data", str(tiny_cache), "--out", str(out), "--cells",
            "full,pareto_off,depth_0,depth_2,concat,wo_sync,concat_nosync",
            "--model", "tiny", "--steps", "3", "--batch-size", "8", "--seeds", "0,1", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == [0, 1]
    md = (out / "ablation_seeds.md").read_text()
    assert "| pareto_off |" in md and "t-intervals" in md
    # every figure against a direct computation from the per-seed eval.json files
    evals = {s: {c: json.loads((out / f"seed_{s}" / "cells" / c / "eval.json").read_text())
                 for c in ("full", "pareto_off", "depth_0")} for s in (0, 1)}
    for c in ("full", "pareto_off", "depth_0"):
        aucs = [evals[s][c]["overall"]["auc"] for s in (0, 1)]
        cell = summary["cells"][c]
        assert cell["per_seed"]["auc"] == pytest.approx(aucs)
        iv = t_interval(aucs)
        assert cell["auc"]["estimate"] == pytest.approx(iv.estimate) and cell["auc"]["low"] == pytest.approx(iv.low)
        sets = [(evals[s][c]["scores"]["label"], evals[s][c]["scores"]["p"]) for s in (0, 1)]
        assert roc_auc(*sets[0]) == pytest.approx(aucs[0])
        boot = bootstrap_mean_ci(sets, "auc", n_boot=1000, seed=0)
        assert cell["auc_bootstrap"]["low"] == pytest.approx(boot.low)
    # depth_2 is the tiny model's own depth: it shares full's runs and figures
    assert summary["cells"]["depth_2"]["per_seed"]["auc"] == summary["cells"]["full"]["per_seed"]["auc"]
    eff = summary["effects"]["pareto_off"]
    d = [evals[s]["pareto_off"]["overall"]["auc"] - evals[s]["full"]["overall"]["auc"] for s in (0, 1)]
    assert eff["diff_t"]["estimate"] == pytest.approx(sum(d) / 2)
    assert eff["separated"] is False or "separate" in eff["claim"]
    assert (out / "pareto_curves_bands.png").stat().st_size > 0 and (out / "depth_sweep_ci.png").stat().st_size > 0
    # the paired comparisons; tiny has no sync, so wo_sync is full and concat_nosync is concat (shared runs)
    comp = summary["comparisons"]
    assert set(comp) == {"fusion_with_sync", "fusion_without_sync", "sync_effect"}
    assert comp["sync_effect"]["diff_t"]["estimate"] == 0.0 and comp["sync_effect"]["separated"] is False
    full_auc = summary["cells"]["full"]["per_seed"]["auc"]
    concat_auc = summary["cells"]["concat"]["per_seed"]["auc"]
    want = t_interval(full_auc, ref=concat_auc)
    assert comp["fusion_with_sync"]["diff_t"]["estimate"] == pytest.approx(want.estimate)
    assert comp["fusion_without_sync"]["diff_t"]["estimate"] == pytest.approx(want.estimate)
    assert "Paired comparisons" in md
    assert main(["ablate", "--data", str(tiny_cache), "--out", str(out), "--seeds", "0,0"]) == 2
    assert "distinct" in capsys.readouterr().err


def test_lane_order_ends_the_lanes_together():
    import itertools

    from macbdf_train.demo import LANE_COST, MODELS, _makespan, lane_order

    names = list(MODELS)
    order = lane_order(names, 2)
    assert sorted(order) == sorted(names)
    longest_first = sorted(names, key=lambda n: -LANE_COST[n])
    # the best split of the six into two sets (either lane's total), which a queue order can reach
    total = sum(LANE_COST[n] for n in names)
    best_split = min(max(sum(LANE_COST[n] for n in c), total - sum(LANE_COST[n] for n in c))
                     for k in range(len(names) + 1) for c in itertools.combinations(names, k))
    assert _makespan(order, 2) == best_split < _makespan(longest_first, 2)
    assert lane_order(["audio_only"], 2) == ["audio_only"] and lane_order(names, 1) == longest_first
