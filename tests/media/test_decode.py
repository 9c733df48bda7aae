"""Decoding: timestamp resampling, rotation, audio resampling, codecs, bad inputs."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from macbdf.config import PreprocessConfig
from macbdf.media import decode
from macbdf.media.decode import MediaError, decode_audio, iter_video_frames, probe
from macbdf.media.prepare import iter_windows, prepare_file



def _levels(path, fps=25.0):
    return [float(f.crop((0, 0, f.width, f.height), 16).mean()) for _, f in iter_video_frames(path, fps)]


@pytest.mark.parametrize("name,src_fps", [("h264_25", 25.0), ("h264_30_48k", 30.0),
                                          ("h264_2997_44k", 30000 / 1001)])
def test_resample_takes_nearest_previous_frame(clips, name, src_fps):
    levels = _levels(clips[name])
    n_src = {"h264_25": 30, "h264_30_48k": 30, "h264_2997_44k": 30}[name]
    # Clip end = last frame time + one source frame; targets k/25 before it.
    assert len(levels) == math.ceil(n_src / src_fps * 25 - 1e-6)
    for k, lev in enumerate(levels):
        src = int(math.floor(k / 25 * src_fps + 1e-6))
        assert abs(lev - (src * 8) % 256) <= 3, (k, src, lev)


def test_upsampling_repeats_frames(tmp_path, clip_maker):
    p = clip_maker(tmp_path / "f10.mp4", fps=10, seconds=1.0, audio_rate=None)
    levels = _levels(p)
    assert len(levels) == 25
    assert [round(v / 8) for v in levels[:6]] == [0, 0, 0, 1, 1, 2]


def test_max_frames_stops_early(clips):
    assert sum(1 for _ in iter_video_frames(clips["h264_25"], 25.0, max_frames=7)) == 7


def test_rotation_display_matrix(clips):
    info = probe(clips["rot90"])
    assert info.rotation == 90
    assert (info.width, info.height) == (48, 96) and (info.coded_width, info.coded_height) == (96, 48)
    k, f = next(iter(iter_video_frames(clips["rot90"], 25.0)))
    assert (f.width, f.height) == (48, 96)
    # The white bar on the coded frame's left edge is on top after a 90 degree clockwise turn.
    g = f.gray(96)
    assert g.shape == (96, 48)
    assert g[:8].mean() > 200 and g[40:].mean() < 100
    crop = f.crop((0, 0, 48, 48), 48)          # top square of the display frame
    assert crop[:6].mean() > 200 and crop[30:].mean() < 100
    clip = prepare_file(clips["rot90"], PreprocessConfig(face_size=32))
    assert "rotated" in clip.flags


@pytest.mark.parametrize("name,rate,channels", [("h264_30_48k", 48000, 2), ("h264_2997_44k", 44100, 2),
                                                ("h264_25", 16000, 1)])
def test_audio_resampled_to_16k_mono(clips, name, rate, channels):
    info = probe(clips[name])
    assert info.has_audio and info.audio_rate == rate and info.audio_channels == channels
    audio, has = decode_audio(clips[name], 16000)
    assert has and audio.ndim == 1 and audio.dtype == np.float32
    dur = {"h264_30_48k": 1.0, "h264_2997_44k": 1.0, "h264_25": 1.2}[name]
    assert abs(audio.size / 16000 - dur) < 0.1
    spec = np.abs(np.fft.rfft(audio[2000:10000]))
    peak_hz = np.argmax(spec) * 16000 / 8000
    assert abs(peak_hz - 1000) < 10


def test_no_audio_is_silence_and_flagged(clips, cfg):
    clip = prepare_file(clips["mpeg4_noaudio"], cfg)
    assert "no_audio" in clip.flags
    assert clip.frames.shape == (30, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.logmel.shape == (30 * cfg.mel_per_frame, cfg.n_mels)
    assert np.allclose(clip.logmel, np.log(cfg.log_eps))


def test_prepare_shapes_flags_and_alignment(clips, cfg):
    clip = prepare_file(clips["h264_30_48k"], cfg)
    assert clip.frames.shape[0] == 25 and clip.logmel.shape == (25 * cfg.mel_per_frame, cfg.n_mels)
    assert clip.fps == 25.0 and abs(clip.duration - 1.0) < 0.05
    assert "no_face" in clip.flags and "no_audio" not in clip.flags
    assert clip.info["src_fps"] == pytest.approx(30.0) and clip.info["audio_rate"] == 48000
    # A 1 kHz tone: loud mel frames everywhere except the zero-padded edges.
    assert clip.logmel[4:-8].max(axis=1).min() > np.log(cfg.log_eps) + 5
    short = prepare_file(clips["short"], cfg)
    assert "short" in short.flags


def test_windows_equal_whole_clip(clips, cfg):
    whole = prepare_file(clips["h264_2997_44k"], cfg)
    wins = list(iter_windows(clips["h264_2997_44k"], cfg, 7))
    assert [w.start_frame for w in wins] == list(range(0, whole.num_frames, 7))
    assert all(w.num_frames == 7 for w in wins[:-1])
    np.testing.assert_array_equal(np.concatenate([w.frames for w in wins]), whole.frames)
    np.testing.assert_allclose(np.concatenate([w.logmel for w in wins]), whole.logmel, atol=1e-5)


def test_bad_inputs_raise_one_line_media_errors(tmp_path, clips, cfg):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    data = clips["h264_25"].read_bytes()
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(data[: len(data) // 2])   # PyAV writes the moov atom last: it is cut off
    for p, needle in [(text, "not a media file"), (empty, "empty file"), (trunc, "truncated"),
                      (tmp_path / "missing.mp4", "not found"), (tmp_path, "directory")]:
        with pytest.raises(MediaError) as e:
            prepare_file(p, cfg)
        msg = str(e.value)
        assert needle in msg and "\n" not in msg


def test_audio_only_file_is_rejected(tmp_path, cfg):
    import av

    p = tmp_path / "tone.m4a"
    c = av.open(str(p), "w")
    s = c.add_stream("aac", rate=16000)
    af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    af.sample_rate = 16000
    for pk in list(s.encode(af)) + list(s.encode()):
        c.mux(pk)
    c.close()
    with pytest.raises(MediaError, match="no video stream"):
        prepare_file(p, cfg)


def test_huge_dimensions_rejected(clips, cfg, monkeypatch):
    monkeypatch.setattr(decode, "MAX_SIDE", 64)
    with pytest.raises(MediaError, match="too large"):
        prepare_file(clips["h264_25"], cfg)


def test_odd_frame_sizes_and_fractional_rate(tmp_path, cfg, clip_maker):
    p = clip_maker(tmp_path / "odd.mp4", size=(98, 70), fps=Fraction(24000, 1001), seconds=0.5)
    clip = prepare_file(p, cfg)
    assert clip.frames.shape[1:] == (32, 32, 3)
    assert clip.num_frames == math.ceil(12 / (24000 / 1001) * 25 - 1e-6)


def test_cut_off_stream_is_flagged_truncated(tmp_path, cfg, clip_maker):
    import av

    # moov atom first (faststart), then cut the media data in half: the index promises 3 s.
    src = clip_maker(tmp_path / "long.mp4", seconds=3.0, size=(64, 48), level_step=3)
    fast = tmp_path / "fast.mp4"
    with av.open(str(src)) as i, av.open(str(fast), "w", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for pkt in i.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream.index]
                o.mux(pkt)
    data = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    clip = prepare_file(cut, cfg)
    assert "truncated" in clip.flags and 0 < clip.num_frames < 60
    assert clip.logmel.shape[0] == clip.num_frames * cfg.mel_per_frame


def test_invalid_face_model_is_usage_error(tmp_path, capsys):
    from macbdf.cli import main

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not onnx")
    (tmp_path / "v").mkdir()
    rc = main(["prepare", "--dataset", "folder", "--root", str(tmp_path / "v"), "--out", str(tmp_path / "c"),
               "--face-model", str(bad)])
    assert rc == 2 and "cannot load face model" in capsys.readouterr().err


def test_opencv_without_cascades_is_one_line_error(tmp_path, capsys, monkeypatch):
    # OpenCV 5 (e.g. a preinstalled system build) has no CascadeClassifier: say so once, no traceback
    import cv2

    from macbdf.cli import main

    monkeypatch.delattr(cv2, "CascadeClassifier")
    (tmp_path / "v").mkdir()
    rc = main(["prepare", "--dataset", "folder", "--root", str(tmp_path / "v"), "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "no Haar cascade support" in err and "opencv-python-headless<5" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p", "yuvj420p", "yuv422p"])
def test_colours_survive_every_planar_format(tmp_path, clip_maker, pix_fmt):
    for rgb in [(200, 30, 40), (30, 60, 200), (40, 180, 60)]:
        p = clip_maker(tmp_path / f"{pix_fmt}_{rgb[0]}.mp4", seconds=0.2, pix_fmt=pix_fmt, rgb=rgb, audio_rate=None)
        _, f = next(iter(iter_video_frames(p, 25.0)))
        crop = f.crop((8, 8, 56, 56), 16).reshape(-1, 3).mean(0)
        assert np.abs(crop - np.array(rgb)).max() < 12, (pix_fmt, rgb, crop)


def test_read_ahead_propagates_errors_and_closes_early():
    from macbdf.media.decode import read_ahead

    closed = []

    def gen(fail_at=None):
        try:
            for i in range(100):
                if i == fail_at:
                    raise MediaError("boom")
                yield i
        finally:
            closed.append(True)

    assert list(read_ahead(gen(), 3)) == list(range(100))
    with pytest.raises(MediaError, match="boom"):
        list(read_ahead(gen(fail_at=7), 3))
    it = read_ahead(gen(), 3)
    assert [next(it) for _ in range(2)] == [0, 1]
    it.close()                      # consumer stops early: the producer closes the source
    assert closed == [True, True, True]
