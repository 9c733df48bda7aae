"""Issue 15, cases 1, 6, 7: non-finite audio, corrupt packets and clips without evidence never get a
verdict from garbage; a clip with one usable track is judged on that track."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hostile_media import remux_with_audio, strict_json, tone, write_clip, write_frames

from macbdf.config import PreprocessConfig
from macbdf.detect import ABSTAIN_REASONS, VERDICTS, DetectionResult, Detector


def _check_result(r: DetectionResult) -> dict:
    """Invariants of every result: strict JSON, a known verdict, p-values only with a verdict."""
    d = strict_json(json.dumps(r.to_dict(), allow_nan=False))
    if r.error is None:
        assert r.verdict in VERDICTS
    if r.verdict == "abstain":
        assert r.abstain_reason in ABSTAIN_REASONS
        assert r.p_fake is None and r.p_audio_fake is None and r.p_video_fake is None
    elif r.verdict in ("real", "fake"):
        assert r.abstain_reason is None and math.isfinite(r.p_fake)
        assert r.verdict == ("fake" if r.p_fake >= r.threshold else "real")
    return d


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 3e29])
def test_non_finite_audio_never_gives_an_audio_verdict(det: Detector, clip_dir: Path, tmp_path: Path, bad: float) -> None:
    wave = tone(1.6)
    wave[::50] = bad
    clip = remux_with_audio(clip_dir / "good.mp4", tmp_path / "bad_audio.mkv", wave)
    r = det.detect(clip)
    _check_result(r)
    assert r.error is None and "non_finite_audio" in r.flags
    # The video track (a face) still decides: a video-based verdict flagged no_audio, no audio p-value.
    if "no_face" in r.flags:
        assert r.verdict == "abstain" and r.abstain_reason == "non_finite_input"
    else:
        assert r.verdict in ("real", "fake") and "no_audio" in r.flags
        assert r.p_audio_fake is None and r.p_fake == r.p_video_fake
        assert r.frame_scores["audio"] == [] and len(r.frame_scores["video"]) > 0


def test_same_audio_finite_is_judged_on_both_tracks(det: Detector, clip_dir: Path, tmp_path: Path) -> None:
    # The control for the test above: the same remux with clean audio uses both tracks.
    r = det.detect(remux_with_audio(clip_dir / "good.mp4", tmp_path / "ok_audio.mkv", tone(1.6)))
    _check_result(r)
    assert "non_finite_audio" not in r.flags and r.p_audio_fake is not None


def test_audio_reader_blanks_and_counts_non_finite_samples(clip_dir: Path, tmp_path: Path) -> None:
    from macbdf.media.decode import AudioReader

    wave = tone(1.0)
    wave[100:110] = np.nan
    wave[200] = np.inf
    wave[300] = -5e4
    clip = remux_with_audio(clip_dir / "good.mp4", tmp_path / "a.mkv", wave)
    with AudioReader(clip, 16000) as r:
        x = r.read_all()
        assert r.non_finite == 12
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
    # The clean samples are untouched (same rate: no resampling) and the bad ones read as silence.
    assert np.allclose(x[:100], wave[:100], atol=1e-6) and (x[100:110] == 0).all()


def test_prepare_fails_a_file_with_non_finite_audio(clip_dir: Path, tmp_path: Path) -> None:
    from macbdf.cli import main

    root = tmp_path / "videos"
    root.mkdir()
    wave = tone(1.6)
    wave[::50] = np.nan
    remux_with_audio(clip_dir / "good.mp4", root / "nan.mkv", wave)
    (root / "fine.mp4").write_bytes((clip_dir / "good.mp4").read_bytes())
    out = tmp_path / "cache"
    rc = main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), "--quiet"])
    assert rc == 1
    fails = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(fails) == 1 and fails[0]["path"].endswith("nan.mkv") and "non-finite" in fails[0]["reason"]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["fine.mp4"]


def test_nan_weights_are_refused_at_load_and_abstain_in_memory(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from macbdf.checkpoint import CheckpointError, load_model, save_model

    bad = tmp_path / "nan_ckpt"
    shutil.copytree(tiny_checkpoint, bad)
    sd = load_file(str(bad / "model.safetensors"))
    name = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[name][0] = float("nan")
    save_file(sd, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="non-finite"):
        load_model(bad)
    # detect refuses the checkpoint with one line, exit 2
    from macbdf.cli import main

    assert main(["detect", str(clip_dir / "good.mp4"), "--checkpoint", str(bad), "--quiet"]) == 2
    # save_model refuses to write such weights at all
    model, _ = load_model(tiny_checkpoint)
    with torch.no_grad():
        dict(model.named_parameters())[name].view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        save_model(model, tmp_path / "never")
    assert not (tmp_path / "never" / "model.safetensors").exists()
    # a model that got NaN weights in memory: the detector abstains instead of answering "real"
    r = Detector(model, threshold=0.5).detect(clip_dir / "good.mp4")
    _check_result(r)
    assert r.verdict == "abstain" and r.abstain_reason == "non_finite_output"


def _h264_with_one_corrupt_packet(src_dir: Path, tmp_path: Path) -> Path:
    import av

    p = write_clip(tmp_path / "c36.mp4", seconds=1.44, audio=False)
    with av.open(str(p)) as c:
        pk = [(x.pos, x.size) for x in c.demux(c.streams.video[0]) if x.size]
    assert len(pk) == 36
    data = bytearray(p.read_bytes())
    pos, size = pk[3]
    data[pos + 4: pos + size] = np.random.default_rng(0).integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    out = tmp_path / "corrupt.mp4"
    out.write_bytes(bytes(data))
    return out


def test_corrupt_packet_is_skipped_and_flagged(clip_dir: Path, tmp_path: Path) -> None:
    from macbdf.media.decode import iter_video_frames
    from macbdf.media.prepare import prepare_file

    bad = _h264_with_one_corrupt_packet(clip_dir, tmp_path)
    stats: dict = {}
    n = sum(1 for _ in iter_video_frames(bad, 25.0, stats=stats))
    # One of 36 packets is lost, the other 35 decode (issue: decoding stopped at 1 frame).
    assert stats["skipped_packets"] == 1 and stats["src_frames"] == 35 and n == 36
    clip = prepare_file(bad, PreprocessConfig(face_size=32))
    assert "corrupt_packets" in clip.flags and clip.info["skipped_video_packets"] == 1
    assert clip.num_frames == 36


def test_one_frame_video_abstains_too_short(det: Detector, tmp_path: Path) -> None:
    img = np.full((120, 160, 3), 90, np.uint8)
    r = det.detect(write_frames(tmp_path / "one.mkv", [img], audio_seconds=2.0))
    _check_result(r)
    assert r.verdict == "abstain" and r.abstain_reason == "too_short"


def test_png_named_mp4_abstains(det: Detector, tmp_path: Path) -> None:
    import cv2

    p = tmp_path / "picture.mp4"
    p.write_bytes(cv2.imencode(".png", np.full((120, 160, 3), 128, np.uint8))[1].tobytes())
    r = det.detect(p)
    _check_result(r)
    assert r.error is None and r.verdict == "abstain" and r.abstain_reason == "too_short"


def test_audio_file_with_cover_art_abstains(det: Detector, tmp_path: Path) -> None:
    # An audio track with a single still (cover art) as its only video: one 0.04 s frame of evidence.
    img = np.full((120, 160, 3), 200, np.uint8)
    r = det.detect(write_frames(tmp_path / "song.mkv", [img], audio_seconds=3.0))
    _check_result(r)
    assert r.verdict == "abstain" and r.abstain_reason == "too_short"


def test_1x1_video_is_judged_on_audio_only_or_abstains(det: Detector, tmp_path: Path) -> None:
    frames = [np.full((1, 1, 3), 100, np.uint8)] * 40
    with_audio = det.detect(write_frames(tmp_path / "dot.mkv", frames, audio_seconds=1.6))
    _check_result(with_audio)
    assert "video_too_small" in with_audio.flags
    assert with_audio.verdict in ("real", "fake") and with_audio.p_video_fake is None
    assert with_audio.p_fake == with_audio.p_audio_fake and "no_video" in with_audio.flags
    silent = det.detect(write_frames(tmp_path / "dot_noaudio.mkv", frames))
    _check_result(silent)
    assert silent.verdict == "abstain" and silent.abstain_reason in ("video_too_small", "no_face")


def test_video_without_audio_gets_a_video_verdict(det: Detector, clip_dir: Path) -> None:
    r = det.detect(clip_dir / "noaudio.mp4")
    _check_result(r)
    assert "no_audio" in r.flags and r.p_audio_fake is None
    if "no_face" not in r.flags:
        assert r.verdict in ("real", "fake") and r.p_fake == r.p_video_fake


def test_no_audio_head_fused_keeps_silent_clips_on_the_multimodal_scale(det: Detector, clip_dir: Path) -> None:
    """A model trained with silent reals and fakes (no_audio_head="fused") judges a silent clip with
    the multimodal head; the default keeps the video head. Same windows, same logits otherwise."""
    import dataclasses

    base = det.detect(clip_dir / "noaudio.mp4")
    if "no_face" in base.flags:
        pytest.skip("no face found in the generated clip")
    fused_model = det.model
    old = fused_model.config
    try:
        fused_model.config = dataclasses.replace(old, no_audio_head="fused")
        r = det.detect(clip_dir / "noaudio.mp4")
    finally:
        fused_model.config = old
    _check_result(r)
    assert "no_audio" in r.flags and r.p_audio_fake is None
    assert r.p_video_fake == base.p_video_fake and r.p_fake != r.p_video_fake
    with pytest.raises(ValueError, match="no_audio_head"):
        dataclasses.replace(old, no_audio_head="audio").validate()
