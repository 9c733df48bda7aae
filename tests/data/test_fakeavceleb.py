from __future__ import annotations

import pytest

from macbdf.data.adapters import load_dataset
from macbdf.data.manifest import ManifestError

HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"

# (source, target1, target2, method, category, type, race, gender, file)
ROWS = [
    ("id00076", "-", "-", "real", "A", "RealVideo-RealAudio", "African", "men", "00109.mp4"),
    ("id00166", "-", "-", "real", "A", "RealVideo-RealAudio", "Asian (East)", "women", "00010.mp4"),
    ("id00076", "id00076", "-", "rtvc", "B", "RealVideo-FakeAudio", "African", "men", "00109_fake.mp4"),
    ("id00166", "id01234", "-", "faceswap", "C", "FakeVideo-RealAudio", "Asian (East)", "women",
     "00010_id01234_faceswap.mp4"),
    ("id00166", "id01234", "-", "fsgan", "C", "FakeVideo-RealAudio", "Asian (East)", "women",
     "00010_id01234_fsgan.mp4"),
    ("id00076", "id00476", "10", "wav2lip", "D", "FakeVideo-FakeAudio", "African", "men",
     "00109_10_id00476_wavtolip.mp4"),
    ("id04321", "id00476", "3", "faceswap-wav2lip", "D", "FakeVideo-FakeAudio", "Caucasian (European)", "men",
     "00001_3_id00476_wavtolip.mp4"),
]


def _dir(row) -> str:
    return f"{row[5]}/{row[6]}/{row[7]}/{row[0]}"


def write_fakeavceleb(root, touch_file, rows=ROWS, *, extra_lines=(), header=HEADER, with_dir=True):
    for r in rows:
        touch_file(root / _dir(r) / r[8])
    lines = [header]
    for r in rows:
        lines.append(",".join(r) + ("," + "FakeAVCeleb/" + _dir(r) if with_dir else "") + "\n")
    lines.extend(extra_lines)
    (root / "meta_data.csv").write_text("".join(lines), encoding="utf-8")
    return root


def test_fakeavceleb_records_as_shipped(tmp_path, touch_file):
    root = write_fakeavceleb(tmp_path / "FakeAVCeleb_v1.2", touch_file)
    recs = {r.video_id: r for r in load_dataset("fakeavceleb", root)}
    assert len(recs) == len(ROWS)
    real = recs["RealVideo-RealAudio/Asian (East)/women/id00166/00010.mp4"]
    assert (real.label, real.video_label, real.audio_label, real.category, real.method) == (0, 0, 0, "RVRA", "real")
    assert real.identity == "id00166" and real.dataset == "fakeavceleb"
    assert real.path == str(root / "RealVideo-RealAudio" / "Asian (East)" / "women" / "id00166" / "00010.mp4")
    b = recs["RealVideo-FakeAudio/African/men/id00076/00109_fake.mp4"]
    assert (b.label, b.video_label, b.audio_label, b.category, b.method) == (1, 0, 1, "RVFA", "rtvc")
    c = recs["FakeVideo-RealAudio/Asian (East)/women/id00166/00010_id01234_fsgan.mp4"]
    assert (c.video_label, c.audio_label, c.category, c.method) == (1, 0, "FVRA", "fsgan")
    assert c.extra["target1"] == "id01234" and c.extra["race"] == "Asian (East)" and "target2" not in c.extra
    d = recs["FakeVideo-FakeAudio/Caucasian (European)/men/id04321/00001_3_id00476_wavtolip.mp4"]
    assert (d.label, d.category, d.method) == (1, "FVFA", "faceswap-wav2lip")
    assert all(r.fake_periods == [] for r in recs.values())
    assert {r.split for r in recs.values()} <= {"train", "val", "test"}


def test_fakeavceleb_duplicated_rows_are_kept_once(tmp_path, touch_file):
    dup = ROWS[5]
    extra = [",".join(dup) + ",FakeAVCeleb/" + _dir(dup) + "\n",                       # exact repeat
             ",".join((*dup[:3], "faceswap-wav2lip", *dup[4:])) + ",FakeAVCeleb/" + _dir(dup) + "\n"]  # relabelled
    root = write_fakeavceleb(tmp_path / "FakeAVCeleb_v1.2", touch_file, extra_lines=extra)
    recs = load_dataset("fakeavceleb", root)
    assert len(recs) == len(ROWS)
    (r,) = [r for r in recs if r.video_id.endswith("00109_10_id00476_wavtolip.mp4")]
    assert r.method == "wav2lip" and r.extra["alt_methods"] == ["faceswap-wav2lip"]


def test_fakeavceleb_resolves_files_without_or_with_odd_directory_column(tmp_path, touch_file):
    # Nine-column variant (no directory column): the path is rebuilt from type/race/gender/source.
    root = write_fakeavceleb(tmp_path / "nine", touch_file, header=HEADER.rstrip(",\n") + "\n", with_dir=False)
    recs = load_dataset("fakeavceleb", root)
    assert len(recs) == len(ROWS)
    assert "RealVideo-RealAudio/African/men/id00076/00109.mp4" in {r.video_id for r in recs}
    # The CSV went through pandas (index column + "Unnamed: 9") and the archive was unpacked one
    # level deeper than the metadata says: still found by the fallback search.
    root = tmp_path / "deep"
    for r in ROWS:
        touch_file(root / "extracted" / _dir(r) / r[8])
    lines = [",source,target1,target2,method,category,type,race,gender,path,Unnamed: 9\n"]
    lines += [f"{i}," + ",".join(r) + ",FakeAVCeleb/" + _dir(r) + "\n" for i, r in enumerate(ROWS)]
    (root / "meta_data.csv").write_text("".join(lines))
    recs = load_dataset("fakeavceleb", root)
    assert len(recs) == len(ROWS)
    assert all("/extracted/" in r.path for r in recs)


def test_fakeavceleb_missing_files_are_skipped_or_kept(tmp_path, touch_file):
    root = write_fakeavceleb(tmp_path / "f", touch_file)
    gone = root / _dir(ROWS[0]) / ROWS[0][8]
    gone.unlink()
    assert len(load_dataset("fakeavceleb", root)) == len(ROWS) - 1
    kept = load_dataset("fakeavceleb", root, missing="keep")
    assert [r.extra.get("missing") for r in kept].count(True) == 1


def test_fakeavceleb_category_letter_against_folder(tmp_path, touch_file):
    row = ("id1", "-", "-", "wav2lip", "B", "FakeVideo-FakeAudio", "African", "men", "x.mp4")
    root = write_fakeavceleb(tmp_path / "f", touch_file, rows=[row])
    (r,) = load_dataset("fakeavceleb", root)
    assert r.category == "FVFA" and r.extra["category_letter"] == "B"  # the folder wins, noted


@pytest.mark.parametrize("bad, msg", [
    ("id9,-,-,real,E,Unknown-Type,African,men,x.mp4,FakeAVCeleb/Unknown-Type/African/men/id9\n", "bad category 'E'"),
    ("id9,-,-,real,A\n", "5 values, expected"),
    ("id9,-,-,real,A,RealVideo-RealAudio,African,men,,FakeAVCeleb/RealVideo-RealAudio/African/men/id9\n",
     "empty 'path'"),
])
def test_fakeavceleb_malformed_rows_name_file_and_line(tmp_path, touch_file, bad, msg):
    root = write_fakeavceleb(tmp_path / "f", touch_file, extra_lines=[bad])
    with pytest.raises(ManifestError, match=rf"meta_data.csv:{len(ROWS) + 2}: {msg}"):
        load_dataset("fakeavceleb", root)


def test_fakeavceleb_missing_column_or_file(tmp_path, touch_file):
    root = tmp_path / "f"
    root.mkdir()
    with pytest.raises(ManifestError, match="meta_data.csv: FakeAVCeleb metadata not found"):
        load_dataset("fakeavceleb", root)
    (root / "meta_data.csv").write_text("source,target1,method,type\nid1,-,real,RealVideo-RealAudio\n")
    with pytest.raises(ManifestError, match=r"meta_data.csv:1: missing column\(s\) category, path"):
        load_dataset("fakeavceleb", root)


def test_fakeavceleb_synth_info_splits_are_used(tmp_path, touch_file):
    import json

    root = write_fakeavceleb(tmp_path / "synth", touch_file)
    (root / "synth_info.json").write_text(json.dumps(
        {"seed": 1, "identities": {"train": ["id00076"], "dev": ["id00166"], "test": [4321]}}))
    recs = load_dataset("fakeavceleb", root)
    assert {r.identity: r.split for r in recs} == {"id00076": "train", "id00166": "val", "id04321": "test"}
    assert {r.split for r in load_dataset("fakeavceleb", root, synth_info=False)} <= {"train", "val", "test"}
    (root / "synth_info.json").write_text(json.dumps({"identities": {"train": ["id00076"], "later": ["x"]}}))
    with pytest.raises(ManifestError, match=r"synth_info.json: identities: bad split value 'later'"):
        load_dataset("fakeavceleb", root)
    (root / "synth_info.json").write_text(json.dumps({"seed": 1}))  # informative only -> seeded split
    assert len(load_dataset("fakeavceleb", root)) == len(ROWS)


def test_fakeavceleb_root_may_be_the_csv_itself(tmp_path, touch_file):
    root = write_fakeavceleb(tmp_path / "FakeAVCeleb_v1.2", touch_file)
    assert len(load_dataset("fakeavceleb", root / "meta_data.csv")) == len(ROWS)
