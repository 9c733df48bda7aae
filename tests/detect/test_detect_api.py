"""The Python detection API: `Detector`, `DetectionResult`, window merging, segments, bad inputs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from macbdf.detect import DetectionResult, Detector, find_segments

RESULT_FIELDS = ["path", "p_fake", "p_audio_fake", "p_video_fake", "verdict", "threshold", "frame_scores",
                 "segments", "flags", "error", "timings", "duration", "model", "abstain_reason"]


# ---------------------------------------------------------------- segments (pure function)
def test_find_segments_modalities_and_times() -> None:
    fps = 10.0
    a = np.full(60, 0.1)
    v = np.full(60, 0.1)
    a[10:20] = 0.9                 # audio only, 1.0-2.0 s
    v[30:40] = 0.8                 # video only, 3.0-4.0 s
    a[45:55] = 0.7                 # both, 4.5-5.5 s
    v[45:55] = 0.95
    segs = find_segments(a, v, fps, 0.5)
    assert [(s["start"], s["end"], s["modality"]) for s in segs] == [
        (1.0, 2.0, "audio"), (3.0, 4.0, "video"), (4.5, 5.5, "both")]
    assert segs[0]["score"] == pytest.approx(0.9)
    assert segs[1]["score"] == pytest.approx(0.8)
    assert segs[2]["score"] == pytest.approx(0.95)  # mean of the frame-wise maximum


def test_find_segments_smoothing_and_min_duration() -> None:
    fps = 25.0
    a = np.zeros(100)
    v = np.zeros(100)
    a[10] = 1.0                    # a one-frame blip is smoothed away
    a[40:60] = 1.0
    a[50] = 0.0                    # a one-frame dip does not split the segment
    v[80:83] = 1.0                 # 3 frames = 0.12 s < 0.2 s minimum
    segs = find_segments(a, v, fps, 0.5)
    assert len(segs) == 1
    # runs closer than merge_gap_s join; farther apart they stay two segments
    b = np.zeros(100)
    b[10:30] = b[33:50] = 1.0      # 3-frame gap (0.12 s)
    b[60:70] = 1.0                 # 10-frame gap (0.4 s)
    got = [(s["start"], s["end"]) for s in find_segments(b, np.zeros(100), fps, 0.5)]
    assert got == [(10 / fps, 50 / fps), (60 / fps, 70 / fps)]
    assert segs[0]["start"] == pytest.approx(40 / fps) and segs[0]["end"] == pytest.approx(60 / fps)
    assert find_segments([], [], fps) == []
    assert find_segments(np.zeros(50), np.zeros(50), fps) == []


def test_result_json_fields_exact() -> None:
    r = DetectionResult(path="x.mp4", error="not a media file")
    d = r.to_dict()
    assert list(d) == RESULT_FIELDS
    assert d["verdict"] is None and d["p_fake"] is None
    assert set(d["timings"]) == {"decode_prepare_s", "model_s", "total_s"}
    json.dumps(d)


# ---------------------------------------------------------------- with a model
@pytest.fixture(scope="module")
def det(tiny_checkpoint: Path) -> Detector:
    return Detector.from_pretrained(tiny_checkpoint, device="cpu")


def test_from_pretrained_reads_threshold_and_config(tiny_checkpoint: Path, det: Detector) -> None:
    assert det.threshold == 0.5
    assert det.num_frames == det.model.config.num_frames
    assert det.preprocess.face_size == 64  # taken from the checkpoint's config
    assert not det.model.training
    override = Detector.from_pretrained(tiny_checkpoint, threshold=0.25)
    assert override.threshold == 0.25


def test_good_clip(det: Detector, clip_dir: Path) -> None:
    r = det(clip_dir / "good.mp4")
    assert r.error is None, r.error
    assert list(r.to_dict()) == RESULT_FIELDS
    for p in (r.p_fake, r.p_audio_fake, r.p_video_fake):
        assert 0.0 <= p <= 1.0
    assert r.verdict == ("fake" if r.p_fake >= r.threshold else "real")
    fs = r.frame_scores
    assert fs["fps"] == det.preprocess.fps
    n = len(fs["audio"])
    assert n == len(fs["video"]) == 40        # 1.6 s at 25 fps
    assert r.duration == pytest.approx(n / fs["fps"])
    assert all(0.0 <= x <= 1.0 for x in fs["audio"] + fs["video"])
    assert r.timings["total_s"] >= r.timings["model_s"] > 0
    assert r.timings["decode_prepare_s"] > 0
    for s in r.segments:
        assert 0 <= s["start"] < s["end"] <= r.duration + 1e-6
        assert s["modality"] in ("audio", "video", "both")
    json.dumps(r.to_dict())


def test_long_video_windows_merge(det: Detector, clip_dir: Path) -> None:
    path = clip_dir / "long.mkv"
    windows = list(det.stream(path))
    T = det.num_frames
    assert len(windows) == math.ceil(75 / T)
    assert [w.start_frame for w in windows] == [i * T for i in range(len(windows))]
    assert sum(w.num_frames for w in windows) == 75
    r = det(path)
    assert r.error is None
    # the sample probability is the frame-weighted mean of the window probabilities
    wts = np.array([w.num_frames for w in windows], float)
    expected = float((np.array([w.p_fake for w in windows]) * wts).sum() / wts.sum())
    assert r.p_fake == pytest.approx(expected, abs=1e-5)
    assert r.frame_scores["audio"] == [x for w in windows for x in w.frame_scores["audio"]]
    assert r.frame_scores["video"] == [x for w in windows for x in w.frame_scores["video"]]
    # "max" aggregation takes the most suspicious window
    det_max = Detector(det.model, threshold=det.threshold, aggregation="max")
    assert det_max(path).p_fake == pytest.approx(max(w.p_fake for w in windows), abs=1e-5)


def test_batching_windows_does_not_change_scores(det: Detector, clip_dir: Path) -> None:
    one = Detector(det.model, threshold=det.threshold, batch_windows=1, prefetch=False)(clip_dir / "good.mp4")
    many = Detector(det.model, threshold=det.threshold, batch_windows=8, prefetch=True)(clip_dir / "good.mp4")
    assert one.error is None and many.error is None
    assert one.p_fake == pytest.approx(many.p_fake, abs=1e-4)
    np.testing.assert_allclose(one.frame_scores["video"], many.frame_scores["video"], atol=2e-4)
    assert one.flags == many.flags


def test_stream_stopped_early_leaves_no_thread(det: Detector, clip_dir: Path) -> None:
    import threading

    gen = Detector(det.model, prefetch=True).stream(clip_dir / "long.mkv")
    first = next(gen)
    assert first.index == 0 and first.start_frame == 0
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "macbdf-prefetch"]


def test_no_audio_is_flagged_not_failed(det: Detector, clip_dir: Path) -> None:
    r = det(clip_dir / "noaudio.mp4")
    assert r.error is None
    assert "no_audio" in r.flags


@pytest.mark.parametrize("name", ["empty.mp4", "notes.mp4", "truncated.mp4", "missing.mp4"])
def test_bad_input_gives_one_line_error(det: Detector, clip_dir: Path, name: str) -> None:
    r = det(clip_dir / name)
    assert r.error, f"{name} should fail"
    assert "\n" not in r.error and "Traceback" not in r.error
    assert r.verdict is None and r.p_fake is None
    assert r.to_dict()["path"] == str(clip_dir / name)


def test_batch_keeps_going_after_failures(det: Detector, clip_dir: Path) -> None:
    paths = [clip_dir / n for n in ("empty.mp4", "short.mp4", "notes.mp4", "noaudio.mp4")]
    rs = det.batch(paths)
    assert [r.error is None for r in rs] == [False, True, False, True]
    assert [r.path for r in rs] == [str(p) for p in paths]


def test_directory_is_an_error(det: Detector, clip_dir: Path) -> None:
    r = det(clip_dir)
    assert r.error and "directory" in r.error


def test_threshold_decides_verdict(det: Detector, clip_dir: Path) -> None:
    always = Detector(det.model, threshold=0.0)(clip_dir / "short.mp4")
    never = Detector(det.model, threshold=1.0)(clip_dir / "short.mp4")
    assert always.verdict == "fake"
    assert never.verdict == ("fake" if never.p_fake >= 1.0 else "real")
    assert always.threshold == 0.0 and never.threshold == 1.0


def test_max_frames_truncates_and_timeout_gives_error(det: Detector, clip_dir: Path) -> None:
    r = det.detect(clip_dir / "long.mkv", max_frames=20, display_path="shown.mkv")
    assert r.error is None
    assert len(r.frame_scores["video"]) == 20
    assert "truncated" in r.flags
    assert r.path == "shown.mkv"
    t = det.detect(clip_dir / "long.mkv", timeout_s=0.0)
    assert t.error == "detection timed out"


def test_invalid_options_rejected(det: Detector) -> None:
    with pytest.raises(ValueError):
        Detector(det.model, aggregation="median")
    with pytest.raises(ValueError):
        Detector(det.model, threshold=1.5)


def test_top_level_import() -> None:
    import macbdf

    assert macbdf.Detector is Detector
    assert macbdf.DetectionResult is DetectionResult


@pytest.mark.media
@pytest.mark.slow
def test_real_clips(det: Detector, shared_media: Path) -> None:
    """Real clips of different shapes: H.264 square, 29.97 fps with audio, HEVC portrait."""
    names = ["real_hdtf_aoc.mp4", "fake_wav2lip_kennedy_lipsync.mp4", "real_latentsync_demo1_hevc_portrait.mp4"]
    results = det.batch([shared_media / n for n in names])
    for name, r in zip(names, results):
        assert r.error is None, f"{name}: {r.error}"
        assert "no_face" not in r.flags, f"{name}: {r.flags}"
        assert "no_audio" not in r.flags
        assert len(r.frame_scores["video"]) == pytest.approx(r.duration * det.preprocess.fps, abs=1)
    assert results[0].duration == pytest.approx(8.0, abs=0.1)
    assert results[1].duration == pytest.approx(6.87, abs=0.1)
