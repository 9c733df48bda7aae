"""Huge frames are shrunk at decode (FFmpeg's area scaler, integer factor); what is cut from them stays close.

The memory figure (8192 x 8192 clip) is measured by benchmarks/detect_speed.py, not here.
"""
from __future__ import annotations

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.media import prepare as prep
from macbdf.media.decode import decode_shrink, iter_video_frames


def test_shrink_factor():
    assert decode_shrink(640, 360, None) == 1 and decode_shrink(4096, 4096, 4096) == 1
    assert decode_shrink(8192, 8192, 4096) == 4 and decode_shrink(4097, 100, 4096) == 3
    assert decode_shrink(100, 8192, 4096) == 4          # portrait: the longer side counts


def test_shrunk_frames_give_close_crops_and_grey(tmp_path, clip_maker):
    p = clip_maker(tmp_path / "big.mp4", size=(640, 480), seconds=0.4, audio_rate=None, bar=True, level_step=20)
    full = list(iter_video_frames(p, 25.0))
    stats: dict = {}
    small = list(iter_video_frames(p, 25.0, max_side=400, stats=stats))
    assert len(small) == len(full)
    assert stats["decode_shrink"] == 4 and (stats["width"], stats["height"]) == (640, 480)   # the source's size
    for (k, f), (k2, s) in zip(full, small):
        assert k == k2 and (s.width, s.height) == (160, 120) and s.time == f.time
        # the same display region (coordinates scale with the frame), cut and resized to 32 px
        a = f.crop((80, 40, 560, 440), 32).astype(np.int16)
        b = s.crop((20, 10, 140, 110), 32).astype(np.int16)
        assert np.abs(a - b).mean() < 2.0 and np.abs(a - b).max() <= 40
        ga, gb = f.gray(80).astype(np.int16), s.gray(80).astype(np.int16)
        assert ga.shape == gb.shape and np.abs(ga - gb).mean() < 2.0


@pytest.mark.media
def test_prepare_with_shrunk_frames_keeps_faces_and_crops(shared_media, monkeypatch):
    # A face video shrunk at decode (factor 3 here; an 8192 px video is shrunk by 4): the face is found
    # on the same frames, boxes in the same relative place, crops close to the full-resolution ones.
    clip = shared_media / "real_hdtf_aoc.mp4"
    cfg = PreprocessConfig()
    ref = prep.prepare_file(clip, cfg, max_frames=75)
    monkeypatch.setattr(prep, "DECODE_MAX_SIDE", 400)
    got = prep.prepare_file(clip, cfg, max_frames=75)
    assert got.info["decode_shrink"] == 3 and got.info["width"] == ref.info["width"] == 512
    assert got.flags == ref.flags and got.info["face_coverage"] == ref.info["face_coverage"] == 1.0
    assert abs(got.info["crop_frac"] - ref.info["crop_frac"]) < 0.03
    diff = np.abs(got.frames.astype(np.int16) - ref.frames.astype(np.int16))
    assert diff.mean() < 8.0, diff.mean()
    np.testing.assert_array_equal(got.logmel, ref.logmel)
