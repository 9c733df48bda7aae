"""Confidence intervals (metrics/stats.py) against scipy and direct computations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from macbdf.metrics import roc_auc
from macbdf.metrics.stats import bootstrap_ci, bootstrap_mean_ci, stratified_indices, t_cdf, t_interval, t_ppf

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 30, 200])
def test_t_quantiles_and_cdf_match_scipy(df):
    for q in (0.6, 0.9, 0.95, 0.975, 0.995, 0.025):
        assert math.isclose(t_ppf(q, df), float(stats.t.ppf(q, df)), rel_tol=1e-9, abs_tol=1e-9)
    for x in (-3.0, -0.5, 0.0, 0.7, 2.5, 12.0):
        assert math.isclose(t_cdf(x, df), float(stats.t.cdf(x, df)), abs_tol=1e-12)


@pytest.mark.parametrize("values", [[0.954, 0.968, 0.953], [0.86, 0.81, 0.9, 0.88, 0.79], [1.0, 2.0]])
def test_t_interval_matches_scipy(values):
    iv = t_interval(values, 0.95)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert math.isclose(iv.low, lo, abs_tol=1e-10) and math.isclose(iv.high, hi, abs_tol=1e-10)
    assert iv.n == len(values) and iv.method == "t"


def test_paired_t_interval_is_the_interval_of_the_differences():
    a, b = [0.95, 0.97, 0.95], [0.86, 0.85, 0.88]
    iv = t_interval(a, ref=b)
    d = np.subtract(a, b)
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert math.isclose(iv.estimate, d.mean()) and math.isclose(iv.low, lo) and math.isclose(iv.high, hi)
    assert iv.excludes(0.0)


def test_one_value_has_no_spread():
    iv = t_interval([0.9])
    assert iv.estimate == 0.9 and math.isnan(iv.low) and math.isnan(iv.high)


def _scores(n_real, n_fake, shift, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_real), np.ones(n_fake)]
    s = np.r_[rng.normal(0, 1, n_real), rng.normal(shift, 1, n_fake)]
    return y, s


def _delong_se(y, s):
    """DeLong's standard error of the AUC, computed directly from the placement values."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


def test_bootstrap_auc_interval_width_matches_delong():
    y, s = _scores(24, 72, 1.5, 0)          # the demo's test split: 24 real, 72 fake
    iv = bootstrap_ci(y, s, "auc", n_boot=3000, seed=0)
    assert iv.estimate == roc_auc(y, s) and iv.low < iv.estimate < iv.high
    width = iv.high - iv.low
    expect = 2 * 1.959964 * _delong_se(y, s)
    assert abs(width - expect) / expect < 0.15


def test_bootstrap_of_a_mean_matches_scipy_percentile_bootstrap():
    y, s = _scores(60, 60, 0.0, 1)
    mean_fn = lambda yy, ss: float(np.mean(ss))           # noqa: E731
    iv = bootstrap_ci(y, s, mean_fn, n_boot=4000, seed=0)
    # scipy resamples without strata; per class resampling narrows the interval a little only when the
    # class means differ, and here they do not
    ref = stats.bootstrap((s,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert abs(iv.low - ref.low) < 0.05 and abs(iv.high - ref.high) < 0.05


def test_stratified_resampling_keeps_class_counts_and_is_seeded():
    y = np.r_[np.zeros(5), np.ones(9)]
    idx = stratified_indices(y, 50, np.random.default_rng(3))
    assert idx.shape == (50, 14)
    assert (y[idx].sum(1) == 9).all()
    again = stratified_indices(y, 50, np.random.default_rng(3))
    assert (idx == again).all()
    a = bootstrap_ci(*_scores(10, 10, 1, 2), n_boot=200, seed=7)
    b = bootstrap_ci(*_scores(10, 10, 1, 2), n_boot=200, seed=7)
    assert a == b


def test_paired_bootstrap_difference_and_pooled_sets():
    y, s = _scores(30, 30, 2.0, 4)
    worse = s + np.random.default_rng(5).normal(0, 2.0, s.size)
    d = bootstrap_ci(y, s, "auc", n_boot=1000, seed=0, ref=worse)
    assert math.isclose(d.estimate, roc_auc(y, s) - roc_auc(y, worse))
    assert d.low > 0                        # the noisy copy is clearly worse on the same clips
    # a paired difference of a model with itself is exactly zero in every replicate
    z = bootstrap_ci(y, s, "auc", n_boot=100, ref=s)
    assert z.estimate == z.low == z.high == 0.0
    # pooling: the estimate is the mean of the per-set AUCs
    sets = [_scores(20, 20, 1.0, k) for k in range(3)]
    pooled = bootstrap_mean_ci(sets, "auc", n_boot=500, seed=0)
    assert math.isclose(pooled.estimate, np.mean([roc_auc(a, b) for a, b in sets]))
    assert pooled.sets == 3 and pooled.n == 120
    single = bootstrap_ci(*sets[0], n_boot=500, seed=0)
    assert pooled.high - pooled.low < single.high - single.low   # averaging three sets narrows it


def test_acc_and_ap_metrics():
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.2, 0.6, 0.7, 0.9, 0.4, 0.1])
    iv = bootstrap_ci(y, s, "acc", n_boot=200, threshold=0.5)
    assert math.isclose(iv.estimate, 4 / 6)
    iv = bootstrap_ci(y, s, "ap", n_boot=200)
    assert 0 <= iv.low <= iv.estimate <= iv.high <= 1
    with pytest.raises(ValueError):
        bootstrap_ci(y, s, "f1")


def test_separation_rule():
    a = t_interval([0.95, 0.96, 0.955])
    b = t_interval([0.85, 0.86, 0.855])
    c = t_interval([0.94, 0.97, 0.90])
    assert a.separated_from(b) and not a.separated_from(c)
    assert a.fmt() == f"{100 * a.estimate:.1f} [{100 * a.low:.1f}, {100 * a.high:.1f}]"
