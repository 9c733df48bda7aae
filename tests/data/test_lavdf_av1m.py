from __future__ import annotations

import json

import pytest

from macbdf.data.adapters import load_dataset
from macbdf.data.manifest import ManifestError


def lavdf_record(file, split, mv, ma, periods, original=None):
    return {"file": file, "n_fakes": len(periods), "fake_periods": periods, "duration": 3.2,
            "original": original, "modify_video": mv, "modify_audio": ma, "split": split,
            "video_frames": 80, "audio_channels": 1, "audio_frames": 51200,
            "timestamps": [[0.0, 0.3]], "transcript": "hello"}


LAVDF = [
    lavdf_record("train/000001.mp4", "train", False, False, []),
    lavdf_record("train/000002.mp4", "train", True, False, [[0.4, 0.9]], "train/000001.mp4"),
    lavdf_record("dev/000003.mp4", "dev", False, True, [[1.0, 1.5], [2.0, 2.2]], "dev/000004.mp4"),
    lavdf_record("dev/000004.mp4", "dev", False, False, []),
    lavdf_record("test/000005.mp4", "test", True, True, [[0.0, 0.6]], "test/000006.mp4"),
]


def write_lavdf(root, touch_file, records=LAVDF, name="metadata.json"):
    for r in records:
        touch_file(root / r["file"])
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(records, indent=2))
    return root


def test_lavdf_records_and_own_split(tmp_path, touch_file):
    root = write_lavdf(tmp_path / "LAV-DF", touch_file)
    recs = {r.video_id: r for r in load_dataset("lavdf", root)}
    assert set(recs) == {r["file"] for r in LAVDF}
    assert {k: r.split for k, r in recs.items()} == {
        "train/000001.mp4": "train", "train/000002.mp4": "train", "dev/000003.mp4": "val",
        "dev/000004.mp4": "val", "test/000005.mp4": "test"}
    r2, r3, r5 = recs["train/000002.mp4"], recs["dev/000003.mp4"], recs["test/000005.mp4"]
    assert (r2.label, r2.category, r2.method, r2.identity) == (1, "FVRA", "visual_modified", "train/000001.mp4")
    assert r2.periods_for("video") == [[0.4, 0.9]] and r2.periods_for("audio") == []
    assert (r3.category, r3.periods_for("audio")) == ("RVFA", [[1.0, 1.5], [2.0, 2.2]])
    assert (r5.category, r5.periods_for("video"), r5.periods_for("audio")) == ("FVFA", [[0.0, 0.6]], [[0.0, 0.6]])
    real = recs["train/000001.mp4"]
    assert (real.label, real.category, real.method, real.fake_periods) == (0, "RVRA", "real", [])
    assert real.extra["duration"] == 3.2 and real.dataset == "lavdf"
    assert real.path == str(root / "train" / "000001.mp4")


def test_lavdf_min_metadata_is_read_when_full_is_absent(tmp_path, touch_file):
    slim = [{k: v for k, v in r.items() if k not in ("timestamps", "transcript")} for r in LAVDF]
    root = write_lavdf(tmp_path / "LAV-DF", touch_file, slim, name="metadata.min.json")
    assert len(load_dataset("lavdf", root)) == len(LAVDF)


def test_lavdf_without_val_in_own_split_gets_one_carved_from_train(tmp_path, touch_file):
    recs = [lavdf_record(f"train/{i:06d}.mp4", "train", i % 2 == 1, False, [[0.1, 0.2]] if i % 2 else [])
            for i in range(40)] + [lavdf_record("test/000100.mp4", "test", False, False, [])]
    root = write_lavdf(tmp_path / "L", touch_file, recs)
    out = load_dataset("lavdf", root, val_fraction=0.25)
    counts = {s: sum(r.split == s for r in out) for s in ("train", "val", "test")}
    assert counts == {"train": 30, "val": 10, "test": 1}


@pytest.mark.parametrize("patch, msg", [
    ({"modify_video": "maybe"}, "bad modify_video value 'maybe'"),
    ({"fake_periods": [[2.0, 1.0]]}, r"fake_periods entry \[2.0, 1.0\] is not a valid period"),
    ({"fake_periods": "oops"}, "fake_periods is not valid JSON"),
    ({"split": "holdout"}, "bad split value 'holdout'"),
    ({"file": None}, "missing or empty 'file'"),
    ({"file": "/abs/x.mp4"}, "'file' must be relative"),
    ({"n_fakes": 3}, "n_fakes=3 but 1 fake_periods"),
    ({"modify_video": False}, "fake periods / n_fakes on a record with modify_video and modify_audio both false"),
])
def test_lavdf_bad_record_names_file_and_index(tmp_path, touch_file, patch, msg):
    recs = [dict(r) for r in LAVDF]
    recs[1].update(patch)
    root = tmp_path / "L"
    root.mkdir()
    (root / "metadata.json").write_text(json.dumps(recs))
    with pytest.raises(ManifestError, match=rf"metadata.json: record 1: {msg}"):
        load_dataset("lavdf", root, missing="keep")


def test_lavdf_missing_field_and_not_a_list(tmp_path):
    root = tmp_path / "L"
    root.mkdir()
    rec = {k: v for k, v in LAVDF[0].items() if k != "split"}
    (root / "metadata.json").write_text(json.dumps([rec]))
    with pytest.raises(ManifestError, match="record 0: missing field 'split'"):
        load_dataset("lavdf", root)
    (root / "metadata.json").write_text(json.dumps({"file": "x"}))
    with pytest.raises(ManifestError, match="expected a JSON list"):
        load_dataset("lavdf", root)


def test_invalid_json_names_file_and_line(tmp_path):
    root = tmp_path / "L"
    root.mkdir()
    (root / "metadata.json").write_text('[\n  {"file": "a.mp4",\n   "split": train}\n]\n')
    with pytest.raises(ManifestError, match=r"metadata.json:3: invalid JSON"):
        load_dataset("lavdf", root)
    (root / "train_metadata.json").write_text('[{"file": "a.mp4"},\n{"file": }]')
    with pytest.raises(ManifestError, match=r"train_metadata.json:2: invalid JSON"):
        load_dataset("avdeepfake1m", root)


# ---------------------------------------------------------------- AV-Deepfake1M

def av1m_record(file, mtype, fake=(), vis=(), aud=(), original=None):
    return {"file": file, "original": original, "split": "x", "modify_type": mtype, "audio_model": "your_tts",
            "fake_segments": list(fake), "audio_fake_segments": list(aud), "visual_fake_segments": list(vis),
            "video_frames": 100, "audio_frames": 64000}


AV1M_TRAIN = [
    av1m_record("id00012/abc/00001/real.mp4", "real"),
    av1m_record("id00012/abc/00001/fake_video_real_audio.mp4", "visual_modified", [[1.0, 1.5]], [[1.0, 1.5]],
                original="id00012/abc/00001/real.mp4"),
    av1m_record("id00013/def/00002/real_video_fake_audio.mp4", "audio_modified", [[0.2, 0.4]], aud=[[0.2, 0.4]],
                original="id00013/def/00002/real.mp4"),
]
AV1M_VAL = [
    av1m_record("id00099/ghi/00003/fake_video_fake_audio.mp4", "both-modified", [[0.5, 1.0], [2.0, 2.5]],
                [[0.5, 1.0]], [[2.0, 2.5]], original="id00099/ghi/00003/real.mp4"),
    av1m_record("id00099/ghi/00003/real.mp4", "real"),
]


def write_av1m(root, touch_file, train=AV1M_TRAIN, val=AV1M_VAL):
    root.mkdir(parents=True, exist_ok=True)
    for split, recs in (("train", train), ("val", val)):
        for r in recs:
            touch_file(root / split / r["file"])
        (root / f"{split}_metadata.json").write_text(json.dumps(recs))
    return root


def test_av1m_records_labels_and_periods(tmp_path, touch_file):
    root = write_av1m(tmp_path / "AV-Deepfake1M", touch_file)
    recs = {r.video_id: r for r in load_dataset("avdeepfake1m", root, val_fraction=0)}
    assert len(recs) == 5
    v = recs["train/id00012/abc/00001/fake_video_real_audio.mp4"]
    assert (v.label, v.category, v.method, v.identity, v.split) == (1, "FVRA", "visual_modified", "id00012", "train")
    assert v.periods_for("video") == [[1.0, 1.5]] and v.periods_for("audio") == []
    a = recs["train/id00013/def/00002/real_video_fake_audio.mp4"]
    assert (a.category, a.periods_for("audio"), a.extra["audio_model"]) == ("RVFA", [[0.2, 0.4]], "your_tts")
    b = recs["val/id00099/ghi/00003/fake_video_fake_audio.mp4"]
    assert (b.category, b.method, b.split) == ("FVFA", "both_modified", "test")  # val -> our test
    assert b.periods_for("video") == [[0.5, 1.0]] and b.periods_for("audio") == [[2.0, 2.5]]
    assert b.fake_periods == [[0.5, 1.0], [2.0, 2.5]]
    assert b.path == str(root / "val" / "id00099/ghi/00003/fake_video_fake_audio.mp4")
    kept = load_dataset("avdeepfake1m", root, val_as_test=False)
    assert {r.split for r in kept if r.video_id.startswith("val/")} == {"val"}


def test_av1m_bad_modify_type_and_inconsistent_segments(tmp_path, touch_file):
    root = write_av1m(tmp_path / "A", touch_file, val=[av1m_record("x/real.mp4", "visually_modified")])
    with pytest.raises(ManifestError, match=r"val_metadata.json: record 0: bad modify_type 'visually_modified'"):
        load_dataset("avdeepfake1m", root)
    root = write_av1m(tmp_path / "B", touch_file, val=[av1m_record("x/r.mp4", "real", aud=[[0.1, 0.2]])])
    with pytest.raises(ManifestError, match=r"record 0: audio_fake_segments on a real record"):
        load_dataset("avdeepfake1m", root)
    (tmp_path / "C").mkdir()
    with pytest.raises(ManifestError, match="no AV-Deepfake1M metadata"):
        load_dataset("avdeepfake1m", tmp_path / "C")


def test_lavdf_optional_identity_method_and_per_modality_periods(tmp_path, touch_file):
    """Keys `macbdf forge` adds: identity, method, visual_/audio_fake_periods (or *_segments)."""
    fvfa = lavdf_record("train/000010.mp4", "train", True, True, [[0.0, 4.0]], "train/000011.mp4")
    fvfa.update(identity="ann", method="forge_mouth_retime-audio_splice",
                visual_fake_periods=[[0.0, 4.0]], audio_fake_periods=[[1.2, 2.0]])
    av1m = lavdf_record("train/000012.mp4", "train", False, True, [[0.4, 1.0]], "train/000011.mp4")
    av1m.update(audio_fake_segments=[[0.4, 1.0]], visual_fake_segments=[])
    real = lavdf_record("train/000011.mp4", "train", False, False, [])
    real.update(identity="ann", visual_fake_periods=[], audio_fake_periods=[])
    root = write_lavdf(tmp_path / "F", touch_file, [fvfa, av1m, real])
    recs = {r.video_id: r for r in load_dataset("lavdf", root)}
    f, a, r = recs["train/000010.mp4"], recs["train/000012.mp4"], recs["train/000011.mp4"]
    assert (f.identity, f.method, f.category) == ("ann", "forge_mouth_retime-audio_splice", "FVFA")
    # Without the per-modality keys both modalities would get [[0, 4]]; with them each has its own.
    assert f.periods_for("video") == [[0.0, 4.0]] and f.periods_for("audio") == [[1.2, 2.0]]
    assert a.periods_for("audio") == [[0.4, 1.0]] and a.periods_for("video") == []
    assert (a.identity, a.method) == ("train/000011.mp4", "audio_modified")      # LAV-DF's defaults
    assert (r.identity, r.label, r.periods_for("video")) == ("ann", 0, [])
    bad = dict(real, file="train/000013.mp4", audio_fake_periods=[[0.1, 0.2]])
    with pytest.raises(ManifestError, match="audio_fake_periods on a record whose modify_audio is false"):
        load_dataset("lavdf", write_lavdf(tmp_path / "G", touch_file, [bad]))


def test_lavdf_audio_recorded_marker(tmp_path, touch_file):
    """`macbdf forge` marks fakes whose audio is an unedited recording (swap / offset)."""
    swap = lavdf_record("train/000020.mp4", "train", False, True, [[0.0, 4.0]], "train/000021.mp4")
    swap.update(audio_recorded=True)
    voice = lavdf_record("train/000022.mp4", "train", False, True, [[0.0, 4.0]], "train/000021.mp4")
    voice.update(audio_recorded=False)
    real = lavdf_record("train/000021.mp4", "train", False, False, [])
    recs = {r.video_id: r for r in load_dataset("lavdf", write_lavdf(tmp_path / "F", touch_file, [swap, voice, real]))}
    assert recs["train/000020.mp4"].extra.get("audio_recorded") is True
    assert "audio_recorded" not in recs["train/000022.mp4"].extra and "audio_recorded" not in recs["train/000021.mp4"].extra
    bad = dict(real, file="train/000023.mp4", audio_recorded=True)
    with pytest.raises(ManifestError, match="audio_recorded on a record whose modify_audio is false"):
        load_dataset("lavdf", write_lavdf(tmp_path / "G", touch_file, [bad]))
