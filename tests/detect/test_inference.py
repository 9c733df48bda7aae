"""One windowed inference (issue 13, item 1): `Detector` and `evaluate` give a clip the same score,
through `macbdf.inference` (windows, padding, forward, sigmoid, aggregation)."""
from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.parametrize("name", ["macbdf.inference", "macbdf.data.windows"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_short_audio_pads_with_silence_everywhere() -> None:
    """Audio rows missing under real frames are log(eps) silence (evaluate once repeated the last row)."""
    from macbdf.config import PreprocessConfig
    from macbdf.data.windows import pad_window, silence_logmel

    pre = PreprocessConfig()
    mpf = pre.mel_per_frame
    logmel = np.full((3 * mpf - 2, 8), 1.5, np.float16)      # 2 rows short of 3 frames
    w = pad_window(np.full((3, 4, 4, 3), 7, np.uint8), logmel, 5, mpf, silence_logmel(pre))
    assert (w.audio[: 3 * mpf - 2] == 1.5).all() and (w.audio[3 * mpf - 2:] == np.float32(np.log(pre.log_eps))).all()
    assert (w.video[3:] == 0).all() and w.mask.tolist() == [True] * 3 + [False] * 2


def test_evaluate_and_detector_agree(clip_writer, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The same clips, prepared into a cache and scored by `evaluate`, and decoded by the `Detector`:
    the same sample probabilities. Not bit for bit: the cache stores the log-mel as float16 (its
    format) while the detector scores the float32 it computed, which moves a probability by ~1e-5;
    a padding or aggregation rule of their own would move it by far more."""
    from macbdf.config import PreprocessConfig
    from macbdf.data.prepare_cache import prepare_cache
    from macbdf.detect import Detector
    from macbdf_train.evaluate import evaluate

    d = tmp_path / "clips"
    d.mkdir()
    rows = []
    for i, seconds in enumerate((1.6, 3.0)):   # one window batch, and several windows with a short last one
        clip_writer(d / f"c{i}.mp4", seconds=seconds, seed=10 + i)
        rows.append({"path": f"c{i}.mp4", "video_id": f"c{i}", "split": "test", "label": i % 2})
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "cache"
    info = prepare_cache("manifest", d / "manifest.jsonl", out, cfg=PreprocessConfig(face_size=64), progress=False)
    assert info["prepared"] == 2 and info["failed"] == 0
    for agg in ("mean", "max"):
        rep = evaluate(tiny_checkpoint, out, split="test", threshold_from=0.5, progress=False, keep_scores=True,
                       aggregation=agg, batch_size=3)
        det = Detector.from_pretrained(tiny_checkpoint, aggregation=agg, batch_windows=2)
        sc = rep["scores"]
        for vid, p, pa, pv in zip(sc["video_id"], sc["p"], sc["p_audio"], sc["p_video"]):
            r = det(d / f"{vid}.mp4")
            assert r.ok and r.verdict != "abstain", r
            assert r.p_fake == pytest.approx(p, abs=1e-4)
            assert r.p_audio_fake == pytest.approx(pa, abs=1e-4)
            assert r.p_video_fake == pytest.approx(pv, abs=1e-6)      # the frames are the same bytes
