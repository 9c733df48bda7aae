"""The `macbdf forge` command (help, usage errors, --json, exit status) and a slice of the real corpus."""
from __future__ import annotations

import json

import numpy as np

from macbdf.cli import main


def test_help_explains_families(capsys):
    try:
        main(["forge", "--help"])
    except SystemExit as e:
        assert e.code == 0
    text = capsys.readouterr().out
    for word in ("self_blend", "mouth_retime", "face_swap", "audio_swap", "audio_same_speaker", "av_offset",
                 "audio_splice", "voice_change", "time_stretch", "fvfa", "--silent-fraction", "forge_info.json"):
        assert word in text, word


def test_usage_errors_are_one_line(src_dir, tmp_path, capsys):
    assert main(["forge", "--root", str(src_dir), "--out", str(tmp_path / "o"), "--families", "deepfake9000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown family 'deepfake9000'" in err[0]
    assert main(["forge", "--root", str(src_dir), "--manifest", str(src_dir / "MANIFEST.csv"), "--out",
                 str(tmp_path / "o2"), "--identities", "zed"]) == 2
    assert "unknown identity 'zed'" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["forge", "--root", str(src_dir), "--out", str(tmp_path / "busy")]) == 2
    assert "refusing to write into it" in capsys.readouterr().err


def test_json_summary_and_exit_status(src_dir, tmp_path, capsys):
    args = ["forge", "--root", str(src_dir), "--manifest", str(src_dir / "MANIFEST.csv"), "--segment-s", "2",
            "--crop-size", "64", "--fakes-per-segment", "1", "--split-ratios", "1,0,0", "--json"]
    # A faceless source is skipped and reported: exit 1 (as `macbdf prepare` does for failed inputs).
    assert main(args + ["--out", str(tmp_path / "a"), "--identities", "bob,nobody"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["written"] == 2 and rep["failures"][0]["source"] == "noface.mp4"
    assert rep["cpu_seconds"] > 0 and rep["identity_splits"] == {"bob": "train", "nobody": "train"}
    assert main(args + ["--out", str(tmp_path / "b"), "--identities", "bob"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["failures"] == [] and sum(rep["counts"]["method"].values()) == 2


def test_corpus_slice_forges_and_prepares(realcorpus, tmp_path):
    """Three GRID clips (two of one speaker) and one silent clip of the real corpus."""
    from macbdf.data.adapters import load_dataset
    from macbdf.forge import forge

    out = tmp_path / "forged"
    rep = forge(realcorpus, out, manifest=realcorpus / "MANIFEST.csv", identities="grid_s2,grid_spkA,dpe_anchor_d",
                max_segments_per_clip=1, fakes_per_segment=4, split_ratios=(1, 0, 0), seed=0, progress=False)
    assert rep.failures == [] and rep.sources == 4 and rep.segments == 4
    info = json.loads((out / "forge_info.json").read_text())
    clips = info["clips"]
    # Each GRID segment: real + 4 fakes; the silent one: real + the 3 video families (all it can take).
    assert len(clips) == 3 * 5 + 4
    silent = [c for c in clips if c["identity"] == "dpe_anchor_d"]
    assert all(not c["has_audio"] and c["audio_family"] is None for c in silent)
    grid = [c for c in clips if c["identity"].startswith("grid")]
    assert any(c["audio_family"] for c in grid)
    for c in grid:
        if c["audio_family"] == "audio_swap":
            assert c["audio_donor"]["identity"] != c["identity"]
        if c["audio_family"] == "audio_same_speaker":
            assert c["identity"] == c["audio_donor"]["identity"] == "grid_s2"
    recs = {r.video_id: r for r in load_dataset("lavdf", out, own_split=True)}
    assert {r.identity for r in recs.values()} == {"grid_s2", "grid_spkA", "dpe_anchor_d"}
    for c in clips:
        r = recs[c["file"]]
        assert (r.video_label, r.audio_label, r.method) == (c["video_label"], c["audio_label"], c["method"])
        assert r.periods_for("video") == c["video_periods"] and r.periods_for("audio") == c["audio_periods"]
        assert np.isclose(r.extra["duration"], c["n_frames"] / 25)


def test_hog_fallback_where_haar_misses(realcorpus, tmp_path):
    """styletalk_furious_man: Haar finds his face in 0-27 % of the frames; dlib's HOG pass in all."""
    from macbdf.forge import forge

    rep = forge(realcorpus, tmp_path / "o", manifest=realcorpus / "MANIFEST.csv", identities="styletalk_furious_man",
                max_segments_per_clip=1, fakes_per_segment=1, split_ratios=(1, 0, 0), progress=False)
    info = json.loads((tmp_path / "o" / "forge_info.json").read_text())
    summary = info["sources"][0]["summary"]
    assert rep.failures == [] and summary["face_detector"] == "dlib_hog"
    assert summary["segments"][0]["coverage"] >= 0.9 and len(info["clips"]) == 2
