"""Confidence intervals for reported figures: Student-t over seeds, percentile bootstrap over clips.

Two sources of uncertainty are reported separately because they answer different questions:

* `t_interval` -- the spread between independent runs (data seed + training seed): "how far would
  another run land?" (a t-interval of the mean of the per-seed values, ``n - 1`` degrees of freedom);
* `bootstrap_ci` / `bootstrap_mean_ci` -- the finite test set: "how much would the figure move with
  other test clips of the same kind?" (percentile bootstrap, resampling clips **within each class**
  so that every replicate has reals and fakes and the AUC is defined).

Both accept a paired reference (``ref``): the interval is then of the *difference* metric(a) -
metric(ref) on the same clips / the same seeds, the right test for "is A better than B".

The t quantile is computed here (regularised incomplete beta + bisection) so that the library does
not need scipy at run time; tests check it against ``scipy.stats.t``.

Example:
    >>> import numpy as np
    >>> from macbdf.metrics.stats import bootstrap_ci, t_interval
    >>> iv = t_interval([0.954, 0.968, 0.953])
    >>> round(iv.estimate, 4), round(iv.low, 4), round(iv.high, 4)
    (0.9583, 0.9375, 0.9792)
    >>> y = np.r_[np.zeros(20), np.ones(20)]; s = np.r_[np.linspace(0, .6, 20), np.linspace(.4, 1, 20)]
    >>> b = bootstrap_ci(y, s, n_boot=200, seed=0)
    >>> b.low < b.estimate < b.high
    True
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from macbdf.metrics.sample import accuracy, average_precision, roc_auc

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    ``method``: "t" (seed spread) or "bootstrap-percentile"; ``n``: seeds (t) or clips (bootstrap;
    the sum over the sets for a pooled one); ``n_boot``: replicates (0 for t); ``sets``: how many
    independent test sets were pooled (seeds), 1 for a single run.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int
    n_boot: int = 0
    sets: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def separated_from(self, other: "Interval") -> bool:
        """True when the two intervals do not overlap (the rule for claiming an effect)."""
        return self.low > other.high or other.low > self.high

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (e.g. 0 for a paired difference)."""
        return not (self.low <= value <= self.high)

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        """``95.8 [93.7, 97.9]`` (figures multiplied by ``scale``)."""
        f = f"{{:.{digits}f}}"
        if not math.isfinite(self.estimate):
            return "-"
        lo = f.format(self.low * scale) if math.isfinite(self.low) else "?"
        hi = f.format(self.high * scale) if math.isfinite(self.high) else "?"
        return f"{f.format(self.estimate * scale)} [{lo}, {hi}]"


# ----------------------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(x: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom.

    Example:
        >>> round(t_cdf(0.0, 3), 6), round(t_cdf(2.0, 4), 6)
        (0.5, 0.941942)
    """
    if df <= 0:
        raise ValueError("df must be > 0")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + x * x))
    return 1.0 - tail if x >= 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on `t_cdf`, ~1e-12 absolute).

    Example:
        >>> round(t_ppf(0.975, 2), 4)
        4.3027
    """
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie in (0, 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_interval(values: Sequence[float], confidence: float = 0.95,
               ref: Sequence[float] | None = None) -> Interval:
    """Mean and Student-t interval of per-run values (e.g. one test AUC per seed).

    With ``ref`` (same length, same seeds) the interval is of the paired differences values - ref.
    Fewer than two finite values give a NaN interval around the mean (no spread to measure).

    Example:
        >>> iv = t_interval([1.0, 2.0, 3.0])
        >>> round(iv.low, 4), round(iv.high, 4)     # 2 -/+ t(0.975, 2) * 1 / sqrt(3)
        (-0.4841, 4.4841)
    """
    v = np.asarray(values, dtype=float)
    if ref is not None:
        r = np.asarray(ref, dtype=float)
        if r.shape != v.shape:
            raise ValueError(f"ref has {r.shape} values, values {v.shape}")
        v = v - r
    v = v[np.isfinite(v)]
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie in (0, 1)")
    n = int(v.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), confidence, "t", 0)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), confidence, "t", n)
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, confidence, "t", n)


# ----------------------------------------------------------------------------- bootstrap
METRICS: dict[str, Metric] = {"auc": roc_auc, "ap": average_precision}


def metric_fn(metric: str | Metric, threshold: float = 0.5) -> Metric:
    """``"auc"``, ``"ap"``, ``"acc"`` (at ``threshold``) or a callable ``(y_true, y_score) -> float``."""
    if callable(metric):
        return metric
    if metric == "acc":
        return lambda y, s: accuracy(y, s, threshold)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use auc, ap, acc or a callable")
    return METRICS[metric]


def stratified_indices(y_true: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampled row indices, drawn with replacement within each class separately."""
    y = np.asarray(y_true)
    out = np.empty((n_boot, y.size), dtype=np.int64)
    col = 0
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        out[:, col:col + idx.size] = idx[rng.integers(0, idx.size, size=(n_boot, idx.size))]
        col += idx.size
    return out


def bootstrap_mean_ci(sets: Sequence[tuple[Any, ...]], metric: str | Metric = "auc", n_boot: int = 1000,
                      confidence: float = 0.95, seed: int = 0, threshold: float = 0.5) -> Interval:
    """Percentile bootstrap of the mean over independent test sets of a metric (or a paired difference).

    ``sets``: one tuple per run (seed), ``(y_true, y_score)`` or ``(y_true, y_score, y_score_ref)``;
    every replicate resamples the clips of every set (within each class) and averages the per-set
    metric, or metric(score) - metric(ref) on the same resampled clips. The estimate is the mean of the
    per-set metrics on the original clips. With one set this is the usual clip bootstrap of one run.

    Example:
        >>> y = [0, 0, 0, 1, 1, 1]
        >>> iv = bootstrap_mean_ci([(y, [.1, .2, .6, .5, .8, .9]), (y, [.1, .3, .2, .7, .8, .9])], n_boot=300)
        >>> round(iv.estimate, 4), iv.sets, iv.n
        (0.9444, 2, 12)
    """
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie in (0, 1)")
    if not sets:
        raise ValueError("no test sets given")
    fn = metric_fn(metric, threshold)
    rng = np.random.default_rng(seed)
    reps = np.zeros(n_boot)
    point = []
    n_total = 0
    for item in sets:
        y = np.asarray(item[0], dtype=float)
        s = np.asarray(item[1], dtype=float)
        ref = np.asarray(item[2], dtype=float) if len(item) > 2 and item[2] is not None else None
        keep = np.isfinite(y) & np.isfinite(s) & (np.isfinite(ref) if ref is not None else True)
        y, s = y[keep], s[keep]
        ref = ref[keep] if ref is not None else None
        n_total += int(y.size)
        point.append(fn(y, s) - (fn(y, ref) if ref is not None else 0.0))
        idx = stratified_indices(y, n_boot, rng)
        for b in range(n_boot):
            yi, si = y[idx[b]], s[idx[b]]
            reps[b] += fn(yi, si) - (fn(yi, ref[idx[b]]) if ref is not None else 0.0)
    reps /= len(sets)
    est = float(np.mean(point))
    finite = reps[np.isfinite(reps)]
    if finite.size == 0 or not math.isfinite(est):
        return Interval(est, float("nan"), float("nan"), confidence, "bootstrap-percentile", n_total, n_boot, len(sets))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(est, float(lo), float(hi), confidence, "bootstrap-percentile", n_total, n_boot, len(sets))


def bootstrap_ci(y_true: Any, y_score: Any, metric: str | Metric = "auc", n_boot: int = 1000,
                 confidence: float = 0.95, seed: int = 0, ref: Any = None, threshold: float = 0.5) -> Interval:
    """Percentile bootstrap over the clips of one test set (stratified by class), seeded.

    ``metric``: "auc", "ap", "acc" (at ``threshold``) or a callable. With ``ref`` (scores of another
    model on the same clips) the interval is of the paired difference metric(y_score) - metric(ref).

    Example:
        >>> iv = bootstrap_ci([0, 0, 1, 1, 0, 1], [.1, .4, .35, .8, .2, .9], n_boot=500, seed=1)
        >>> round(iv.estimate, 4), iv.method
        (0.8889, 'bootstrap-percentile')
    """
    return bootstrap_mean_ci([(y_true, y_score, ref)], metric, n_boot, confidence, seed, threshold)
