"""The real-footage recipe on a small slice of the corpus (skipped where ../shared/realcorpus is absent)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from macbdf_train.real_recipe import CorpusClip, read_corpus, split_identities

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "realcorpus"


def _corpus() -> Path:
    if not (CORPUS / "MANIFEST.csv").is_file():
        pytest.skip("../shared/realcorpus not present (internal corpus)")
    return CORPUS


def test_split_is_identity_disjoint_and_sends_deepfaked_people_to_test() -> None:
    clips = [CorpusClip(Path(f"{i}.mp4"), "real", f"p{i % 12}", "real", i % 3 != 0, i % 3 != 0, "") for i in range(30)]
    clips.append(CorpusClip(Path("f.mp4"), "fake", "p5", "wav2lip", True, True, ""))
    for seed in range(4):
        s = split_identities(clips, seed)
        assert s["p5"] == "test"                       # a deepfaked person is never trained on
        assert set(s) == {f"p{i}" for i in range(12)}  # every identity exactly once: disjoint by construction
        assert s == split_identities(clips, seed)      # seeded
    assert split_identities(clips, 0) != split_identities(clips, 1)


def test_corpus_split_keeps_every_deepfaked_identity_out_of_training() -> None:
    clips = read_corpus(_corpus())
    s = split_identities(clips, 0)
    faked = {c.identity for c in clips if c.label == "fake"}
    assert {i for i in faked if i in s} and all(s[i] == "test" for i in faked if i in s)
    assert {c.identity for c in clips if c.label == "real"} == set(s)


@pytest.mark.slow
def test_recipe_end_to_end_on_a_slice(tmp_path: Path) -> None:
    from macbdf.calibration import read_calibration
    from macbdf.data.cache import read_cache_manifest
    from macbdf.modelcard import read_card
    from macbdf_train.real_recipe import RealRecipeConfig, run_real_recipe

    root = _corpus()
    ids = ("grid_spkA", "grid_spkB", "grid_spkC", "grid_spkD", "grid_spkE", "grid_spkF", "mead_W009", "mead_W011")
    cfg = RealRecipeConfig(real_root=str(root), out=str(tmp_path / "real"), identities=ids, model="tiny", steps=3,
                           batch_size=4, fakes_per_segment=3, workers=1, max_real_deepfakes=2, progress=False,
                           split_ratios=(0.5, 0.25, 0.25))
    rep = run_real_recipe(cfg)
    for k in ("heldout_forged_auc", "real_deepfakes_auc", "real_deepfakes_by_method", "real_fpr_at_threshold",
              "threshold", "n_train_identities", "n_heldout_identities", "checkpoint", "wall_s"):
        assert k in rep, k
    assert "all" in rep["heldout_forged_auc"] and rep["n_real_deepfakes"] == 2
    assert 0.0 <= rep["real_fpr_at_threshold"] <= 1.0
    assert rep["n_train_identities"] + rep["n_val_identities"] + rep["n_heldout_identities"] == len(ids)
    # identities never cross splits in what was trained and evaluated
    recs = read_cache_manifest(tmp_path / "real" / "cache")
    by_split: dict[str, set[str]] = {}
    for r in recs:
        by_split.setdefault(r.split, set()).add(r.identity)
    assert not (by_split.get("train", set()) & (by_split.get("test", set()) | by_split.get("val", set())))
    assert by_split["test"] == set(rep["identities"]["test"])
    # donors of every forged clip come from the clip's own split
    info = json.loads((tmp_path / "real" / "forged" / "forge_info.json").read_text())
    split_of = info["identity_splits"]
    for c in info["clips"]:
        for d in (c.get("audio_donor"), c.get("video_donor")):
            if d:
                assert split_of[d["identity"]] == c["split"]
    # silent clips were forged, real and fake alike (missing tracks carry no label)
    silent = [c for c in info["clips"] if not c["has_audio"]]
    assert {bool(c["video_label"] or c["audio_label"]) for c in silent} == {False, True}
    assert not any(c["audio_label"] for c in silent)            # no audio fake without audio
    a = rep["heldout_forged_by_audio"]
    assert a["silent"]["n"] + a["with_audio"]["n"] == rep["n_heldout_forged"]
    ck = Path(rep["checkpoint"])
    card = read_card(ck)
    assert card["recipe"] == "real-footage" and not card["stale"] and card["calibration"]["n_clips"] >= 1
    assert card["figures"]["real_deepfakes_auc"] == rep["real_deepfakes_auc"]
    assert read_calibration(ck)["threshold"] == pytest.approx(rep["threshold"])
    # a rerun resumes: every stage is skipped and the figures are the same
    rep2 = run_real_recipe(cfg)
    assert rep2["heldout_forged_auc"] == rep["heldout_forged_auc"] and rep2["wall_s"] < rep["wall_s"]
    # other training settings retrain from scratch (a finished run is not "resumed" to other steps),
    # the same corpus spelled another way reuses the forged data and the cache
    logs: list[str] = []
    sentinel = tmp_path / "real" / "runs" / "macbdf" / "from_the_first_run"
    sentinel.write_text("x")
    other = dataclasses.replace(cfg, steps=4, real_root=str(root.resolve()) + "/.")
    rep3 = run_real_recipe(other, log=logs.append)
    assert any("[demo] train ..." in s for s in logs) and any("forge: done earlier" in s for s in logs)
    assert any("prepare: done earlier" in s for s in logs)
    assert rep3["train"]["steps"] == 4 and not sentinel.exists()   # a new run, not the old one continued
    state = json.loads((tmp_path / "real" / "runs" / "macbdf" / "train_config.json").read_text())
    assert state["steps"] == 4


def test_demo_preset_real_usage_errors(tmp_path: Path) -> None:
    from macbdf.cli import main

    assert main(["demo", "--preset", "real", "--out", str(tmp_path / "x")]) == 2                  # no --real-root
    assert main(["demo", "--preset", "real", "--real-root", str(tmp_path), "--out", str(tmp_path / "x")]) == 2  # no MANIFEST
    assert main(["demo", "--preset", "real", "--real-root", str(tmp_path), "--out", str(tmp_path / "x"), "--quick"]) == 2
    # the real recipe's options with a synthetic preset are refused at once, not silently ignored
    for preset in ("synthetic", "compare"):
        assert main(["demo", "--preset", preset, "--real-root", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
        assert main(["demo", "--preset", preset, "--fpr", "0.1", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()
