"""The written folders look like the shipped datasets, and the real adapters read them."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from macbdf.synth.identity import ETHNICITIES
from macbdf.synth.layouts import FAKEAVCELEB_HEADER

TYPES = {"A": "RealVideo-RealAudio", "B": "RealVideo-FakeAudio", "C": "FakeVideo-RealAudio", "D": "FakeVideo-FakeAudio"}


def test_fakeavceleb_layout_and_csv_quirks(favc_dir: Path):
    text = (favc_dir / "meta_data.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == FAKEAVCELEB_HEADER  # trailing comma: unnamed 10th column
    rows = list(csv.reader(lines[1:]))
    assert all(len(r) == 10 for r in rows)
    keys = [(r[9], r[8]) for r in rows]
    assert len(keys) == len(set(keys)) + 1  # one duplicated row, like the real file
    uniq = {(r[9], r[8]): r for r in rows}
    assert Counter(r[4] for r in uniq.values()) == {"A": 2, "B": 2, "C": 2, "D": 2}
    for (directory, name), r in uniq.items():
        source, target1, target2, method, cat, typ, race, gender = r[:8]
        assert directory.startswith("FakeAVCeleb/")
        parts = directory.split("/")
        assert parts[1:] == [typ, race, gender, source] and typ == TYPES[cat]
        assert race in ETHNICITIES and gender in ("men", "women") and source.startswith("id")
        assert (favc_dir / Path(*parts[1:]) / name).is_file()
        assert (method == "real") == (cat == "A") and target2 == "-"
        if method != "real":
            assert method.startswith("synth_")
    # Ethnicity folders with spaces/parentheses are written as such.
    assert {p.name for p in favc_dir.glob("*/*")} <= set(ETHNICITIES)


def test_fakeavceleb_synth_info(favc_dir: Path):
    info = json.loads((favc_dir / "synth_info.json").read_text())
    assert info["generator"] == "macbdf.synth" and info["complete"] is True and info["seed"] == 11
    assert set(info["families"]["video"]) == {"faceswap", "lipsync", "gan"}
    assert set(info["families"]["audio"]) == {"voiceconv", "tts", "splice", "audioswap"}
    splits = info["splits"]
    assert set(splits) == {"train", "val", "test"}
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["val"]) & set(splits["test"])
    assert len(info["clips"]) == 8
    for c in info["clips"]:
        assert c["identity_name"] in splits[c["split"]]


def test_fakeavceleb_adapter_reads_it(favc_dir: Path):
    from macbdf.data.adapters.fakeavceleb import load_fakeavceleb

    recs = load_fakeavceleb(favc_dir)
    assert len(recs) == 8 and all(Path(r.path).is_file() for r in recs)
    info = json.loads((favc_dir / "synth_info.json").read_text())
    truth = {c["file"]: c for c in info["clips"]}
    for r in recs:
        c = truth[r.video_id]
        assert r.category == c["category"] and r.split == c["split"] and r.identity == c["identity_name"]
        assert r.video_label == int(c["video_family"] is not None)
        assert r.audio_label == int(c["audio_family"] is not None)


def test_lavdf_layout(lavdf_dir: Path):
    full = json.loads((lavdf_dir / "metadata.json").read_text())
    mini = json.loads((lavdf_dir / "metadata.min.json").read_text())
    assert len(full) == len(mini) == 12
    keys = {"file", "n_fakes", "fake_periods", "duration", "original", "modify_video", "modify_audio", "split",
            "video_frames", "audio_channels", "audio_frames"}
    files = {r["file"] for r in full}
    for r, m in zip(full, mini):
        assert set(m) == keys and set(r) == keys | {"timestamps", "transcript"}
        assert r["file"].split("/")[0] == r["split"] and r["split"] in ("train", "dev", "test")
        assert (lavdf_dir / r["file"]).is_file()
        assert r["n_fakes"] == len(r["fake_periods"])
        assert r["video_frames"] == round(r["duration"] * 25) and r["audio_frames"] == r["video_frames"] * 640
        assert r["audio_channels"] == 1
        fake = r["modify_video"] or r["modify_audio"]
        assert bool(r["fake_periods"]) == fake and (r["original"] in files) == fake
        for a, b in r["fake_periods"]:
            assert 0 <= a < b <= r["duration"]
        assert isinstance(r["transcript"], str) and len(r["timestamps"]) == len(r["transcript"].split())
    cats = Counter((r["modify_video"], r["modify_audio"]) for r in full)
    assert set(cats.values()) == {3}
    # Identity-disjoint split and the held-out family only in test.
    info = json.loads((lavdf_dir / "synth_info.json").read_text())
    assert info["holdout_families"] == ["gan"]
    split_of = {c["identity_name"]: set() for c in info["clips"]}
    for c in info["clips"]:
        split_of[c["identity_name"]].add(c["split"])
        if c["video_family"] == "gan":
            assert c["split"] == "test"
    assert all(len(s) == 1 for s in split_of.values())


def test_lavdf_adapter_reads_it(lavdf_dir: Path):
    from macbdf.data.adapters.lavdf import load_lavdf

    recs = load_lavdf(lavdf_dir)
    assert len(recs) == 12
    assert Counter(r.split for r in recs) == {"train": 4, "val": 4, "test": 4}
    partial = [r for r in recs if r.label and r.fake_periods and r.fake_periods[0][0] > 0]
    assert partial, "expected LAV-DF-style segment fakes"
