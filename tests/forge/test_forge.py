"""macbdf forge end to end on procedural talking heads: labels, periods, what each family changes,
determinism, resume, failures, and that `prepare` reads the output through the existing adapters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from macbdf.forge import AUDIO_FAMILIES, VIDEO_FAMILIES, forge
from macbdf.forge.render import render_clip
from macbdf.forge.sources import SegmentCache


def _info(out: Path) -> dict:
    return json.loads((out / "forge_info.json").read_text())


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        has_audio = bool(c.streams.audio)
    if not has_audio:
        return frames, None
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
    return frames, audio


def _by_method(info: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in info["clips"]:
        out.setdefault(c["method"], []).append(c)
    return out


def _real_of(info: dict, clip: dict) -> dict:
    return next(c for c in info["clips"] if c["clip_id"] == clip["real_clip_id"])


def test_labels_periods_and_splits(forged, src_dir):
    out, rep = forged
    info = _info(out)
    clips = info["clips"]
    assert info["identity_splits"] == json.loads((src_dir / "splits.json").read_text())
    methods = {c["method"] for c in clips}
    # Every single family appears (dan is alone in test: no donors there, others cover them).
    for fam in VIDEO_FAMILIES + AUDIO_FAMILIES:
        assert f"forge_{fam}" in methods or any(m.startswith("forge_") and fam in m for m in methods), fam
    for c in clips:
        dur = c["n_frames"] / 25
        assert c["video_label"] == int(c["video_family"] is not None)
        assert c["audio_label"] == int(c["audio_family"] is not None)
        if c["video_family"] is None:
            assert c["video_periods"] == []
        if c["audio_family"] is None:
            assert c["audio_periods"] == []
        for a, b in c["video_periods"] + c["audio_periods"]:
            assert 0 <= a < b <= dur + 1e-6
        if c["video_family"] in ("self_blend", "face_swap"):
            assert c["video_periods"] == [[0.0, dur]]
        if c["video_family"] == "mouth_retime":
            span = c["video_params"].get("span")
            assert c["video_periods"] == ([[span[0] / 25, span[1] / 25]] if span else [[0.0, dur]])
        if c["audio_family"] == "audio_splice":
            (a, b), = c["audio_periods"]
            assert 0.5 - 1e-6 <= b - a <= 1.5 + 1e-6 or b - a <= dur / 2 + 1e-6
            assert [a, b] == [c["audio_params"]["start_s"], c["audio_params"]["end_s"]]
        elif c["audio_family"]:
            assert c["audio_periods"] == [[0.0, dur]]
            assert c["has_audio"]
        if c["audio_family"] == "av_offset":
            assert 0.2 <= abs(c["audio_params"]["offset_s"]) <= 1.0
        # Donors never cross splits and are other people (audio_same_speaker: the same person).
        for d in (c["video_donor"], c["audio_donor"]):
            if d:
                assert info["identity_splits"][d["identity"]] == c["split"]
                if c["audio_family"] == "audio_same_speaker" and d is c["audio_donor"]:
                    assert d["identity"] == c["identity"]
                else:
                    assert d["identity"] != c["identity"]
    # The silent source: only the real copy and video families, all without audio.
    eve = [c for c in clips if c["identity"] == "eve"]
    assert eve and all(not c["has_audio"] and c["audio_family"] is None for c in eve)
    assert any(c["video_family"] for c in eve)
    # cat and dan are alone in their splits: no donor families for them.
    for who in ("cat", "dan"):
        own = [c for c in clips if c["identity"] == who]
        assert own and not any(c["video_donor"] or c["audio_donor"] for c in own)
    # Layout: LAV-DF metadata agrees with forge_info.
    meta = json.loads((out / "metadata.json").read_text())
    assert [m["file"] for m in meta] == [c["file"] for c in clips]
    for m, c in zip(meta, clips):
        assert m["split"] == {"train": "train", "val": "dev", "test": "test"}[c["split"]]
        assert m["visual_fake_periods"] == c["video_periods"] and m["audio_fake_periods"] == c["audio_periods"]
        assert m["identity"] == c["identity"] and m["method"] == c["method"]
        assert m["audio_recorded"] == (c["audio_family"] in ("audio_swap", "audio_same_speaker", "av_offset"))
        assert (out / m["file"]).is_file()


def test_no_face_clip_in_failures(forged):
    out, rep = forged
    lines = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["source"] for f in lines] == ["noface.mp4"]
    assert "no face" in lines[0]["reason"]
    assert rep.failures == lines
    assert not any(c["src_id"] == "noface.mp4" for c in _info(out)["clips"])


def test_same_encode_for_reals_and_fakes(forged):
    out, _ = forged
    info = _info(out)
    facts = set()
    for c in info["clips"]:
        with av.open(str(out / c["file"])) as f:
            v = f.streams.video[0]
            a = f.streams.audio[0] if f.streams.audio else None
            assert bool(a) == c["has_audio"]
            facts.add((v.codec_context.name, v.width, v.height, float(v.average_rate), v.frames,
                       a.codec_context.name if a else None, a.rate if a else None))
    # One codec / size / fps / frame count (all segments are 2 s here) for every clip, real or fake.
    assert {f[:5] for f in facts} == {("h264", 96, 96, 25.0, 50)}
    assert {f[5:] for f in facts} == {("aac", 16000), (None, None)}


def test_audio_swap_changes_audio_keeps_video(forged):
    out, _ = forged
    info = _info(out)
    fake = _by_method(info)["forge_audio_swap"][0]
    real = _real_of(info, fake)
    vf, af = _decode(out / fake["file"])
    vr, ar = _decode(out / real["file"])
    assert np.array_equal(vf, vr)               # same crops, same encoder settings: same pixels
    cache = SegmentCache(out / ".forge_cache")
    start = real["start_frame"] * 640
    own = cache.audio(real["src_id"])[start:start + real["n_frames"] * 640]
    d = fake["audio_donor"]
    donor = cache.audio(d["src_id"])[d["start_sample"]:d["start_sample"] + len(own)]
    n = min(len(af), len(own), len(donor))

    def corr(x, y):
        return float(np.corrcoef(x[:n], y[:n])[0, 1])
    # The decoded fake audio follows the donor's waveform, not the speaker's own (PyAV drops the
    # AAC priming samples, so decoded sample 0 is written sample 0).
    assert corr(af, donor) > 0.9 and abs(corr(af, own)) < 0.3


def _lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """Lag (samples) maximising the cross-correlation of y against x: y[t] ~ x[t - lag]."""
    n = len(x) + len(y)
    f = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    vals = np.r_[f[: max_lag + 1], f[-max_lag:]]
    return int(lags[np.argmax(vals)])


def test_av_offset_shifts_by_the_stated_amount(forged):
    out, _ = forged
    info = _info(out)
    cache = SegmentCache(out / ".forge_cache")
    fakes = _by_method(info)["forge_av_offset"]
    assert fakes
    for fake in fakes:
        _, af = _decode(out / fake["file"])
        # Against the clip's whole own audio: the fake segment is that audio, `offset_s` later.
        clip = cache.audio(fake["src_id"])
        seg_start = fake["start_frame"] * 640
        lag = _lag(clip, af, len(clip) - 1)
        got = lag + seg_start
        want = round(fake["audio_params"]["offset_s"] * 16000)
        L = len(clip)
        assert min(abs(got - want), abs(got - want + L), abs(got - want - L)) <= 16, (got, want)


def test_self_blend_changes_pixels_only_inside_mask(forged):
    out, _ = forged
    info = _info(out)
    cache = SegmentCache(out / ".forge_cache")
    fake = _by_method(info)["forge_self_blend"][0]
    frames, _, masks = render_clip(fake, cache)
    orig = cache.frames(fake["src_id"], fake["segment"])
    outside = masks == 0
    assert np.array_equal(frames[outside], orig[outside])
    inside = masks > 0.5
    assert inside.mean() > 0.05                                  # a face-sized region
    diff = np.abs(frames.astype(int) - orig.astype(int)).max(-1)
    assert (diff[inside] > 2).mean() > 0.3                        # and it really changed there
    # face_swap / mouth_retime keep outside pixels too.
    for m in ("forge_face_swap", "forge_mouth_retime"):
        c = _by_method(info)[m][0]
        fr, _, mk = render_clip(c, cache)
        o = cache.frames(c["src_id"], c["segment"])
        assert np.array_equal(fr[mk == 0], o[mk == 0]) and (mk > 0).any()


def test_determinism_workers_and_resume(forged, src_dir, tmp_path, forge_kw):
    """Same command with workers=2 -> byte-identical files; deleting clips and rerunning restores them."""
    out1, rep1 = forged
    out2 = tmp_path / "again"
    kw = forge_kw
    rep2 = forge(src_dir, out2, manifest=src_dir / "MANIFEST.csv", layout="lavdf", workers=2, **kw)
    files1 = sorted(p.relative_to(out1).as_posix() for p in out1.rglob("*") if p.is_file() and ".forge_cache" not in p.parts)
    files2 = sorted(p.relative_to(out2).as_posix() for p in out2.rglob("*") if p.is_file() and ".forge_cache" not in p.parts)
    assert files1 == files2
    for f in files1:
        assert (out1 / f).read_bytes() == (out2 / f).read_bytes(), f
    assert not list((out2 / ".forge_cache").glob("*.npz"))          # arrays deleted by default
    # Resume: remove two clips; a rerun rewrites exactly those (re-decoding what they need).
    gone = [c["file"] for c in _info(out2)["clips"][:2]]
    saved = {f: (out2 / f).read_bytes() for f in gone}
    for f in gone:
        (out2 / f).unlink()
    rep3 = forge(src_dir, out2, manifest=src_dir / "MANIFEST.csv", layout="lavdf", workers=1, **kw)
    assert rep3.written == 2 and rep3.resumed == rep2.written - 2
    for f in gone:
        assert (out2 / f).read_bytes() == saved[f]
    # Other settings into the same folder: refused.
    from macbdf.forge import ForgeError

    with pytest.raises(ForgeError, match="other settings"):
        forge(src_dir, out2, manifest=src_dir / "MANIFEST.csv", layout="lavdf", **dict(kw, seed=4))


def test_prepare_reads_lavdf_output(forged, tmp_path):
    from macbdf.cli import main
    from macbdf.data.cache import read_cache_manifest, read_sample

    out, _ = forged
    info = _info(out)
    by_file = {c["file"]: c for c in info["clips"]}
    cache = tmp_path / "cache"
    assert main(["prepare", "--dataset", "lavdf", "--root", str(out), "--out", str(cache), "--quiet"]) == 0
    recs = read_cache_manifest(cache)
    assert len(recs) == len(by_file)
    for r in recs:
        c = by_file[r.video_id]
        assert r.identity == c["identity"]
        assert r.split == c["split"]
        assert (r.video_label, r.audio_label) == (c["video_label"], c["audio_label"])
        assert r.method == c["method"]
        assert ("no_audio" in r.flags) == (not c["has_audio"])
        sample = read_sample(cache, r)
        flv, fla = sample["frame_label_video"], sample["frame_label_audio"]
        for lab, periods in ((flv, c["video_periods"]), (fla, c["audio_periods"])):
            want = np.zeros(len(lab), np.uint8)
            for a, b in periods:
                want[int(a * 25):int(b * 25)] = 1
            assert np.array_equal(np.asarray(lab), want), (c["method"], periods)


def test_fakeavceleb_layout_read_by_adapter(src_dir, tmp_path, forge_kw):
    from macbdf.data.adapters.fakeavceleb import load_fakeavceleb

    out = tmp_path / "favc"
    kw = dict(forge_kw, fakes_per_segment=2)
    forge(src_dir, out, manifest=src_dir / "MANIFEST.csv", layout="fakeavceleb", workers=1,
          identities="ann,bob,cat,eve", **kw)
    info = _info(out)
    recs = load_fakeavceleb(out)       # the adapter's own split (prepare carves val from train when none)
    assert len(recs) == len(info["clips"])
    by_name = {c["clip_id"]: c for c in info["clips"]}
    for r in recs:
        c = by_name[Path(r.video_id).stem]
        assert r.identity == c["identity"] and r.split == c["split"] and r.method == c["method"]
        assert (r.video_label, r.audio_label) == (c["video_label"], c["audio_label"])
        assert r.video_id.split("/")[0] == {"RVRA": "RealVideo-RealAudio", "RVFA": "RealVideo-FakeAudio",
                                             "FVRA": "FakeVideo-RealAudio", "FVFA": "FakeVideo-FakeAudio"}[r.category]
    assert {c["identity"] for c in info["clips"]} == {"ann", "bob", "cat", "eve"}
    assert {r.split for r in recs} == {"train", "val"}


def test_folder_input_each_file_its_own_identity(src_dir, tmp_path, forge_kw):
    d = tmp_path / "clips"
    d.mkdir()
    for name in ("bob.mp4", "cat.mp4"):
        shutil.copy(src_dir / name, d / name)
    out = tmp_path / "o"
    rep = forge(d, out, layout="lavdf", workers=1, **dict(forge_kw, split_file=None, split_ratios=(1, 0, 0), fakes_per_segment=2))
    info = _info(out)
    assert info["identity_splits"] == {"bob": "train", "cat": "train"}
    assert {c["identity"] for c in info["clips"]} == {"bob", "cat"}
    assert rep.failures == [] and rep.written == len(info["clips"]) == 2 * 3
