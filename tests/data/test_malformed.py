"""Malformed metadata gives a one-line ManifestError naming the file and the line (or record)."""
from __future__ import annotations

import json

import pytest

from macbdf.data.adapters import load_dataset
from macbdf.data.manifest import ManifestError

GOOD_CSV = "path,label,video_label,audio_label,fake_periods,split\na.mp4,0,,,,train\nb.mp4,1,1,0,\"[[0, 1]]\",test\n"


@pytest.mark.parametrize("line, msg", [
    ("c.mp4,maybe,,,,train", "bad label value 'maybe'"),
    ("c.mp4,1,2,,,train", "bad video_label value '2'"),
    ("c.mp4,1,,,\"[[0, 1\",train", "fake_periods is not valid JSON"),
    ("c.mp4,1,,,\"{\"\"a\"\": 1}\",train", "fake_periods must be a list"),
    ("c.mp4,1,,,\"[[\"\"x\"\", 1]]\",train", r"fake_periods entry \['x', 1\] is not a \[start, end\] pair"),
    ("c.mp4,1,,,,someday", "bad split value 'someday'"),
    ("c.mp4,0,1,0,,train", "label 0 .real. but a track is labelled fake"),
    ("c.mp4,1,0,0,,train", "label 1 contradicts video_label=0, audio_label=0"),
    (",1,,,,train", "missing or empty 'path'"),
    ("c.mp4,1,,,,train,extra,values", "8 values but the header has 6 columns"),
])
def test_csv_manifest_errors_name_file_and_line(tmp_path, line, msg):
    p = tmp_path / "list.csv"
    p.write_text(GOOD_CSV + "\n" + line + "\n")  # the blank line 4 is skipped but still counted
    with pytest.raises(ManifestError, match=rf"list.csv:5: {msg}") as e:
        load_dataset("manifest", p, missing="keep")
    assert "\n" not in str(e.value)


def test_csv_manifest_without_path_column(tmp_path):
    p = tmp_path / "list.csv"
    p.write_text("file,label\na.mp4,1\n")
    with pytest.raises(ManifestError, match=r"list.csv:1: missing required column 'path'"):
        load_dataset("manifest", p)
    p.write_text("")
    with pytest.raises(ManifestError, match=r"list.csv:1: empty manifest"):
        load_dataset("manifest", p)


def test_csv_quoted_multiline_field_reports_the_record_end_line(tmp_path):
    p = tmp_path / "list.csv"
    p.write_text('path,label,note\na.mp4,1,"two\nlines"\nb.mp4,bad,x\n')
    with pytest.raises(ManifestError, match=r"list.csv:4: bad label value 'bad'"):
        load_dataset("manifest", p, missing="keep")


@pytest.mark.parametrize("obj, msg", [
    ('{"path": "c.mp4", "label": "x"}', "bad label value 'x'"),
    ('{"path": "c.mp4", "label": 1, "fake_periods": 3}', "fake_periods must be a list"),
    ('{"path": 5, "label": 1}', "missing or empty 'path'"),
    ('{"path": "c.mp4", "label": 1, "extra": [1]}', "extra must be a JSON dict"),
    ('{"path": "c.mp4", "label": 1, "identity": {"a": 1}}', "identity must be text"),
    ('{"path": "c.mp4", "category": "XXXX"}', "bad category 'XXXX'"),
    ('{"path": "c.mp4", "label": 1, "duration": "long"}', "bad duration 'long'"),
    ('{"path": "c.mp4", "label": 1,}', "invalid JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_jsonl_manifest_errors_name_file_and_line(tmp_path, obj, msg):
    p = tmp_path / "list.jsonl"
    p.write_text('{"path": "a.mp4", "label": 0}\n{"path": "b.mp4", "label": 1}\n' + obj + "\n")
    with pytest.raises(ManifestError, match=rf"list.jsonl:3: {msg}"):
        load_dataset("manifest", p, missing="keep")


def test_json_list_manifest_errors_name_the_record(tmp_path):
    p = tmp_path / "list.json"
    p.write_text(json.dumps([{"path": "a.mp4", "label": 0}, {"path": "b.mp4", "label": "sure"}]))
    with pytest.raises(ManifestError, match=r"list.json: record 1: bad label value 'sure'"):
        load_dataset("manifest", p, missing="keep")
    p.write_text('[{"path": "a.mp4"},\n {"path": "b.mp4" "label": 1}]')
    with pytest.raises(ManifestError, match=r"list.json:2: invalid JSON"):
        load_dataset("manifest", p, missing="keep")


def test_not_utf8_and_unknown_type(tmp_path):
    p = tmp_path / "list.csv"
    p.write_bytes(b"path,label\n\xff\xfe.mp4,1\n")
    with pytest.raises(ManifestError, match="list.csv: not UTF-8"):
        load_dataset("manifest", p)
    q = tmp_path / "list.txt"
    q.write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest type '.txt'"):
        load_dataset("manifest", q)
    with pytest.raises(ManifestError, match="no manifest file found"):
        load_dataset("manifest", tmp_path)
