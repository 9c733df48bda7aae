from __future__ import annotations

import json

import pytest

from macbdf.data.adapters import load_dataset
from macbdf.data.adapters.defakeavmit import class_of_folder
from macbdf.data.manifest import ManifestError


def write_dfdc(root, touch_file):
    parts = {
        "dfdc_train_part_0": {
            "aaqaifqrwn.mp4": {"label": "REAL", "split": "train", "original": None},
            "abarnvbtwb.mp4": {"label": "FAKE", "split": "train", "original": "aaqaifqrwn.mp4"},
            "abofeumbvv.mp4": {"label": "FAKE", "split": "train", "original": "aaqaifqrwn.mp4"},
        },
        "dfdc_train_part_12": {
            "bbhtdfuqxq.mp4": {"label": "REAL", "split": "train", "original": None},
            "bcbqxhziqz.mp4": {"label": "FAKE", "split": "train", "original": "bbhtdfuqxq.mp4"},
        },
    }
    for part, meta in parts.items():
        for k in meta:
            touch_file(root / part / k)
        (root / part / "metadata.json").write_text(json.dumps(meta))
    test = root / "test"
    (test / "videos").mkdir(parents=True)
    for k in ("aassnaulhq.mp4", "aayfryxljh.mp4"):
        touch_file(test / "videos" / k)  # the videos sit one folder below labels.csv
    (test / "labels.csv").write_text("filename,label\naassnaulhq.mp4,0\naayfryxljh.mp4,1\n")
    full = root / "dfdc_test_full"
    for k in ("zzfakeaaaa.mp4", "zzrealaaaa.mp4"):
        touch_file(full / k)
    (full / "metadata.json").write_text(json.dumps({"zzfakeaaaa.mp4": {"is_fake": 1},
                                                    "zzrealaaaa.mp4": {"is_fake": 0}}))
    return root


def test_dfdc_train_parts_and_test_labels(tmp_path, touch_file):
    root = write_dfdc(tmp_path / "dfdc", touch_file)
    recs = {r.video_id: r for r in load_dataset("dfdc", root, val_fraction=0)}
    assert len(recs) == 9
    real, fake = recs["aaqaifqrwn.mp4"], recs["abarnvbtwb.mp4"]
    assert (real.label, real.video_label, real.audio_label, real.category, real.method) == (0, 0, 0, "RVRA", "real")
    # Labels are per video: which track of a fake is manipulated is unknown by default.
    assert (fake.label, fake.video_label, fake.audio_label, fake.category) == (1, None, None, None)
    assert fake.identity == real.identity == "aaqaifqrwn.mp4" and fake.extra["original"] == "aaqaifqrwn.mp4"
    assert {recs[k].split for k in ("aaqaifqrwn.mp4", "bcbqxhziqz.mp4")} == {"train"}
    t0, t1 = recs["aassnaulhq.mp4"], recs["aayfryxljh.mp4"]
    assert (t0.label, t1.label, t0.split, t1.split) == (0, 1, "test", "test")
    assert t0.path == str(root / "test" / "videos" / "aassnaulhq.mp4")
    assert (recs["zzfakeaaaa.mp4"].label, recs["zzrealaaaa.mp4"].label) == (1, 0)
    assert recs["zzfakeaaaa.mp4"].split == "test"
    assert all(r.dataset == "dfdc" for r in recs.values())


def test_dfdc_visual_mode_and_val_carved_from_train(tmp_path, touch_file):
    root = write_dfdc(tmp_path / "dfdc", touch_file)
    recs = load_dataset("dfdc", root, modality_labels="visual", val_fraction=0.2, identity_disjoint=True)
    fake = next(r for r in recs if r.video_id == "abarnvbtwb.mp4")
    assert (fake.video_label, fake.audio_label) == (1, None)
    by_id = {}
    for r in recs:
        by_id.setdefault(r.identity, set()).add(r.split)
    assert all(len(s) == 1 for s in by_id.values())  # a source video and its fakes stay together
    assert sum(r.split == "val" for r in recs) >= 1
    with pytest.raises(ValueError, match="modality_labels"):
        load_dataset("dfdc", root, modality_labels="audio")


def test_dfdc_paper_protocol_resplits_everything(tmp_path, touch_file):
    root = write_dfdc(tmp_path / "dfdc", touch_file)
    recs = load_dataset("dfdc", root, own_split=False, val_fraction=0)
    assert sum(r.split == "test" for r in recs) == 2  # round(9 * 0.2)


def test_dfdc_malformed(tmp_path, touch_file):
    root = tmp_path / "d"
    (root / "dfdc_train_part_3").mkdir(parents=True)
    (root / "dfdc_train_part_3" / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "MAYBE"}}))
    with pytest.raises(ManifestError, match=r"dfdc_train_part_3/metadata.json: entry 'a.mp4': bad label value 'MAYBE'"):
        load_dataset("dfdc", root)
    (root / "dfdc_train_part_3" / "metadata.json").write_text(json.dumps({"a.mp4": {"split": "train"}}))
    with pytest.raises(ManifestError, match="entry 'a.mp4': no 'label' or 'is_fake'"):
        load_dataset("dfdc", root)
    (root / "dfdc_train_part_3" / "metadata.json").write_text("{}")
    (root / "labels.csv").write_text("filename,label\na.mp4,1\nb.mp4,2\n")
    with pytest.raises(ManifestError, match=r"labels.csv:3: bad label value '2'"):
        load_dataset("dfdc", root)
    (root / "labels.csv").write_text("name,label\na.mp4,1\n")
    with pytest.raises(ManifestError, match=r"labels.csv:1: missing column 'filename'"):
        load_dataset("dfdc", root)
    with pytest.raises(ManifestError, match="no DFDC metadata"):
        load_dataset("dfdc", _empty(tmp_path))


def _empty(tmp_path):
    p = tmp_path / "empty"
    p.mkdir()
    return p


# ---------------------------------------------------------------- DefakeAVMiT

@pytest.mark.parametrize("name, cat", [
    ("V_R A_R", "RVRA"), ("V_F A_R", "FVRA"), ("V_R A_F", "RVFA"), ("V_F A_F", "FVFA"), ("VRAR", "RVRA"),
    ("V_R-A_F", "RVFA"), ("vf_af", "FVFA"), ("RealVideo-RealAudio", "RVRA"), ("FakeVideo_RealAudio", "FVRA"),
    ("A_F V_R", "RVFA"), ("RVFA", "RVFA"), ("fake audio fake video", "FVFA"),
    ("videos", None), ("VRA", None), ("method1", None),
])
def test_defakeavmit_class_folder_spellings(name, cat):
    assert class_of_folder(name) == cat


def test_defakeavmit_layout(tmp_path, touch_file):
    root = tmp_path / "DefakeAVMiT"
    touch_file(root / "V_R A_R" / "00001.mp4")
    touch_file(root / "V_R A_R" / "spk 2" / "00002.mp4")
    touch_file(root / "V_F A_R" / "faceswap" / "00003.mp4")
    touch_file(root / "V_F A_R" / "wav2lip" / "00004.mp4")
    touch_file(root / "V_R A_F" / "00005.mp4")  # no method sub-folder
    touch_file(root / "V_F A_F" / "sadtalker" / "a b" / "00006.avi")
    touch_file(root / "V_F A_F" / "notes.txt")
    recs = {r.video_id: r for r in load_dataset("defakeavmit", root)}
    assert len(recs) == 6
    assert (recs["V_R A_R/spk 2/00002.mp4"].method, recs["V_R A_R/spk 2/00002.mp4"].label) == ("real", 0)
    assert (recs["V_F A_R/wav2lip/00004.mp4"].category, recs["V_F A_R/wav2lip/00004.mp4"].method) == ("FVRA", "wav2lip")
    r5 = recs["V_R A_F/00005.mp4"]
    assert (r5.video_label, r5.audio_label, r5.method) == (0, 1, "RVFA")
    r6 = recs["V_F A_F/sadtalker/a b/00006.avi"]
    assert (r6.label, r6.category, r6.method, r6.dataset) == (1, "FVFA", "sadtalker", "defakeavmit")
    assert {r.split for r in recs.values()} <= {"train", "val", "test"}


def test_defakeavmit_nested_root_and_errors(tmp_path, touch_file):
    root = tmp_path / "download"
    touch_file(root / "DefakeAVMiT" / "VRAR" / "a.mp4")
    touch_file(root / "DefakeAVMiT" / "VFAF" / "m" / "b.mp4")
    assert sorted(r.video_id for r in load_dataset("defakeavmit", root)) == [
        "DefakeAVMiT/VFAF/m/b.mp4", "DefakeAVMiT/VRAR/a.mp4"]
    touch_file(root / "DefakeAVMiT" / "V_R A_R" / "c.mp4")
    with pytest.raises(ManifestError, match="two folders for class RVRA"):
        load_dataset("defakeavmit", root)
    (tmp_path / "none" / "stuff").mkdir(parents=True)
    with pytest.raises(ManifestError, match="no class folders"):
        load_dataset("defakeavmit", tmp_path / "none")
