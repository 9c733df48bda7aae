from __future__ import annotations

import json

import pytest

from macbdf.data.adapters import load_dataset
from macbdf.data.manifest import ManifestError


def _csv(tmp_path, text, touch_file, files=()):
    for f in files:
        touch_file(tmp_path / f)
    p = tmp_path / "manifest.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_manifest_fields_and_derivations(tmp_path, touch_file):
    text = (
        "path,label,video_label,audio_label,category,split,fake_periods,identity,method,note\n"
        "clips/a.mp4,0,,,,train,,p1,,hello\n"
        "clips/b.mp4,,1,0,,test,\"[[0.5, 1.25]]\",p2,faceswap,\n"
        "clips/c.mp4,,,,RVFA,dev,,p3,tts,\n"
        "clips/d.mp4,fake,,,,,,p4,,\n"
    )
    p = _csv(tmp_path, text, touch_file, ["clips/a.mp4", "clips/b.mp4", "clips/c.mp4", "clips/d.mp4"])
    recs = {r.video_id: r for r in load_dataset("manifest", p, val_fraction=0)}
    a, b, c, d = (recs[f"clips/{x}.mp4"] for x in "abcd")
    assert (a.label, a.video_label, a.audio_label, a.category, a.method) == (0, 0, 0, "RVRA", "real")
    assert a.extra == {"note": "hello"} and a.split == "train" and a.identity == "p1"
    assert (b.label, b.category, b.fake_periods, b.split) == (1, "FVRA", [[0.5, 1.25]], "test")
    assert b.periods_for("video") == [[0.5, 1.25]] and b.periods_for("audio") == []
    assert (c.label, c.video_label, c.audio_label, c.split) == (1, 0, 1, "val")
    assert (d.label, d.video_label, d.audio_label, d.category) == (1, None, None, None)
    assert d.split in ("train", "test")  # no split given -> seeded split
    assert all(r.dataset == "manifest" for r in recs.values())
    assert a.path == str(tmp_path / "clips" / "a.mp4")


def test_jsonl_manifest_in_a_folder_with_per_modality_periods(tmp_path, touch_file):
    touch_file(tmp_path / "x.mp4")
    rows = [{"video_id": "X1", "path": "x.mp4", "video_label": 1, "audio_label": 1,
             "video_fake_periods": [[0, 1]], "audio_fake_periods": [[2, 3]], "extra": {"k": 1},
             "dataset": "defakeavmit", "split": "test"}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (r,) = load_dataset("manifest", tmp_path)
    assert (r.video_id, r.category, r.dataset, r.extra) == ("X1", "FVFA", "defakeavmit", {"k": 1})
    assert r.fake_periods == [[0.0, 1.0], [2.0, 3.0]]
    assert r.periods_for("video") == [[0.0, 1.0]] and r.periods_for("audio") == [[2.0, 3.0]]


def test_json_list_manifest_and_missing_files(tmp_path, touch_file):
    touch_file(tmp_path / "here.mp4")
    (tmp_path / "m.json").write_text(json.dumps([{"path": "here.mp4", "label": 1},
                                                 {"path": "gone.mp4", "label": 0}]))
    assert [r.video_id for r in load_dataset("manifest", tmp_path / "m.json")] == ["here.mp4"]
    kept = load_dataset("manifest", tmp_path / "m.json", missing="keep")
    assert [r.extra.get("missing", False) for r in kept] == [False, True]
    with pytest.raises(ManifestError, match="gone.mp4"):
        load_dataset("manifest", tmp_path / "m.json", missing="error")


def test_manifest_ids_never_come_from_absolute_paths(tmp_path, touch_file):
    inside = touch_file(tmp_path / "sub" / "in.mp4")
    outside = touch_file(tmp_path.parent / f"{tmp_path.name}-out.mp4")
    p = tmp_path / "manifest.csv"
    p.write_text(f"path,label\n{inside},1\n")
    assert [r.video_id for r in load_dataset("manifest", p)] == ["sub/in.mp4"]
    p.write_text(f"path,label\n{outside},1\n")
    with pytest.raises(ManifestError, match=r"manifest.csv:2: .*video_id"):
        load_dataset("manifest", p)
    p.write_text(f"video_id,path,label\nmine,{outside},1\n")
    assert [r.video_id for r in load_dataset("manifest", p)] == ["mine"]


def test_manifest_media_root_and_bom(tmp_path, touch_file):
    touch_file(tmp_path / "media" / "a.mp4")
    p = tmp_path / "lists" / "m.csv"
    p.parent.mkdir()
    p.write_bytes("\ufeffpath,label\na.mp4,REAL\n".encode("utf-8"))
    (r,) = load_dataset("manifest", p, media_root=tmp_path / "media")
    assert r.label == 0 and r.path == str(tmp_path / "media" / "a.mp4")


def test_duplicate_ids_with_different_files_are_an_error(tmp_path, touch_file):
    touch_file(tmp_path / "a.mp4")
    touch_file(tmp_path / "b.mp4")
    p = tmp_path / "manifest.csv"
    p.write_text("video_id,path,label\nsame,a.mp4,1\nsame,b.mp4,0\n")
    with pytest.raises(ManifestError, match="'same' names two files"):
        load_dataset("manifest", p)
    p.write_text("video_id,path,label\nsame,a.mp4,1\nsame,a.mp4,1\n")
    assert len(load_dataset("manifest", p)) == 1
