"""Calibration on a user's real clips and the model card shown beside every verdict."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from macbdf.calibration import (
    CALIBRATION_FILE,
    CalibrationError,
    calibrate_scores,
    clopper_pearson_upper,
    read_calibration,
    threshold_at_fpr,
    write_calibration,
)
from macbdf.modelcard import CARD_JSON, CARD_MD, build_card, read_card, update_card, write_card


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fpr", [0.0, 0.05, 0.1, 0.25])
def test_threshold_calls_at_most_the_allowed_share_fake(seed: int, fpr: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    s = rng.random(n)
    if seed % 2:
        s = np.floor(s * 10) / 10  # ties (scores below 1: a score of exactly 1 is fake at any threshold)
    t = threshold_at_fpr(s, fpr)
    called = int((s >= t).sum())
    allowed = int(np.floor(n * fpr + 1e-9))
    assert called <= allowed
    # the threshold is not needlessly high: lowering it to the next score down would exceed the share
    below = np.sort(s[s < t])[::-1]
    if below.size:
        assert int((s >= below[0]).sum()) > allowed


def test_threshold_direct_values() -> None:
    s = [0.1, 0.2, 0.3, 0.4, 0.9]
    assert threshold_at_fpr(s, 0.2) == pytest.approx((0.9 + 0.4) / 2)   # one clip may be fake: midway
    t0 = threshold_at_fpr(s, 0.0)
    assert 0.9 < t0 < 0.9 + 1e-12                                         # none may be: just above the top
    with pytest.raises(CalibrationError):
        threshold_at_fpr([], 0.05)
    with pytest.raises(CalibrationError):
        threshold_at_fpr([0.2, float("nan")], 0.05)
    with pytest.raises(CalibrationError):
        threshold_at_fpr([0.2], 1.0)


@pytest.mark.parametrize("k,n", [(0, 20), (1, 20), (3, 40), (0, 5), (5, 10)])
def test_clopper_pearson_matches_the_beta_quantile(k: int, n: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    assert clopper_pearson_upper(k, n) == pytest.approx(scipy_stats.beta.ppf(0.95, k + 1, n - k), abs=1e-6)


def test_calibration_record_and_history(tmp_path: Path) -> None:
    rec = calibrate_scores([{"path": f"c{i}.mp4", "p_fake": p} for i, p in enumerate([0.1, 0.3, 0.5, 0.7])], 0.05)
    assert rec["n_clips"] == 4 and rec["n_called_fake"] == 0 and "warning" in rec  # 4 clips cannot show 5 %
    write_calibration(tmp_path, rec)
    rec2 = calibrate_scores([{"path": "d.mp4", "p_fake": 0.2}] * 40, 0.05)
    out = write_calibration(tmp_path, rec2)
    assert len(out["history"]) == 1 and out["history"][0]["threshold"] == rec["threshold"]
    assert read_calibration(tmp_path)["n_clips"] == 40
    (tmp_path / CALIBRATION_FILE).write_text('{"threshold": NaN}')
    assert read_calibration(tmp_path) is None                  # a broken file is ignored, not trusted


def test_card_written_beside_every_checkpoint_and_stale_detection(tiny_checkpoint: Path, tmp_path: Path) -> None:
    card = read_card(tiny_checkpoint)
    assert card["present"] and not card["stale"] and len(card["weights_sha256"]) == 64
    assert (tiny_checkpoint / CARD_MD).is_file()
    assert card["trained_on"]["data"] == "random init (tests)"
    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, d)
    write_card(d, {"recipe": "synthetic-demo", "figures": {"test_auc": 0.95}})
    c = read_card(d)
    assert "NOT a detector for real footage" in c["summary"] and c["figures"]["test_auc"] == 0.95
    update_card(d, figures={"extra": 1})
    assert read_card(d)["figures"] == {"test_auc": 0.95, "extra": 1}
    with open(d / "model.safetensors", "ab") as f:  # other weights under the same card
        f.write(b"\0")
    stale = read_card(d)
    assert stale["stale"] and stale["summary"].startswith("This model card was written for other weights")
    assert not read_card(tmp_path / "nowhere")["present"]
    assert build_card({"trained_on": {"data": "x"}})["summary"].startswith("Trained on x")


def test_calibrate_command_sets_the_threshold_detect_uses(tiny_checkpoint: Path, clip_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from macbdf.cli import main
    from macbdf.detect import Detector

    d = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, d)
    reals = [str(clip_dir / n) for n in ("good.mp4", "long.mkv", "noaudio.mp4", "short.mp4")]
    rc = main(["calibrate", "--checkpoint", str(d), "--real", *reals, str(clip_dir / "notes.mp4"),
               "--fpr", "0.3", "--json", str(tmp_path / "cal.json"), "--quiet"])
    assert rc == 1                                               # notes.mp4 is not a video: reported, left out
    rec = json.loads((tmp_path / "cal.json").read_text())
    stored = read_calibration(d)
    assert stored["threshold"] == rec["threshold"] and stored["n_clips"] == 4
    assert [f["path"] for f in rec["failed"]] == [str(clip_dir / "notes.mp4")]
    scores = [c["p_fake"] for c in rec["clips"]]
    assert sum(p >= stored["threshold"] for p in scores) <= 1      # floor(4 * 0.3) = 1
    det = Detector.from_pretrained(d)
    assert det.threshold == stored["threshold"]
    assert "calibrated on 4 real clips" in det.model_info["threshold_source"]
    r = det(clip_dir / "good.mp4")
    assert r.threshold == stored["threshold"] and r.model["calibrated_on"]["n_clips"] == 4
    assert read_card(d)["calibration"]["n_clips"] == 4
    assert Detector.from_pretrained(d, threshold=0.9).threshold == 0.9   # an explicit threshold still wins
    capsys.readouterr()
    assert main(["detect", str(clip_dir / "short.mp4"), "--checkpoint", str(d)]) == 0
    out = capsys.readouterr().out
    assert "model: " in out and "calibrated on 4 real clips" in out
    # usage errors are one line, exit 2
    assert main(["calibrate", "--checkpoint", str(d), "--real", reals[0], "--fpr", "1.5"]) == 2
    assert main(["calibrate", "--checkpoint", str(tmp_path / "none"), "--real", reals[0]]) == 2
    assert main(["calibrate", "--checkpoint", str(d)]) == 2
