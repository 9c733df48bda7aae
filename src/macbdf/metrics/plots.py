"""Figures of the paper's evaluation, drawn with matplotlib's Agg backend (no display needed).

* `plot_roc` -- ROC curves of several models on one plot, AUC in the legend.
* `plot_training_curves` -- Fig. 6 style: loss and accuracy per epoch for several runs (e.g.
  with and without OM-Pareto), read from the trainer's ``metrics.jsonl``.
* `plot_latent_space` -- Fig. 4 style: PCA and t-SNE of the fused and per-modality embeddings,
  coloured by category (or label).
* `plot_score_timeline` -- per-frame audio/video fake probability over time with the known fake
  periods shaded.
* `plot_sweep` -- Fig. 5 style: metrics against one swept setting (multi-scale depth).

Each function writes one image atomically (temp file + ``os.replace``) and returns its path.

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = plot_roc({"model": ([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6])}, os.path.join(d, "roc.png"))
    >>> os.path.exists(p)
    True
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from macbdf.metrics.sample import ArrayLike, roc_auc, roc_curve


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> Path:
    from macbdf.filemode import atomic_write

    path = Path(path)
    try:
        with atomic_write(path, prefix=f".{path.stem}.", suffix=path.suffix) as tmp:  # the suffix names the format
            fig.savefig(tmp, dpi=120, bbox_inches="tight")
    finally:
        _pyplot().close(fig)
    return path


def plot_roc(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    path: str | os.PathLike,
    title: str = "ROC",
) -> Path:
    """ROC of each ``name -> (labels, scores)`` on one plot; undefined curves are listed, not drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        auc = roc_auc(y, s)
        if fpr.size == 0:
            ax.plot([], [], label=f"{name} (undefined: {getattr(auc, 'reason', 'n/a')})")
            continue
        ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {auc:.3f})")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def read_metrics_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a trainer ``metrics.jsonl``; unreadable lines are skipped (a run may be live)."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except OSError:
        return []
    return out


# Key spellings tried in order when the caller does not name the series.
_LOSS_KEYS = ("train/loss", "train_loss", "loss", "train/total", "total")
_ACC_KEYS = ("val/acc", "val_acc", "acc", "train/acc", "train_acc")


def epoch_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, mean value per epoch) of ``key`` over the records that carry it.

    Records need an ``epoch`` field; when several records share an epoch (per-step logs)
    their values are averaged, so both per-step and per-epoch logs give one point per epoch.
    A fractional ``epoch`` (step / steps per epoch) is floored to its epoch.
    """
    acc: dict[int, list[float]] = {}
    # The trainer logs per-step ("train") and per-epoch ("epoch") records under the same key:
    # when epoch summaries exist, use only those so steps are not counted twice.
    if any(r.get("kind") == "epoch" and key in r for r in records):
        records = [r for r in records if r.get("kind") == "epoch"]
    for r in records:
        v, e = r.get(key), r.get("epoch")
        if v is None or e is None:
            continue
        try:
            v = float(v)
            e = int(math.floor(float(e)))
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            acc.setdefault(e, []).append(v)
    ep = np.array(sorted(acc), dtype=np.int64)
    return ep, np.array([np.mean(acc[e]) for e in ep], dtype=np.float64)


def _pick_key(records: Sequence[Mapping[str, Any]], wanted: str | None, options: Sequence[str]) -> str | None:
    if wanted:
        return wanted
    present = set().union(*(r.keys() for r in records)) if records else set()
    return next((k for k in options if k in present), None)


def plot_training_curves(
    runs: Mapping[str, str | os.PathLike | Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    loss_key: str | None = None,
    acc_key: str | None = None,
    title: str = "training curves",
) -> Path:
    """Fig. 6 style: loss (left) and accuracy (right) per epoch, one line per run.

    ``runs`` maps a label (e.g. "OM-Pareto", "plain sum") to a ``metrics.jsonl`` path or to
    its already-read records. Keys are auto-detected among common spellings when not given.
    """
    plt = _pyplot()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    for name, src in runs.items():
        recs = read_metrics_jsonl(src) if isinstance(src, (str, os.PathLike)) else list(src)
        lk = _pick_key(recs, loss_key, _LOSS_KEYS)
        ak = _pick_key(recs, acc_key, _ACC_KEYS)
        if lk:
            e, v = epoch_series(recs, lk)
            ax_l.plot(e, v, marker="o", ms=3, label=f"{name} ({lk})")
        if ak:
            e, v = epoch_series(recs, ak)
            ax_a.plot(e, v, marker="o", ms=3, label=f"{name} ({ak})")
    for ax, lab in ((ax_l, "loss"), (ax_a, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def embed_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) by PCA or t-SNE (sklearn); tiny inputs are padded gracefully."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 3 or x.shape[1] < 2:
        out = np.zeros((len(x), 2))
        out[:, : min(2, x.shape[1])] = x[:, :2]
        return out
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
        # OpenMP threads on a busy machine make small t-SNE runs 100x slower; one thread is
        # plenty for the few thousand points of an evaluation plot.
        with threadpool_limits(1 if len(x) < 5000 else None):
            return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    raise ValueError(f"unknown method {method!r}; use pca or tsne")


def plot_latent_space(
    embeddings: Mapping[str, np.ndarray],
    groups: Sequence[str],
    path: str | os.PathLike,
    methods: Sequence[str] = ("pca", "tsne"),
    seed: int = 0,
    title: str = "latent space",
) -> Path:
    """Fig. 4 style grid: one row per embedding (e.g. fused/audio/video), one column per method.

    ``groups`` colours the points (category RVRA/RVFA/FVRA/FVFA, or "real"/"fake").
    """
    plt = _pyplot()
    names = list(embeddings)
    g = np.asarray([str(x) for x in groups], dtype=object)
    uniq = sorted(set(g.tolist()))
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(names), len(methods), figsize=(4 * len(methods), 3.6 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, m in enumerate(methods):
            ax = axes[i][j]
            xy = embed_2d(embeddings[name], m, seed)
            for k, u in enumerate(uniq):
                sel = g == u
                ax.scatter(xy[sel, 0], xy[sel, 1], s=10, alpha=0.75, color=cmap(k % 10), label=u)
            ax.set_title(f"{name} - {m.upper()}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(title)
    return _save(fig, path)


def plot_score_timeline(
    fps: float,
    scores: Mapping[str, ArrayLike],
    path: str | os.PathLike,
    fake_periods: Sequence[Sequence[float]] = (),
    threshold: float | None = 0.5,
    title: str = "fake probability over time",
) -> Path:
    """Per-frame probabilities (``{"audio": ..., "video": ...}``) against time; known fake
    periods shaded in red, the decision threshold dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    for a, b in fake_periods:
        ax.axvspan(a, b, color="red", alpha=0.15, lw=0)
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        ax.plot(np.arange(s.size) / fps, s, lw=1.4, label=name)
    if threshold is not None:
        ax.axhline(threshold, ls="--", c="grey", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    ax.set_title(title)
    if scores:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_sweep(
    xs: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    xlabel: str = "setting",
    ylabel: str = "%",
    title: str = "sweep",
) -> Path:
    """Fig. 5 style: metrics (fractions, drawn in %) against one swept setting, e.g. depth."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, ys in series.items():
        ys = np.asarray([np.nan if y is None else 100.0 * float(y) for y in ys])
        ax.plot(list(xs), ys, marker="o", label=name)
    ax.set_xticks(list(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _step_series(records: Sequence[Mapping[str, Any]], key: str) -> dict[int, float]:
    """{step: value} of ``key`` (the last record per step wins; epoch summaries are skipped)."""
    out: dict[int, float] = {}
    for r in records:
        if r.get("kind") == "epoch" or key not in r or r.get("step") is None:
            continue
        try:
            v = float(r[key])
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[int(r["step"])] = v
    return out


def mean_band(series: Sequence[Mapping[int, float]], confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray, np.ndarray]:
    """(steps, mean, low, high) over runs at the steps every run logged; the band is the t-interval
    of the mean (equal to the mean when there is a single run).

    Example:
        >>> x, m, lo, hi = mean_band([{10: 1.0, 20: 0.5}, {10: 3.0, 20: 0.5, 30: 0.1}])
        >>> x.tolist(), m.tolist(), float(hi[1] - lo[1])
        ([10, 20], [2.0, 0.5], 0.0)
    """
    from macbdf.metrics.stats import t_interval

    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    mean, lo, hi = [], [], []
    for st in steps:
        vals = [s[st] for s in series]
        iv = t_interval(vals, confidence)
        mean.append(iv.estimate)
        lo.append(iv.low if len(vals) > 1 else iv.estimate)
        hi.append(iv.high if len(vals) > 1 else iv.estimate)
    return np.asarray(steps, dtype=np.int64), np.asarray(mean), np.asarray(lo), np.asarray(hi)


def plot_curves_with_bands(
    runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
    path: str | os.PathLike,
    keys: Sequence[str] = ("train/loss", "val/auc"),
    title: str = "training curves over seeds",
) -> Path:
    """Fig. 6-7 with uncertainty: one panel per key, per label the mean over its runs (seeds) against
    the step and a shaded 95 % t band. ``runs`` maps a label to a list of metrics.jsonl record lists."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        for label, rec_lists in runs.items():
            x, m, lo, hi = mean_band([_step_series(r, key) for r in rec_lists])
            if x.size == 0:
                continue
            line = ax.plot(x, m, marker="o" if x.size < 30 else None, ms=3, label=f"{label} (n={len(rec_lists)})")[0]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        if "auc" in key or "acc" in key:
            ax.set_ylim(0.0, 1.02)   # a t band of few seeds can pass 1; the metric cannot
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_sweep_ci(
    xs: Sequence[float],
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | os.PathLike,
    xlabel: str = "setting",
    title: str = "sweep",
) -> Path:
    """Fig. 5 with uncertainty: per series, interval dicts (``estimate``, ``low``, ``high``; fractions,
    drawn in %) against the swept setting, as points with error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, ivs in series.items():
        est = np.array([100.0 * float(d["estimate"]) for d in ivs])
        lo = np.array([100.0 * float(d["low"]) if d.get("low") is not None and math.isfinite(d["low"]) else np.nan
                       for d in ivs])
        hi = np.array([100.0 * float(d["high"]) if d.get("high") is not None and math.isfinite(d["high"]) else np.nan
                       for d in ivs])
        err = np.vstack([np.nan_to_num(est - lo), np.nan_to_num(hi - est)])
        ax.errorbar(list(xs), est, yerr=err, marker="o", capsize=4, label=name)
    ax.set_xticks(list(xs))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
