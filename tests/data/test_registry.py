from __future__ import annotations

import pytest

from macbdf.data.adapters import REGISTRY, get_adapter, list_datasets, load_dataset, register
from macbdf.data.manifest import ManifestError, SampleRecord, read_manifest, write_manifest


def test_list_datasets_names_every_adapter_in_order():
    assert list_datasets() == ["fakeavceleb", "dfdc", "lavdf", "avdeepfake1m", "defakeavmit", "manifest", "folder"]
    for name in list_datasets():
        assert get_adapter(name).description, f"{name} has no docstring summary"


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*fakeavceleb"):
        load_dataset("nope", ".")


def test_unknown_adapter_option_is_a_usage_error(tmp_path):
    with pytest.raises(ValueError, match="folder.*colour"):
        load_dataset("folder", tmp_path, colour="red")


def test_missing_root_is_a_manifest_error(tmp_path):
    for name in list_datasets():
        with pytest.raises(ManifestError, match="does not exist"):
            load_dataset(name, tmp_path / "absent")


def test_register_refuses_a_second_adapter_of_the_same_name():
    with pytest.raises(ValueError, match="twice"):
        register("folder")(lambda root: [])
    assert REGISTRY["folder"].name == "folder"


def test_records_survive_the_jsonl_round_trip(tmp_path, touch_file):
    touch_file(tmp_path / "data" / "clip one.mp4")
    recs = load_dataset("folder", tmp_path / "data")
    write_manifest(recs, tmp_path / "m.jsonl")
    assert read_manifest(tmp_path / "m.jsonl") == recs
    assert all(isinstance(r, SampleRecord) for r in recs)
