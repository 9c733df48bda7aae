"""The content is what the labels say: lips follow the words in real clips and not in lip-sync
fakes; each manipulation changes the signal, and a partial fake changes only its periods."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from macbdf.synth.clip import render_clip
from macbdf.synth.encode import write_mp4
from macbdf.synth.face import face_regions, region_mask
from macbdf.synth.plan import ClipSpec

SEED = 0


def _spec(identity: int, base: int, category: str = "RVRA", n: int = 75, **kw) -> ClipSpec:
    return ClipSpec(index=0, file="x.mp4", identity=identity, split="train", category=category, num_frames=n,
                    base_seed=base, clip_seed=base + 1000, **kw)


def _mouth_area(frames: np.ndarray) -> np.ndarray:
    """Pixels of the dark-red mouth interior in the lower middle of the frame, per frame."""
    s = frames.shape[1]
    r = frames[:, int(0.45 * s) : int(0.9 * s), int(0.25 * s) : int(0.75 * s)].astype(np.float32)
    tot = r.sum(-1) + 1.0
    return ((r[..., 0] / tot > 0.45) & (r[..., 1] / tot < 0.25) & (tot < 330)).sum((1, 2))


def _envelope(audio: np.ndarray, n: int) -> np.ndarray:
    return np.sqrt((audio[: n * 640].reshape(n, 640) ** 2).mean(1))


def test_mouth_follows_audio_in_real_clips_not_in_lipsync_fakes(tmp_path: Path, decode):
    real_r, fake_r = [], []
    for k, ident in enumerate((3, 17, 42, 5)):
        base = 500 + k
        for fam, out in ((None, real_r), ("lipsync", fake_r)):
            spec = _spec(ident, base, "FVRA" if fam else "RVRA", video_family=fam,
                         video_periods=[[0.0, 3.0]] if fam else [], params={"lip_artefact": 0.0} if fam else {})
            clip = render_clip(spec, SEED, 160)
            path = write_mp4(tmp_path / f"{k}_{fam}.mp4", clip.frames, clip.audio, crf=26)
            frames, audio, _ = decode(path)  # measured on the decoded file, as a detector sees it
            n = len(frames)
            out.append(np.corrcoef(_mouth_area(frames), _envelope(audio, n))[0, 1])
    print("lip-sync r real", np.round(real_r, 2), "fake", np.round(fake_r, 2))
    assert np.mean(real_r) > 0.5, real_r
    assert np.mean(fake_r) < np.mean(real_r) - 0.3, (real_r, fake_r)


def test_lipsync_without_artefact_leaves_no_trace_outside_the_mouth():
    real = render_clip(_spec(5, 7), SEED, 128)
    fake = render_clip(_spec(5, 7, "FVRA", video_family="lipsync", video_periods=[[0.0, 3.0]],
                             params={"lip_artefact": 0.0}), SEED, 128)
    np.testing.assert_array_equal(real.audio, fake.audio)
    diff = np.abs(real.frames.astype(int) - fake.frames.astype(int)).max(-1)  # (T, S, S)
    assert diff.any()
    s = 128
    ys, xs = np.nonzero(diff.max(0))
    assert ys.min() > 0.45 * s  # only the lower face changed (the mouth)


def test_face_swap_changes_the_inner_face_only():
    spec = _spec(8, 11, "FVRA", video_family="faceswap", video_periods=[[0.0, 3.0]], donor=30, params={"strength": 0.5})
    real = render_clip(_spec(8, 11), SEED, 160)
    fake = render_clip(spec, SEED, 160)
    d = np.abs(real.frames.astype(np.float32) - fake.frames.astype(np.float32)).mean(-1)  # (T, S, S)
    from macbdf.synth.clip import _make_scene

    sc = _make_scene(spec, SEED, 160)
    inside, outside = [], []
    for i in range(0, len(d), 5):
        reg = face_regions(sc.ident, sc.poses[i], 160)["inner"]
        m = region_mask((reg[0], reg[1], reg[2] * 0.8, reg[3] * 0.8), 160, sc.poses[i].roll, 0) > 0.5
        far = region_mask((reg[0], reg[1], reg[2] * 1.6, reg[3] * 1.6), 160, sc.poses[i].roll, 0) == 0
        inside.append(d[i][m].mean())
        outside.append(d[i][far].max())
    assert np.mean(inside) > 8.0, np.mean(inside)
    assert max(outside) == 0.0


def test_partial_video_fake_touches_only_its_frames():
    periods = [[0.8, 1.6]]
    real = render_clip(_spec(12, 21, n=60), SEED, 96)
    fake = render_clip(_spec(12, 21, "FVRA", n=60, video_family="gan", video_periods=periods,
                             params={"strength": 0.6, "gan_kinds": ["upsample", "flicker"]}), SEED, 96)
    changed = np.abs(real.frames.astype(int) - fake.frames.astype(int)).reshape(60, -1).max(1) > 0
    expected = np.zeros(60, bool)
    expected[20:40] = True
    np.testing.assert_array_equal(changed, expected)


@pytest.mark.parametrize("family,params,other", [
    ("tts", {"keep_timing": False, "vocoder": 0.2}, None),
    ("splice", {"channel_mismatch": 0.0}, 33),
    ("audioswap", {}, None),
    ("voiceconv", {"conversion_quality": 0.5, "vocoder": 0.5}, 40),
])
def test_partial_audio_fake_touches_only_its_period(family, params, other):
    a, b = 1.0, 1.8
    real = render_clip(_spec(14, 31, n=75), SEED, 64)
    fake = render_clip(_spec(14, 31, "RVFA", n=75, audio_family=family, audio_periods=[[a, b]], params=params,
                             other=other), SEED, 64)
    np.testing.assert_array_equal(real.frames, fake.frames)
    d = (real.audio - fake.audio).astype(np.float64) ** 2
    t = np.arange(len(d)) / 16000
    inside = d[(t >= a) & (t < b)].mean()
    # Reverberation may carry the change a little past the end of the period.
    outside = d[(t < a - 0.05) | (t > b + 0.45)].mean()
    assert inside > 1e-4, inside
    assert outside < 0.01 * inside, (outside, inside)


def _f0_track(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Autocorrelation pitch (Hz) of the voiced 40 ms frames."""
    out = []
    n = int(0.04 * sr)
    energy = np.array([np.mean(audio[i : i + n] ** 2) for i in range(0, len(audio) - n, n)])
    thr = 0.3 * np.percentile(energy, 90)
    for j, i in enumerate(range(0, len(audio) - n, n)):
        if energy[j] < thr:
            continue
        x = audio[i : i + n] - audio[i : i + n].mean()
        ac = np.correlate(x, x, "full")[n - 1 :]
        lo, hi = sr // 400, sr // 70
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            out.append(sr / lag)
    return np.array(out)


def test_flat_prosody_tts_is_monotone():
    real = render_clip(_spec(2, 41, n=100), SEED, 64)
    tts = render_clip(_spec(2, 41, "RVFA", n=100, audio_family="tts", audio_periods=[[0.0, 4.0]],
                            params={"keep_timing": True, "vocoder": 0.0}), SEED, 64)
    f_real, f_tts = _f0_track(real.audio), _f0_track(tts.audio)
    assert len(f_real) > 10 and len(f_tts) > 10
    assert np.std(np.log(f_tts)) < 0.6 * np.std(np.log(f_real)), (np.std(np.log(f_real)), np.std(np.log(f_tts)))
