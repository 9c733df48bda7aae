"""Shortcut audit of a prepared cache: can real and fake be told apart without looking at the content?

FakeAVCeleb and AV-Deepfake1M fakes start with a short leading silence that alone separates them from
the reals (AVH-Align, CVPR 2025); re-encoded fakes can differ in bitrate, codec or resolution; face
tracks can fail more often on fakes. A supervised detector trained on such data can learn the
shortcut instead of the forgery. `audit_cache` measures it on any prepared cache:

* per clip metadata features: ``leading_silence_s``, ``trailing_silence_s``, ``loudness_db`` (from
  the record, written by `prepare`, else computed from the cached Eq. 1 log-mel with
  `macbdf.media.audio.silence_profile`), ``duration``, ``src_fps``, ``width``, ``height``,
  ``bit_rate``, ``face_coverage``, ``audio_rate``, ``audio_channels``, and the ``no_face`` /
  ``face_partial`` / ``no_audio`` / ``silent_audio`` / ``low_light`` flags; the ``video_codec``
  as a category (one-hot in the classifier);
* per feature: real / fake means and standard deviations, the standardised difference (Cohen's d,
  pooled SD) and the single-feature AUC (fake scored by the feature; 0.5 = no signal, below 0.5 =
  fakes lower);
* a metadata-only classifier (standardised logistic regression and small gradient-boosted trees)
  with group-wise cross-validation: GroupKFold over ``identity`` (over ``video_id`` where a record has
  none), pooled out-of-fold AUC. Above `WARN_AUC` the metadata alone predicts the label: a warning.

Example:
    >>> report = audit_cache("cache/synth")                          # doctest: +SKIP
    >>> report["classifier"]["best_auc"], report["warning"]          # doctest: +SKIP
    (0.55, None)
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from macbdf.config import PreprocessConfig
from macbdf.data.manifest import SampleRecord
from macbdf.metrics.sample import roc_auc

__all__ = ["WARN_AUC", "NUMERIC_FEATURES", "FLAG_FEATURES", "clip_features", "feature_gaps",
           "grouped_cv_auc", "audit_records", "audit_cache", "format_audit"]

WARN_AUC = 0.6
NUMERIC_FEATURES = ("leading_silence_s", "trailing_silence_s", "loudness_db", "duration", "src_fps", "width",
                    "height", "bit_rate", "face_coverage", "audio_rate", "audio_channels")
FLAG_FEATURES = ("no_face", "face_partial", "no_audio", "silent_audio", "low_light")
_SILENCE_KEYS = ("leading_silence_s", "trailing_silence_s", "loudness_db")


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def clip_features(rec: SampleRecord, cache_dir: str | os.PathLike | None = None,
                  cfg: PreprocessConfig | None = None) -> dict[str, Any]:
    """The audit's features of one cached record (NaN where unknown; ``video_codec`` a string).

    Silence and loudness come from the record (``extra.media``, written by `prepare`); for caches
    made before those fields existed they are computed from the cached log-mel.
    """
    media = dict((rec.extra or {}).get("media") or {})
    if cache_dir is not None and any(k not in media for k in _SILENCE_KEYS):
        from macbdf.media.audio import silence_profile
        from macbdf.data.cache import CacheError, read_sample

        try:
            media.update(silence_profile(read_sample(cache_dir, rec)["logmel"], cfg or PreprocessConfig()))
        except CacheError:
            pass
    out: dict[str, Any] = {k: _num(media.get(k)) for k in NUMERIC_FEATURES}
    out["duration"] = _num(rec.duration)
    if math.isnan(out["src_fps"]):
        out["src_fps"] = _num(rec.fps)
    flags = set(rec.flags or [])
    for f in FLAG_FEATURES:
        out[f] = float(f in flags)
    out["video_codec"] = str(media.get("video_codec") or "unknown")
    return out


def feature_gaps(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Real / fake means, SDs, standardised difference (fake - real) / pooled SD, single-feature AUC.

    Example:
        >>> g = feature_gaps(np.array([0.0, 0.1, 0.5, 0.6]), np.array([0, 0, 1, 1]))
        >>> g["auc"], round(g["std_diff"], 2)
        (1.0, 7.07)
    """
    ok = ~np.isnan(x)
    x, y = x[ok], y[ok]
    r, f = x[y == 0], x[y == 1]
    out: dict[str, Any] = {"n": int(ok.sum()), "missing": int((~ok).sum())}
    if r.size == 0 or f.size == 0:
        return {**out, "real_mean": None, "fake_mean": None, "real_sd": None, "fake_sd": None,
                "std_diff": None, "auc": None}
    rsd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    fsd = float(f.std(ddof=1)) if f.size > 1 else 0.0
    dof = max(r.size + f.size - 2, 1)
    pooled = math.sqrt(((r.size - 1) * rsd ** 2 + (f.size - 1) * fsd ** 2) / dof)
    diff = float(f.mean() - r.mean())
    std_diff = diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {**out, "real_mean": float(r.mean()), "fake_mean": float(f.mean()), "real_sd": rsd, "fake_sd": fsd,
            "std_diff": std_diff, "auc": float(roc_auc(y, x))}


def _design(rows: Sequence[dict[str, Any]], names: Sequence[str], codecs: Sequence[str]) -> np.ndarray:
    cols = [[r[n] for r in rows] for n in names]
    cols += [[float(r["video_codec"] == c) for r in rows] for c in codecs]
    return np.asarray(cols, dtype=np.float64).T.reshape(len(rows), len(names) + len(codecs))


def grouped_cv_auc(X: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = 5,
                   seed: int = 0, permutations: int = 0) -> dict[str, Any]:
    """Pooled out-of-fold AUC of two metadata classifiers under GroupKFold (no group in two folds).

    Missing values are imputed with the training fold's medians; the logistic regression sees
    standardised features. Returns ``{"logreg": auc, "gbdt": auc, "best_auc": max, "folds": k}``;
    with ``permutations`` > 0 also ``null_auc_95``: the 95th percentile of ``best_auc`` with the
    labels permuted over the clips (what chance gives on data this small, best of two models).

    Example:
        >>> X = np.r_[np.zeros((20, 1)), np.ones((20, 1))]; y = np.r_[np.zeros(20), np.ones(20)]
        >>> grouped_cv_auc(X, y, [str(i) for i in range(40)], folds=2)["best_auc"]
        1.0
    """
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y, dtype=int)
    g = np.asarray(groups)
    k = min(int(folds), len(set(g.tolist())))
    if k < 2 or len(set(y.tolist())) < 2 or X.shape[1] == 0:
        return {"logreg": None, "gbdt": None, "best_auc": None, "folds": k,
                "note": "needs >= 2 groups, both classes and >= 1 varying feature"}
    models = {
        "logreg": lambda: make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                        LogisticRegression(C=1.0, max_iter=2000)),
        "gbdt": lambda: make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                      GradientBoostingClassifier(n_estimators=100, max_depth=2, learning_rate=0.1,
                                                                 subsample=0.8, random_state=seed)),
    }
    # GroupKFold is deterministic; shuffle the group order with the seed so --seed changes the folds
    rng = np.random.default_rng(seed)
    uniq = np.array(sorted(set(g.tolist())))
    perm = dict(zip(uniq.tolist(), rng.permutation(len(uniq)).tolist()))
    gid = np.array([perm[v] for v in g.tolist()])
    splits = list(GroupKFold(n_splits=k).split(X, y, gid))

    def cv(labels: np.ndarray) -> dict[str, float]:
        res = {}
        for name, make in models.items():
            pred = np.full(len(labels), np.nan)
            for tr, te in splits:
                if len(set(labels[tr].tolist())) < 2:
                    pred[te] = float(labels[tr].mean())   # one class in training: predict its prevalence
                    continue
                pred[te] = make().fit(X[tr], labels[tr]).predict_proba(X[te])[:, 1]
            res[name] = float(roc_auc(labels, pred))
        return res

    out: dict[str, Any] = {"folds": k, **cv(y)}
    out["best_auc"] = max(out["logreg"], out["gbdt"])
    if permutations > 0:
        # the labels shuffled over the clips, the same group-wise folds: the null distribution
        null = []
        for _ in range(int(permutations)):
            yp = rng.permutation(y)
            r = cv(yp)
            null.append(max(r["logreg"], r["gbdt"]))
        out["null_auc_95"] = float(np.percentile(null, 95)) if null else None
        out["permutations"] = len(null)
    return out


def audit_records(records: Sequence[SampleRecord], cache_dir: str | os.PathLike | None = None,
                  cfg: PreprocessConfig | None = None, folds: int = 5, seed: int = 0,
                  permutations: int = 10) -> dict[str, Any]:
    """The audit of these records (labelled ones only); see the module docstring for the fields."""
    recs = [r for r in records if r.label in (0, 1)]
    rows = [clip_features(r, cache_dir, cfg) for r in recs]
    y = np.array([int(r.label) for r in recs], dtype=int)
    use_identity = bool(recs) and all(r.identity for r in recs)
    groups = [str(r.identity) if use_identity else r.video_id for r in recs]
    names = list(NUMERIC_FEATURES) + list(FLAG_FEATURES)
    gaps = {n: feature_gaps(np.array([row[n] for row in rows], dtype=np.float64), y) for n in names}
    codecs = sorted({row["video_codec"] for row in rows})
    by_codec = {c: {"n_real": int(sum(1 for row, t in zip(rows, y) if row["video_codec"] == c and t == 0)),
                    "n_fake": int(sum(1 for row, t in zip(rows, y) if row["video_codec"] == c and t == 1))}
                for c in codecs}
    # the classifier sees the features that vary in this cache
    varying = [n for n in names if _varies(np.array([row[n] for row in rows], dtype=np.float64))]
    codec_cols = codecs if len(codecs) > 1 else []
    X = _design(rows, varying, codec_cols) if rows else np.zeros((0, 0))
    clf = grouped_cv_auc(X, y, groups, folds=folds, seed=seed, permutations=permutations)
    clf["features"] = varying + [f"video_codec={c}" for c in codec_cols]
    shortcuts = sorted((n for n, g in gaps.items() if g["auc"] is not None and max(g["auc"], 1 - g["auc"]) > WARN_AUC),
                       key=lambda n: -abs(gaps[n]["auc"] - 0.5))
    best = clf.get("best_auc")
    warning = None
    if best is not None and best > WARN_AUC:
        null = clf.get("null_auc_95")
        chance = "" if null is None else (f"; chance level (permuted labels, 95th percentile) {null:.3f}"
                                          + (": within chance" if best <= null else ""))
        warning = (f"WARNING: metadata alone predicts real/fake with a group-wise cross-validated AUC of {best:.3f} "
                   f"(> {WARN_AUC}{chance}); strongest single features: {', '.join(shortcuts[:4]) or 'none alone'}")
    return {"n": len(recs), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
            "groups": "identity" if use_identity else "video_id", "n_groups": len(set(groups)),
            "features": gaps, "video_codec": by_codec, "classifier": clf, "single_feature_shortcuts": shortcuts,
            "warning": warning}


def _varies(x: np.ndarray) -> bool:
    v = x[np.isfinite(x)]
    return v.size > 1 and float(v.max()) != float(v.min())


def audit_cache(cache_dir: str | os.PathLike, split: str | None = None, folds: int = 5,
                seed: int = 0, permutations: int = 10) -> dict[str, Any]:
    """`audit_records` over a prepared cache (one split, or all records); adds the cache's settings.

    Example:
        >>> audit_cache("cache/fakeavceleb")["features"]["leading_silence_s"]["auc"]   # doctest: +SKIP
        0.97
    """
    from macbdf.data.cache import load_cache_config, read_cache_manifest

    cfg = load_cache_config(cache_dir) or PreprocessConfig()
    recs = [r for r in read_cache_manifest(cache_dir) if r.file and (split is None or r.split == split)]
    report = audit_records(recs, cache_dir, cfg, folds=folds, seed=seed, permutations=permutations)
    report.update(cache=str(Path(cache_dir)), split=split or "all", trim_leading_silence=bool(cfg.trim_leading_silence))
    return report


def _f(x: Any, nd: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def format_audit(report: dict[str, Any]) -> str:
    """A readable table of an audit report (the warning line last)."""
    lines = [f"shortcut audit of {report.get('cache', '?')} (split {report.get('split', 'all')}; "
             f"trim_leading_silence={report.get('trim_leading_silence', False)}): {report['n']} clips, "
             f"{report['n_real']} real / {report['n_fake']} fake, {report['n_groups']} {report['groups']} groups",
             f"{'feature':<20}{'real mean':>11}{'fake mean':>11}{'std diff':>10}{'AUC':>7}{'missing':>9}"]
    for name, g in report["features"].items():
        lines.append(f"{name:<20}{_f(g['real_mean']):>11}{_f(g['fake_mean']):>11}{_f(g['std_diff'], 2):>10}"
                     f"{_f(g['auc']):>7}{g['missing']:>9}")
    codecs = ", ".join(f"{c}: {v['n_real']} real / {v['n_fake']} fake" for c, v in report["video_codec"].items())
    lines.append(f"video codec: {codecs or '-'}")
    c = report["classifier"]
    lines.append(f"metadata-only classifier ({c['folds']}-fold GroupKFold over {report['groups']}): "
                 f"logistic regression AUC {_f(c.get('logreg'))}, gradient boosting AUC {_f(c.get('gbdt'))}"
                 + (f"; chance level {_f(c.get('null_auc_95'))} (95th pct of {c.get('permutations')} label permutations)"
                    if c.get("null_auc_95") is not None else ""))
    lines.append(report["warning"] or f"no shortcut above AUC {WARN_AUC} found in the metadata")
    return "\n".join(lines)
