"""Issue 15, cases 3 and 8: non-UTF-8 file names, output file modes, symlink loops, config.json bounds,
length limits."""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from hostile_media import strict_json

from macbdf.cli import main

BAD_NAME = b"caf\xe9 clip.mp4"   # Latin-1 bytes: not valid UTF-8


@pytest.fixture()
def bad_name_dir(clip_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    try:
        with open(os.path.join(os.fsencode(root), BAD_NAME), "wb") as f:
            f.write((clip_dir / "short.mp4").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    shutil.copy(clip_dir / "short.mp4", root / "ok.mp4")
    return root


def test_prepare_survives_a_non_utf8_name(bad_name_dir: Path, tmp_path: Path) -> None:
    from macbdf.data.manifest import read_manifest
    from macbdf.data.cache import read_sample

    out = tmp_path / "cache"
    assert main(["prepare", "--dataset", "folder", "--root", str(bad_name_dir), "--out", str(out), "--quiet"]) == 0
    recs = read_manifest(out / "manifest.jsonl")
    assert len(recs) == 2
    bad = next(r for r in recs if r.video_id != "ok")
    # The id keeps the original bytes (surrogate escapes), so the file can be found again.
    assert os.fsencode(bad.path).endswith(BAD_NAME)
    assert read_sample(out, bad)["frames"].shape[0] == 8
    # A second run resumes (the digest of the name is stable), nothing prepared twice.
    assert main(["prepare", "--dataset", "folder", "--root", str(bad_name_dir), "--out", str(out), "--quiet",
                 "--json"]) == 0


def test_detect_outputs_survive_a_non_utf8_name(bad_name_dir: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # stdout that cannot encode the name (strict ASCII): the table is still printed, escaped.
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii", errors="strict"))
    js, cs = tmp_path / "o.json", tmp_path / "o.csv"
    rc = main(["detect", str(bad_name_dir), "--checkpoint", str(tiny_checkpoint), "--json", str(js),
               "--csv", str(cs)])
    sys.stdout.flush()
    assert rc == 0
    table = raw.getvalue().decode("ascii")
    assert "caf\\udce9 clip.mp4" in table or "caf\\xe9 clip.mp4" in table
    data = strict_json(js.read_text(encoding="ascii"))
    assert len(data) == 2 and all(d["error"] is None for d in data)
    names = sorted(os.fsencode(d["path"]).rsplit(b"/", 1)[-1] for d in data)
    assert names == sorted([BAD_NAME, b"ok.mp4"])
    rows = cs.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3 and "caf\\udce9 clip.mp4" in cs.read_text(encoding="utf-8")


def test_output_files_follow_the_umask(clip_dir: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        js, cs = tmp_path / "o.json", tmp_path / "o.csv"
        assert main(["detect", str(clip_dir / "short.mp4"), "--checkpoint", str(tiny_checkpoint), "--quiet",
                     "--json", str(js), "--csv", str(cs)]) == 0
        assert (js.stat().st_mode & 0o777) == 0o644 and (cs.stat().st_mode & 0o777) == 0o644
        os.umask(0o077)
        js2 = tmp_path / "private.json"
        assert main(["detect", str(clip_dir / "short.mp4"), "--checkpoint", str(tiny_checkpoint), "--quiet",
                     "--json", str(js2)]) == 0
        assert (js2.stat().st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


def test_symlink_loop_is_reported_as_such(det, tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    os.symlink(b, a)
    os.symlink(a, b)
    r = det.detect(a)
    assert r.error is not None and "symbolic link loop" in r.error and r.verdict is None
    missing = det.detect(tmp_path / "missing.mp4")
    assert missing.error.startswith("file not found")


@pytest.mark.parametrize("field,value,words", [
    ("dim", 8192, "dim must be <= 2048"),
    ("dim", "32", "dim must be an integer"),
    ("num_frames", 0, "num_frames must be >= 1"),
    ("preprocess.fps", 0, "fps must be in"),
    ("preprocess.face_size", 100000, "face_size must be in"),
    ("heads", True, "heads must be an integer"),
])
def test_config_json_bounds_are_one_line_errors(tiny_checkpoint: Path, tmp_path: Path, clip_dir: Path,
                                                field: str, value, words: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from macbdf.checkpoint import CheckpointError, load_model

    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, d)
    meta = json.loads((d / "config.json").read_text())
    target = meta["model"]
    *parents, leaf = field.split(".")
    for p in parents:
        target = target[p]
    target[leaf] = value
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as ei:
        load_model(d)
    assert words in str(ei.value) and "\n" not in str(ei.value)
    assert main(["detect", str(clip_dir / "short.mp4"), "--checkpoint", str(d), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_length_limits_have_sensible_defaults_and_can_be_lifted() -> None:
    import argparse

    from macbdf.commands import detect as detect_cmd
    from macbdf.commands import prepare as prepare_cmd

    for mod, default in ((prepare_cmd, 300.0), (detect_cmd, 3600.0)):
        p = argparse.ArgumentParser()
        mod.add_arguments(p)
        base = ["--out", "x"] if mod is prepare_cmd else ["--checkpoint", "c"]
        assert p.parse_args(base).max_seconds == default
        assert p.parse_args(base + ["--max-seconds", "0"]).max_seconds == 0.0   # 0 = no limit


def test_detect_max_seconds_truncates(clip_dir: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    js = tmp_path / "o.json"
    assert main(["detect", str(clip_dir / "long.mkv"), "--checkpoint", str(tiny_checkpoint), "--quiet",
                 "--json", str(js), "--max-seconds", "1"]) == 0
    d = strict_json(js.read_text())[0]
    assert "truncated" in d["flags"] and d["duration"] == 1.0


def test_timeout_is_checked_inside_decoding(det, clip_dir: Path) -> None:
    import time

    from macbdf.media.decode import MediaTimeout, iter_video_frames

    with pytest.raises(MediaTimeout):
        next(iter_video_frames(clip_dir / "long.mkv", 25.0, deadline=time.monotonic()))
    r = det.detect(clip_dir / "long.mkv", timeout_s=0.0)
    # The deadline stops the decoder before any window reaches the model.
    assert r.error == "detection timed out" and r.timings["model_s"] == 0.0


def test_symlink_loop_in_prepare_is_named(tmp_path: Path) -> None:
    from macbdf.media.decode import MediaError
    from macbdf.media.prepare import prepare_file
    from macbdf.config import PreprocessConfig

    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    os.symlink(b, a)
    os.symlink(a, b)
    with pytest.raises(MediaError, match="symbolic link loop"):
        prepare_file(a, PreprocessConfig())


def test_cache_and_checkpoint_files_follow_the_umask(tmp_path: Path) -> None:
    import torch

    from macbdf import create_model
    from macbdf.checkpoint import save_model
    from macbdf.data.cache import write_cache_config
    from macbdf.config import PreprocessConfig

    from macbdf.data.manifest import SampleRecord
    from macbdf.data.cache import write_sample
    from macbdf.media.prepare import PreparedClip
    import numpy as np

    old = os.umask(0o027)
    try:
        write_cache_config(tmp_path / "cache", PreprocessConfig())
        clip = PreparedClip(frames=np.zeros((2, 8, 8, 3), np.uint8), logmel=np.zeros((8, 4), np.float32), fps=25.0,
                            duration=0.08)
        rel = write_sample(tmp_path / "cache", SampleRecord(video_id="v", path="v.mp4"), clip).file
        torch.manual_seed(0)
        save_model(create_model("tiny"), tmp_path / "ck")
    finally:
        os.umask(old)
    for p in (tmp_path / "cache" / "cache_config.json", tmp_path / "cache" / rel, tmp_path / "ck" / "model.safetensors",
              tmp_path / "ck" / "config.json"):
        assert (p.stat().st_mode & 0o777) == 0o640, p


def test_plots_of_single_track_and_abstained_results(clip_dir: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from hostile_media import write_frames

    still = write_frames(tmp_path / "still.mkv", [np.full((120, 160, 3), 90, np.uint8)])
    plots = tmp_path / "plots"
    rc = main(["detect", str(clip_dir / "noaudio.mp4"), str(still), "--checkpoint", str(tiny_checkpoint),
               "--plot", str(plots), "--quiet"])
    assert rc == 0 and "could not write plot" not in capsys.readouterr().err
    assert len(list(plots.glob("*.png"))) == 2
