"""Unit checks of forge's building blocks against direct computations."""
from __future__ import annotations

import numpy as np
import pytest

from macbdf.forge.audio_fakes import (fit_length, normalize_loudness, pyworld, shifted, speech_activity, splice,
                                      time_stretch, voice_change)
from macbdf.forge.plan import fake_method, merge_periods
from macbdf.forge.sources import assign_splits, plan_segments
from macbdf.media.landmarks import face_hull_mask, mouth_box, similarity_align

SR = 16000


def _voiced(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A harmonic 'vowel' (10 harmonics, 1/k amplitudes) at f0 Hz."""
    t = np.arange(int(SR * seconds)) / SR
    return (0.1 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 11))).astype(np.float32)


def _median_f0(x: np.ndarray) -> float:
    pw = pyworld()
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, SR, frame_period=5.0)
    f0 = pw.stonemask(xd, f0, t, SR)
    return float(np.median(f0[f0 > 0]))


def test_voice_change_shifts_f0_by_the_stated_semitones():
    x = _voiced(140.0)
    y = voice_change(x, SR, 4.0, 1.08)
    assert y.shape == x.shape and y.dtype == np.float32
    ratio = _median_f0(y) / _median_f0(x)
    assert abs(12 * np.log2(ratio) - 4.0) < 0.3


def test_time_stretch_keeps_pitch_and_length():
    # A tone that glides 120 -> 240 Hz over 2 s; played 1.25x faster, the first second ends higher.
    t = np.arange(2 * SR) / SR
    f = 120 + 60 * t
    x = (0.2 * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32)
    y = time_stretch(x, SR, 1.25, SR)
    assert len(y) == SR
    pw = pyworld()
    f0, _ = pw.dio(y.astype(np.float64), SR, frame_period=5.0)
    f0x, _ = pw.dio(x[:SR].astype(np.float64), SR, frame_period=5.0)
    # At 0.8 s into the output we hear source time 1.0 s: 120 + 60 * 1.0 = 180 Hz (vs 168 unstretched).
    k = int(0.8 / 0.005)
    assert abs(np.median(f0[k - 5:k + 5]) - 180) < 6
    assert abs(np.median(f0x[k - 5:k + 5]) - 168) < 6


def test_splice_and_shift_and_fit():
    x = np.arange(1000, dtype=np.float32)
    ins = -np.ones(1000, np.float32)
    y = splice(x, ins, 200, 500, fade=10)
    assert np.array_equal(y[:200], x[:200]) and np.array_equal(y[500:], x[500:])
    assert np.all(y[210:490] == -1)
    assert np.array_equal(shifted(x, 100, 50, 30), x[70:120])
    assert np.array_equal(shifted(x, 10, 50, 30), np.r_[x[980:], x[:30]])     # wraps around the clip
    assert np.array_equal(fit_length(x, 300), x[:300]) and len(fit_length(x[:7], 30)) == 30


def test_loudness_and_activity():
    x = _voiced(200.0)
    quiet, loud = normalize_loudness(0.01 * x, SR), normalize_loudness(0.5 * x, SR)
    assert np.allclose(quiet, loud, atol=1e-4)       # level-independent
    rms = np.sqrt(np.mean(loud.astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms) + 23) < 0.1
    gap = np.r_[x, np.zeros(SR, np.float32)]
    assert abs(speech_activity(gap, SR) - 0.5) < 0.03 and speech_activity(np.zeros(SR), SR) == 0.0


def test_segments_splits_and_names():
    assert plan_segments(250, 100, 40, None) == [(0, 100), (100, 100)]
    assert plan_segments(30, 100, 40, None) == []
    idents = [f"p{i}" for i in range(20)]
    s = assign_splits(idents, (0.6, 0.15, 0.25), seed=1)
    assert sorted(s) == sorted(idents)
    counts = {k: list(s.values()).count(k) for k in ("train", "val", "test")}
    assert counts == {"train": 12, "val": 3, "test": 5}
    assert assign_splits(idents, (0.6, 0.15, 0.25), seed=1) == s != assign_splits(idents, (0.6, 0.15, 0.25), seed=2)
    g = assign_splits(idents, (0.6, 0.15, 0.25), seed=1, groups={i: "silent" for i in idents[:4]})
    assert {g[i] for i in idents[:4]} == {"train", "val", "test"}      # each group split on its own
    assert merge_periods([[2.0, 3.0], [0.0, 1.0], [0.5, 2.0]]) == [[0.0, 3.0]]
    assert fake_method("self_blend", None) == "forge_self_blend"


def test_landmark_geometry_helpers():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (68, 2)).astype(np.float32)
    a = np.deg2rad(12)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = (1.3 * src @ r.T + [5, -7]).astype(np.float32)
    m = similarity_align(src, dst)
    assert np.allclose(src @ m[:, :2].T + m[:, 2], dst, atol=1e-3)
    pts = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], np.float32)
    hard = face_hull_mask(pts, (64, 64))
    soft = face_hull_mask(pts, (64, 64), blur=3, grow=-4)
    assert hard.sum() == 41 * 41 and (soft[hard == 0] == 0).all() and (soft > 0).sum() < hard.sum()
    lm = np.zeros((68, 2), np.float32)
    lm[48:68] = [30, 40]
    lm[48], lm[54] = [20, 40], [40, 40]
    x0, y0, x1, y1 = mouth_box(lm, pad=0.5)
    assert (x0, x1) == (10.0, 50.0) and y1 - y0 == 40.0


def test_landmarks_on_a_real_face(realcorpus):
    """dlib's 68 points on a corpus face: inside the face box, eyes above nose above mouth."""
    from macbdf.config import PreprocessConfig
    from macbdf.media.landmarks import LandmarkDetector
    from macbdf.media.prepare import FaceCropStream, default_face_detector

    cfg = PreprocessConfig(face_size=160, face_margin=0.4)
    frames = [(c, ok) for _, c, ok in FaceCropStream(str(realcorpus / "clips/real_styletalk_KristiNoem.mp4"), cfg,
                                                     default_face_detector(), 10)]
    crop, ok = frames[-1]
    assert ok
    side = 160 / 1.8
    o = (160 - side) / 2
    lm = LandmarkDetector().detect(crop, (o, o, o + side, o + side))
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    assert (lm > 0.1 * 160).all() and (lm < 0.9 * 160).all()
    eyes, nose, mouth = lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean()
    assert eyes < nose < mouth
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()          # subject's right eye is on the image's left


def test_landmarks_unavailable_message(monkeypatch):
    import importlib.util

    from macbdf.media import landmarks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "face_recognition_models" else real(n, *a))
    with pytest.raises(landmarks.LandmarksUnavailable, match="pip install face-recognition-models"):
        landmarks.predictor_path()


def _summaries(spec: dict[str, tuple[str, bool, int]]):
    """Sources + extraction summaries without media: {src_id: (identity, speech, n_segments)}."""
    from macbdf.forge.sources import Source

    sources, summ = [], {}
    for sid, (ident, speech, nseg) in sorted(spec.items()):
        sources.append(Source(src_id=sid, path=sid, identity=ident, speech=speech, split="train"))
        summ[sid] = {"src_id": sid, "n_frames": 100 * nseg, "has_audio": speech, "speech": speech,
                     "segments": [{"j": j, "start": 100 * j, "n": 100, "coverage": 1.0, "speech": speech}
                                  for j in range(nseg)]}
    return sources, summ


def test_plan_balances_families_and_silence():
    from macbdf.forge.plan import FAMILIES, make_plan

    spec = {f"s{i}.mp4": (f"p{i % 8}", i % 4 != 0, 3) for i in range(24)}
    sources, summ = _summaries(spec)
    clips, failures = make_plan(sources, summ, seed=0, fakes_per_segment=3, silent_fraction=0.2)
    assert failures == [] and len(clips) == 24 * 3 * 4
    fams = [c.method.removeprefix("forge_") for c in clips if c.is_fake]
    single = {f: sum(1 for m in fams if m == f) for f in FAMILIES if f != "fvfa"}
    combo = sum(1 for m in fams if "-" in m)
    # Least-used-first: every family within a few clips of the others.
    assert max(single.values()) - min(single.values()) <= 6 and abs(combo - np.mean(list(single.values()))) <= 6
    # No audio track: as common among fakes as among reals (so it says nothing about the label).
    reals = [c for c in clips if not c.is_fake]
    fakes = [c for c in clips if c.is_fake]
    share_r = sum(not c.has_audio for c in reals) / len(reals)
    share_f = sum(not c.has_audio for c in fakes) / len(fakes)
    assert share_r > 0.25 and abs(share_r - share_f) <= 1 / len(reals)
    assert all(c.has_audio for c in fakes if c.audio_family)
    # Silent sources: real copy + video families only, never audio.
    for c in clips:
        if not spec[c.src_id][1]:
            assert not c.has_audio and c.audio_family is None
    # Same inputs, same plan.
    again, _ = make_plan(sources, summ, seed=0, fakes_per_segment=3, silent_fraction=0.2)
    assert [c.to_dict() for c in again] == [c.to_dict() for c in clips]
