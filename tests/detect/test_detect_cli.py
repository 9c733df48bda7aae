"""`macbdf detect`: inputs, JSON/CSV/plots, table, exit codes, bad files next to good ones."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from macbdf.cli import main

FIELDS = {"path", "p_fake", "p_audio_fake", "p_video_fake", "verdict", "threshold", "frame_scores",
          "segments", "flags", "error", "timings", "duration", "model", "abstain_reason"}


def test_mixed_inputs_json_csv_plots_exit_1(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    names = ["good.mp4", "empty.mp4", "long.mkv", "notes.mp4", "truncated.mp4"]
    out_json, out_csv, plots = tmp_path / "o.json", tmp_path / "o.csv", tmp_path / "plots"
    rc = main(["detect", *[str(clip_dir / n) for n in names], "--checkpoint", str(tiny_checkpoint),
               "--json", str(out_json), "--csv", str(out_csv), "--plot", str(plots)])
    assert rc == 1
    data = json.loads(out_json.read_text())
    assert isinstance(data, list) and len(data) == len(names)
    assert [d["path"] for d in data] == [str(clip_dir / n) for n in names]
    for d in data:
        assert set(d) == FIELDS
    ok = {Path(d["path"]).name: d for d in data if d["error"] is None}
    assert set(ok) == {"good.mp4", "long.mkv"}
    for d in ok.values():
        assert d["verdict"] in ("fake", "real")
        assert len(d["frame_scores"]["audio"]) == len(d["frame_scores"]["video"]) > 0
    for d in data:
        if d["error"] is not None:
            assert d["p_fake"] is None and "\n" not in d["error"]
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["path"] for r in rows] == [d["path"] for d in data]
    assert rows[0]["verdict"] in ("fake", "real") and rows[1]["error"]
    pngs = sorted(plots.glob("*.png"))
    assert len(pngs) == 2  # one per scored video; failed files get none
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    out = capsys.readouterr()
    assert "verdict" in out.out and "ERROR" in out.out
    assert "notes.mp4: error:" in out.err
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temp files


def test_all_good_exit_0_folder_and_list(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path) -> None:
    # folders are searched recursively for video extensions only
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(clip_dir / "short.mp4", tree / "a" / "one.mp4")
    shutil.copy(clip_dir / "short.mp4", tree / "a" / "b" / "two.mkv")
    (tree / "a" / "readme.txt").write_text("not a video")
    out = tmp_path / "r.json"
    rc = main(["detect", str(tree), "--checkpoint", str(tiny_checkpoint), "--json", str(out), "--quiet"])
    assert rc == 0
    assert sorted(Path(d["path"]).name for d in json.loads(out.read_text())) == ["one.mp4", "two.mkv"]

    # list file: comments, blank lines, paths relative to the list file; duplicates scored once
    lst = tmp_path / "todo.txt"
    lst.write_text("# videos\n\ntree/a/one.mp4\n" + str(tree / "a" / "one.mp4") + "\n")
    rc = main(["detect", "--list", str(lst), "--checkpoint", str(tiny_checkpoint), "--json", str(out), "--quiet"])
    assert rc == 0
    assert len(json.loads(out.read_text())) == 1


def test_threshold_option(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    rc = main(["detect", str(clip_dir / "short.mp4"), "--checkpoint", str(tiny_checkpoint), "--threshold", "0",
               "--json", str(out), "--quiet"])
    assert rc == 0
    d = json.loads(out.read_text())[0]
    assert d["threshold"] == 0.0 and d["verdict"] == "fake"


def test_usage_errors_exit_2(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    good = str(clip_dir / "good.mp4")
    assert main(["detect", "--checkpoint", str(tiny_checkpoint)]) == 2              # no inputs
    assert "no input videos" in capsys.readouterr().err
    assert main(["detect", good]) == 2                                              # --checkpoint missing
    assert main(["detect", good, "--checkpoint", str(tmp_path / "nope")]) == 2       # no such dir
    assert "checkpoint directory not found" in capsys.readouterr().err
    assert main(["detect", good, "--checkpoint", str(tmp_path)]) == 2               # not a checkpoint
    assert main(["detect", "--list", str(tmp_path / "absent.txt"), "--checkpoint", str(tiny_checkpoint)]) == 2
    assert main(["detect", good, "--checkpoint", str(tiny_checkpoint), "--threshold", "2"]) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"junk")
    assert main(["detect", good, "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "cannot load checkpoint" in err and "Traceback" not in err


def test_only_failures_exit_1(tiny_checkpoint: Path, clip_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["detect", str(clip_dir / "empty.mp4"), str(clip_dir / "does-not-exist.mp4"),
               "--checkpoint", str(tiny_checkpoint)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "empty.mp4: error:" in err and "does-not-exist.mp4: error: file not found" in err


def test_help_is_useful(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("--checkpoint", "--json", "--csv", "--plot", "--list", "Exit code"):
        assert word in out
