"""Every real clip in ../shared/media through `macbdf prepare` (skipped when the folder is absent)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from macbdf.cli import main
from macbdf.data import cache

pytestmark = [pytest.mark.media, pytest.mark.slow]


def test_all_shared_clips_prepare(shared_media, tmp_path, capsys):
    out = tmp_path / "cache"
    rc = main(["prepare", "--dataset", "folder", "--root", str(shared_media), "--out", str(out),
               "--workers", "2", "--max-seconds", "12", "--quiet", "--json"])   # 12 s: keeps the 30 s clips short
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["failed"] == 0, (out / "failures.jsonl").read_text()
    recs = {r.video_id: r for r in cache.read_cache_manifest(out)}
    names = sorted(p.name for p in shared_media.glob("*.mp4"))
    assert sorted(recs) == names
    for name, r in recs.items():
        s = cache.read_sample(out, r)
        T = s["frames"].shape[0]
        assert T == r.num_frames and abs(T / 25.0 - r.duration) < 0.1, name
        assert s["frames"].shape[1:] == (96, 96, 3)
        assert s["logmel"].shape == (T * 4, 64) and np.isfinite(s["logmel"].astype(np.float32)).all()
        assert ("no_audio" in r.flags) == name.endswith("_noaudio.mp4"), (name, r.flags)
        if not name.endswith("_noaudio.mp4"):
            assert s["logmel"].astype(np.float32).max() > np.log(1e-6) + 5, name   # real sound, not silence
        if name.startswith(("real_retalking_face", "real_hdtf_")):
            cov = r.extra["media"]["face_coverage"]
            assert cov >= 0.9 and "no_face" not in r.flags and "face_partial" not in r.flags, (name, cov)
    # Frame rates that are not 25 come out at 25 fps with the right length.
    assert recs["real_retalking_face1.mp4"].num_frames == 153    # 135 frames at 22.13 fps = 6.1 s
    assert recs["real_dfdc_lynaeydofd.mp4"].extra["media"]["audio_rate"] == 48000
    assert recs["real_latentsync_demo1_hevc_portrait.mp4"].extra["media"]["video_codec"] == "hevc"
