from __future__ import annotations

import os

import pytest

from macbdf.data.adapters import VIDEO_EXTENSIONS, load_dataset
from macbdf.data.manifest import ManifestError


def test_folder_finds_every_video_extension_recursively(tmp_path, touch_file):
    root = tmp_path / "videos"
    for i, ext in enumerate(VIDEO_EXTENSIONS):
        touch_file(root / f"sub {i % 3}" / f"clip{i}{ext.upper() if i % 2 else ext}")
    touch_file(root / "readme.txt")
    touch_file(root / "._clip0.mp4")  # macOS resource fork: not a video
    touch_file(root / ".hidden" / "x.mp4")
    recs = load_dataset("folder", root)
    assert len(recs) == len(VIDEO_EXTENSIONS) == 12
    assert {r.split for r in recs} == {"test"}
    assert all(r.label is None and r.video_label is None and r.audio_label is None for r in recs)
    assert all(r.dataset == "folder" for r in recs)
    assert all(os.path.isfile(r.path) for r in recs)


def test_folder_ids_are_relative_and_stable_across_locations(tmp_path, touch_file):
    a = tmp_path / "a" / "data"
    touch_file(a / "x" / "one.mp4")
    touch_file(a / "two.mkv")
    first = [r.video_id for r in load_dataset("folder", a)]
    b = tmp_path / "elsewhere" / "copy"
    b.parent.mkdir()
    os.rename(a, b)
    assert [r.video_id for r in load_dataset("folder", b)] == first == ["two.mkv", "x/one.mp4"]


def test_folder_same_stem_different_extension_stay_distinct(tmp_path, touch_file):
    touch_file(tmp_path / "a.mp4")
    touch_file(tmp_path / "a.mov")
    assert sorted(r.video_id for r in load_dataset("folder", tmp_path)) == ["a.mov", "a.mp4"]


def test_folder_accepts_a_single_file_and_custom_extensions(tmp_path, touch_file):
    f = touch_file(tmp_path / "clip.mp4")
    touch_file(tmp_path / "clip.xyz")
    assert [r.video_id for r in load_dataset("folder", f)] == ["clip.mp4"]
    assert [r.video_id for r in load_dataset("folder", tmp_path, extensions=["xyz"])] == ["clip.xyz"]
    with pytest.raises(ManifestError, match="not a video"):
        load_dataset("folder", touch_file(tmp_path / "notes.txt"))


def test_folder_survives_a_symlink_loop(tmp_path, touch_file):
    touch_file(tmp_path / "d" / "v.mp4")
    try:
        os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    except OSError:
        pytest.skip("no symlinks here")
    ids = [r.video_id for r in load_dataset("folder", tmp_path)]
    assert ids.count("d/v.mp4") == 1
