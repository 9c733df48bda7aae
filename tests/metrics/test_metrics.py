"""macbdf.metrics against sklearn and hand-computed values; degenerate inputs; plots."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from macbdf import metrics as M
from macbdf.metrics import plots


def _rand(seed: int, n: int = 200, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.5 * y + rng.normal(0.25, 0.3, n), 0, 1)
    if ties:
        s = np.round(s, 1)  # many tied scores
    return y, s


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False), (3, True)])
def test_sample_metrics_match_sklearn(seed: int, ties: bool) -> None:
    y, s = _rand(seed, ties=ties)
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert M.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert M.accuracy(y, s) == pytest.approx(skm.accuracy_score(y, s >= 0.5))
    assert M.accuracy(y, s, 0.3) == pytest.approx(skm.accuracy_score(y, s >= 0.3))
    assert M.balanced_accuracy(y, s) == pytest.approx(skm.balanced_accuracy_score(y, s >= 0.5))
    fpr, tpr, thr = M.roc_curve(y, s)
    sf, st, sth = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sf)
    np.testing.assert_allclose(tpr, st)
    np.testing.assert_allclose(thr[1:], sth[1:])


def test_hand_values() -> None:
    # 2 real (0.1, 0.4), 2 fake (0.35, 0.8): of 4 pairs, 3 ranked right -> AUC 0.75
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie between a real and a fake counts one half: (1 + 1 + 0.5 + 1) / 4
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == 0.875
    # AP: ranking 0.8(F) 0.6(R) 0.4(F) 0.1(R): P@1 = 1, P@3 = 2/3 -> (1 + 2/3) / 2
    assert M.average_precision([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.6]) == pytest.approx(5 / 6)


def test_eer_hand_values() -> None:
    # perfectly separated -> 0; perfectly inverted -> 1
    assert M.eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == 0.0
    assert M.eer([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])[0] == 1.0
    # 4 real, 4 fake, one of each on the wrong side: FPR = FNR = 1/4 at a threshold in (0.6, 0.7)
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.85, 0.9]
    e, thr = M.eer(y, s)
    assert e == pytest.approx(0.25)
    assert 0.6 <= thr <= 0.7
    # interpolated crossing: EER lies between the FPR and FNR of the bracketing ROC points
    y, s = _rand(5)
    e, _ = M.eer(y, s)
    fpr, tpr, _ = skm.roc_curve(y, s)
    fnr = 1 - tpr
    i = np.nanargmin(np.abs(fnr - fpr))
    assert abs(e - (fpr[i] + fnr[i]) / 2) < 0.03


def test_best_threshold_maximises_accuracy_on_validation() -> None:
    y, s = _rand(7)
    thr = M.best_threshold(y, s)
    # exhaustive: every distinct decision is "s >= one of the scores" or "nothing is fake"
    best = max([M.accuracy(y, s, t) for t in np.unique(s)] + [M.accuracy(y, s, 2.0)])
    assert M.accuracy(y, s, thr) == pytest.approx(best)
    # scores shifted by +0.3: the best threshold follows, 0.5 does not
    ys, ss = np.array([0, 0, 1, 1]), np.array([0.6, 0.7, 0.9, 0.95])
    t = M.best_threshold(ys, ss)
    assert 0.7 < t < 0.9 and M.accuracy(ys, ss, t) == 1.0 and M.accuracy(ys, ss) == 0.5
    tb = M.best_threshold(ys, ss, criterion="balanced_acc")
    assert M.balanced_accuracy(ys, ss, tb) == 1.0
    with pytest.raises(ValueError):
        M.best_threshold(ys, ss, criterion="f1")


@pytest.mark.parametrize(
    "y,s,needle",
    [
        ([], [], "no samples"),
        ([1, 1, 1], [0.2, 0.5, 0.9], "only one class"),
        ([0, 0], [0.2, 0.5], "only one class"),
        ([0, 1], [0.2, float("nan")], "non-finite"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
        ([0, 1], [0.1], "differ in length"),
    ],
)
def test_degenerate_inputs_give_nan_with_reason(y: list, s: list, needle: str) -> None:
    for fn in (M.roc_auc, lambda a, b: M.eer(a, b)[0], M.balanced_accuracy):
        v = fn(y, s)
        assert math.isnan(v) and needle in M.reason_of(v)
    fpr, tpr, thr = M.roc_curve(y, s)
    assert fpr.size == 0
    m = M.binary_metrics(y, s)
    assert math.isnan(m["auc"]) and needle in M.reason_of(m["auc"])
    notes: dict = {}
    out = M.jsonable(m, notes)
    json.dumps(out, allow_nan=False)  # strict JSON
    assert out["auc"] is None and needle in notes["auc"]


def test_one_class_accuracy_and_ap_still_defined() -> None:
    assert M.accuracy([1, 1, 1], [0.2, 0.6, 0.9]) == pytest.approx(2 / 3)
    assert M.average_precision([1, 1], [0.2, 0.9]) == 1.0
    assert "no fake" in M.reason_of(M.average_precision([0, 0], [0.2, 0.9]))


def test_grouped_per_category_protocol() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.7, 0.9, 0.3, 0.8, 0.95])
    cats = ["RVRA", "RVRA", "RVRA", "FVRA", "RVFA", "FVFA", "FVFA"]
    g = M.grouped_metrics(y, s, cats, order=M.CATEGORY_ORDER)
    assert list(g) == ["RVRA", "RVFA", "FVRA", "FVFA"]
    assert g["RVRA"]["acc"] == pytest.approx(2 / 3)
    assert "real-only" in M.reason_of(g["RVRA"]["auc"])
    assert g["RVFA"]["acc"] == 0.0
    # RVFA (0.3) vs the three reals (0.1, 0.2, 0.7): ranked above 2 of 3
    assert g["RVFA"]["auc"] == pytest.approx(2 / 3)
    assert g["FVFA"]["auc"] == 1.0 and g["FVFA"]["n"] == 2
    # method groups: None is skipped, unknown names sorted after the given order
    gm = M.grouped_metrics(y, s, ["real", "real", "real", "fsgan", None, "wav2lip", "wav2lip"], order=["real"])
    assert list(gm) == ["real", "fsgan", "wav2lip"]
    # no reals at all: AUC undefined with a reason, ACC defined
    g2 = M.grouped_metrics([1, 1], [0.9, 0.2], ["FVFA", "FVFA"])
    assert g2["FVFA"]["acc"] == 0.5 and "no real" in M.reason_of(g2["FVFA"]["auc"])
    # a mixed group (unknown category) is scored on its own
    g3 = M.group_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], np.array([1, 1, 1, 1], bool))
    assert g3["auc"] == 1.0


def test_modality_and_frame_metrics() -> None:
    m = M.modality_metrics(
        {"audio": [0, 1, 1, float("nan")], "video": [1, 0, 0, 1]},
        {"audio": [0.1, 0.9, 0.7, 0.5], "video": [0.2, 0.1, 0.3, 0.9]},
    )
    assert m["audio"]["n"] == 3 and m["audio"]["auc"] == 1.0
    assert m["video"]["auc"] == pytest.approx(0.75)  # fakes 0.2, 0.9 vs reals 0.1, 0.3: 3 of 4 pairs
    fl = [np.array([0, 0, 1, 1]), np.array([0, 0])]
    fs = [np.array([0.1, 0.3, 0.8, 0.6]), np.array([0.2, 0.4])]
    assert M.frame_level_auc(fl, fs) == pytest.approx(skm.roc_auc_score(np.r_[fl[0], fl[1]], np.r_[fs[0], fs[1]]))
    assert math.isnan(M.frame_level_auc([], []))
    assert "only one class" in M.reason_of(M.frame_level_auc([np.zeros(4)], [np.ones(4)]))


def test_sigmoid_stable() -> None:
    x = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0])
    p = M.sigmoid(x)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[1:4], 1 / (1 + np.exp(-x[1:4])))
    assert p[0] == 0.0 and p[-1] == 1.0


def test_plots_write_images(tmp_path) -> None:
    y, s = _rand(0)
    p = plots.plot_roc({"a": (y, s), "b": (y, 1 - s), "empty": ([1, 1], [0.1, 0.2])}, tmp_path / "roc.png")
    assert p.stat().st_size > 1000
    recs_a = [{"epoch": e, "step": e * 10 + k, "train/loss": 1.0 / (e + 1) + k * 0.01} for e in range(4) for k in range(3)]
    recs_a += [{"epoch": e, "val/acc": 0.5 + 0.1 * e} for e in range(4)]
    run_b = tmp_path / "b.jsonl"
    run_b.write_text("\n".join(json.dumps({"epoch": e, "train_loss": 2.0 / (e + 1), "val_acc": 0.4 + 0.1 * e}) for e in range(4)) + "\n{broken\n")
    assert plots.epoch_series(recs_a, "train/loss")[0].tolist() == [0, 1, 2, 3]
    assert plots.epoch_series(recs_a, "train/loss")[1][0] == pytest.approx(1.01)
    p = plots.plot_training_curves({"OM-Pareto": recs_a, "plain sum": run_b}, tmp_path / "curves.png")
    assert p.exists()
    rng = np.random.default_rng(0)
    emb = {"fused": rng.normal(size=(30, 8)), "audio": rng.normal(size=(30, 8))}
    p = plots.plot_latent_space(emb, ["RVRA", "FVFA"] * 15, tmp_path / "latent.png")
    assert p.exists()
    p = plots.plot_score_timeline(25.0, {"audio": rng.random(50), "video": rng.random(50)}, tmp_path / "t.png", [[0.4, 1.0]])
    assert p.exists()
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
