"""Evaluation runner: score a prepared cache with a checkpoint and compute the paper's metrics.

Why one file of ~570 lines: one job, `macbdf evaluate`, in order: scoring a split (through
`macbdf.inference`), the paper's metric groups, submission files, and the JSON / text report.

Protocol (what `macbdf evaluate` reports):

* Every sample of the split is scored on its **whole length**: the clip is cut into
  consecutive windows of the model's ``num_frames`` (the last one padded and masked as in
  training: black frames, log-mel silence ``log(log_eps)``), the windows are scored in batches,
  and the sample's probability is the mean of its window probabilities weighted by each window's
  number of real frames. Windowing, padding, forward, sigmoid and aggregation are
  `macbdf.inference`'s, the `Detector`'s own code, so evaluation and detection agree.
  Per-frame scores are the frame heads' sigmoids laid end to end; embeddings are averaged over
  windows the same way.
* Sample level: ACC at 0.5 and at a tuned threshold, AUC, AP, EER. The tuned threshold is
  the accuracy-maximising threshold on the cache's validation split
  (``threshold_from="val"``, the paper's "best threshold on validation"), or the one stored
  in the checkpoint (``"checkpoint"``, chosen on the training data's validation split -- the
  right choice for cross-dataset runs), or a number.
* Per category (RVRA/RVFA/FVRA/FVFA) and per manipulation method: see
  `macbdf.metrics.grouped` (a fake group's AUC is measured against all reals of the split).
* Per modality: the unimodal heads (``audio_logit``/``video_logit``) against each
  modality's own label.
* Frame level: pooled frame AUC per modality and for "any" (max of the two scores vs. the
  union of the two frame labels).
* Temporal localisation, when the split has fake periods: proposals from the per-frame
  "any" score (`macbdf.metrics.segments_from_scores`), AP@0.5/0.75/0.95 and AR@N against the
  records' ``fake_periods`` (protocol in `macbdf.metrics.localization`).
* Generalisation: methods of the evaluated split that never occur in the training split of
  the same cache are "unseen" (synth's held-out families); their pooled metrics against the
  reals are reported under ``unseen_methods``. A checkpoint trained on another cache is
  flagged ``cross_dataset`` (Table 3 protocol: use ``split="all"`` on the target).

Example:
    >>> from macbdf_train.evaluate import evaluate
    >>> report = evaluate("runs/demo/checkpoint", "cache/synth", split="test")  # doctest: +SKIP
    >>> report["overall"]["auc"], report["per_category"]["RVFA"]["acc"]          # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from macbdf import metrics as M
from macbdf.data import cache
from macbdf.data.manifest import SampleRecord
from macbdf.inference import AGGREGATIONS, Window, WindowedInference, WindowScores, aggregate, aggregate_probs

SPLITS = ("train", "val", "test", "all")


class EvaluationError(RuntimeError):
    """A one-line, user-facing reason why an evaluation cannot run at all."""


# ----------------------------------------------------------------------------- scoring
@dataclass
class ScoredSplit:
    """Per-sample model outputs for one split (numpy, in manifest order of the scored samples)."""

    records: list[SampleRecord] = field(default_factory=list)
    p: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_audio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_video: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_audio: list[np.ndarray] = field(default_factory=list)
    frame_video: list[np.ndarray] = field(default_factory=list)
    frame_label_audio: list[np.ndarray] = field(default_factory=list)
    frame_label_video: list[np.ndarray] = field(default_factory=list)
    emb: dict[str, np.ndarray] = field(default_factory=dict)
    fps: list[float] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def labels(self, key: str = "label") -> np.ndarray:
        """Label array (NaN where unknown) of ``label``/``video_label``/``audio_label``."""
        return np.array(
            [float(getattr(r, key)) if getattr(r, key) is not None else np.nan for r in self.records]
        )


def _select(records: Sequence[SampleRecord], split: str) -> list[SampleRecord]:
    rs = [r for r in records if r.file]
    return rs if split == "all" else [r for r in rs if r.split == split]


def load_cache_records(cache_dir: str | os.PathLike) -> list[SampleRecord]:
    """Manifest records of a prepared cache (merged or unmerged `prepare --shard` manifests);
    `EvaluationError` when it is not one."""
    if not cache.manifest_files(cache_dir):
        raise EvaluationError(f"not a prepared cache (no manifest.jsonl): {cache_dir}")
    try:
        return cache.read_cache_manifest(cache_dir)
    except (ValueError, cache.CacheError) as e:
        raise EvaluationError(str(e)) from None


def _load_sample(cache_dir: Path, rec: SampleRecord) -> dict[str, np.ndarray]:
    """All tensors of a sample (`macbdf.data.cache.read_sample`: checksum and finite values checked)."""
    t = cache.read_sample(cache_dir, rec)
    missing = {"frames", "logmel"} - set(t)
    if missing:
        raise ValueError(f"sample file lacks {', '.join(sorted(missing))}")
    n = int(t["frames"].shape[0])
    for k in ("frame_label_video", "frame_label_audio"):
        if k not in t:
            lab = rec.video_label if k.endswith("video") else rec.audio_label
            t[k] = np.full(n, int(lab or 0), dtype=np.uint8)
    return t


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, s, s, 3) uint8 -> (T, size, size, 3) uint8 (cache prepared at another face size)."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def check_preprocess(cache_dir: Path, model_pre: Any) -> list[str]:
    """Compare the cache's preprocessing with the model's; raises `EvaluationError` when the
    audio features cannot match, returns notes for what is adapted (face size) or suspicious."""
    try:
        pre = cache.load_cache_config(cache_dir)
    except cache.CacheError as e:
        raise EvaluationError(str(e)) from None
    if pre is None:
        return ["cache has no cache_config.json; assuming the model's preprocessing"]
    cache_cfg = pre.to_dict()
    notes = []
    for k in ("n_mels", "hop_ms", "sample_rate"):
        if k in cache_cfg and getattr(model_pre, k, None) is not None and cache_cfg[k] != getattr(model_pre, k):
            raise EvaluationError(f"the cache was prepared with {k}={cache_cfg[k]} but the model expects "
                                  f"{getattr(model_pre, k)}; prepare the data again with the model's settings")
    if cache_cfg.get("fps") is not None and float(cache_cfg["fps"]) != float(model_pre.fps):
        raise EvaluationError(f"the cache was prepared at {cache_cfg['fps']} fps but the model expects {model_pre.fps}")
    if cache_cfg.get("face_size") is not None and int(cache_cfg["face_size"]) != int(model_pre.face_size):
        notes.append(f"face crops resized from {cache_cfg['face_size']} to {model_pre.face_size} px")
    return notes


def score_split(
    model: torch.nn.Module,
    cache_dir: str | os.PathLike,
    records: Sequence[SampleRecord],
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "scoring",
    aggregation: str = "mean",
) -> ScoredSplit:
    """Score every record (whole clip, window by window); unreadable samples go to ``failures``.

    ``aggregation``: a clip's probabilities are the frame-weighted ``"mean"`` of its windows' or
    the ``"max"`` (the most suspicious window; the `Detector`'s options, same meaning).
    """
    if aggregation not in AGGREGATIONS:
        raise EvaluationError(f"aggregation must be mean or max, got {aggregation!r}")
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir)
    cfg = model.config
    inf = WindowedInference(model, device=device, batch_windows=batch_size, embeddings=True)
    out = ScoredSplit()
    windows: dict[int, list[WindowScores]] = {}   # per sample, in order
    samples: dict[int, dict[str, np.ndarray]] = {}

    def clip_windows() -> Iterator[Window]:
        for i, rec in enumerate(bar):
            try:
                sample = _load_sample(cache_dir, rec)
            except Exception as e:  # one bad file must not abort the evaluation
                out.failures.append({"video_id": rec.video_id, "reason": f"{type(e).__name__}: {e}"[:300]})
                continue
            frames = sample["frames"]
            if frames.shape[0] and frames.shape[1] != inf.face_size:
                frames = _resize_frames(frames, inf.face_size)
            n = int(frames.shape[0])
            samples[i] = {k: sample[k][:n] for k in ("frame_label_audio", "frame_label_video")}
            windows[i] = []
            yield from inf.cut(frames, sample["logmel"], tag=i)

    bar = tqdm(records, desc=desc, unit="clip", disable=not progress, leave=False, file=sys.stderr)
    for s in inf.score(clip_windows()):
        windows[s.window.tag].append(s)
    bar.close()

    order = list(windows)
    for i in order:
        ws, rec = windows[i], records[i]
        w = np.array([max(s.num_frames, 1) for s in ws], dtype=np.float64)   # (W,) real frames per window
        out.records.append(rec)
        out.frame_audio.append(np.concatenate([s.frame_audio for s in ws]))
        out.frame_video.append(np.concatenate([s.frame_video for s in ws]))
        out.frame_label_audio.append(samples[i]["frame_label_audio"].astype(np.float32))
        out.frame_label_video.append(samples[i]["frame_label_video"].astype(np.float32))
        out.fps.append(float(rec.fps or cfg.preprocess.fps))
        for name in ws[0].emb:
            out.emb.setdefault(name, []).append(aggregate_probs(np.stack([s.emb[name] for s in ws]), w))  # type: ignore[arg-type]
    clip = [aggregate(windows[i], aggregation) for i in order]
    out.p = np.array([c["p_fake"] for c in clip])
    out.p_audio = np.array([c["p_audio_fake"] for c in clip])
    out.p_video = np.array([c["p_video_fake"] for c in clip])
    out.emb = {k: np.stack(v) for k, v in out.emb.items()}  # type: ignore[arg-type]
    return out


# ----------------------------------------------------------------------------- metrics
def compute_report(
    scored: ScoredSplit,
    threshold: float = 0.5,
    train_methods: set[str] | None = None,
    localization_protocol: str = "standard",
) -> dict[str, Any]:
    """All metrics of one scored split (see the module docstring); values may be `Undefined`."""
    y = scored.labels("label")
    known = np.isfinite(y)
    p = scored.p
    rep: dict[str, Any] = {}
    rep["overall"] = M.binary_metrics(y[known], p[known], threshold)
    cats = [r.category for r in scored.records]
    meths = [r.method for r in scored.records]
    kn = np.flatnonzero(known)
    rep["per_category"] = M.grouped_metrics(y[kn], p[kn], [cats[i] for i in kn], threshold, M.CATEGORY_ORDER)
    rep["per_method"] = M.grouped_metrics(y[kn], p[kn], [meths[i] for i in kn], threshold, ["real"])
    rep["per_modality"] = M.modality_metrics(
        {"audio": scored.labels("audio_label"), "video": scored.labels("video_label")},
        {"audio": scored.p_audio, "video": scored.p_video},
        threshold,
    )
    # frame level
    fa = [s for s in scored.frame_audio]
    fv = [s for s in scored.frame_video]
    la, lv = scored.frame_label_audio, scored.frame_label_video
    any_s = [np.maximum(a, v) if a.size == v.size else a for a, v in zip(fa, fv)]
    any_l = [np.maximum(a, v) for a, v in zip(la, lv)]
    rep["frame"] = {
        "auc_audio": M.frame_level_auc(la, fa),
        "auc_video": M.frame_level_auc(lv, fv),
        "auc_any": M.frame_level_auc(any_l, any_s),
        "n_frames": int(sum(x.size for x in la)),
    }
    # temporal localisation where fake periods exist
    has_periods = any(r.fake_periods for r in scored.records)
    if has_periods:
        gt = {r.video_id: [list(map(float, q)) for q in r.fake_periods] for r in scored.records}
        props = {
            r.video_id: M.segments_from_scores(s, fps)
            for r, s, fps in zip(scored.records, any_s, scored.fps)
        }
        rep["localization"] = {
            "protocol": localization_protocol,
            "ap": M.localization_ap(props, gt, protocol=localization_protocol),
            "ar": M.localization_ar(props, gt, protocol=localization_protocol),
            "n_segments": int(sum(len(v) for v in gt.values())),
        }
    else:
        rep["localization"] = {"skipped": "no fake periods in this split"}
    # synth marks fakes that only a cross-modal check can catch (lip-sync on a real utterance of
    # the same speaker, audio swapped with another real utterance of the same voice)
    cmo = [r.extra.get("cross_modal_only") for r in scored.records]
    if any(v is not None for v in cmo):
        sel = np.array([bool(v) for v in cmo]) & known
        groups = ["cross-modal only" if s else ("real" if y[i] == 0 else "other fakes") for i, s in enumerate(sel)]
        rep["per_difficulty"] = M.grouped_metrics(y[kn], p[kn], [groups[i] for i in kn], threshold,
                                                  ["real", "other fakes", "cross-modal only"])
    # generalisation to manipulation methods never seen in training
    if train_methods is not None:
        unseen = sorted({m for m in meths if m and m != "real" and m not in train_methods})
        if unseen:
            sel = np.array([(m in unseen) for m in meths]) & known
            mask = sel | (known & (y == 0))
            g = M.group_metrics(y[mask], p[mask], sel[mask], threshold)
            g["methods"] = unseen
            rep["unseen_methods"] = g
    return rep


# ----------------------------------------------------------------------------- runner
def _counts(records: Sequence[SampleRecord]) -> dict[str, Any]:
    c: dict[str, Any] = {"n": len(records), "fake": sum(1 for r in records if r.label == 1),
                         "real": sum(1 for r in records if r.label == 0)}
    cats: dict[str, int] = {}
    for r in records:
        if r.category:
            cats[r.category] = cats.get(r.category, 0) + 1
    c["per_category"] = cats
    c["datasets"] = sorted({r.dataset for r in records})
    return c


def _same_path(a: Any, b: Path) -> bool:
    try:
        return a is not None and Path(str(a)).resolve() == b.resolve()
    except OSError:
        return False


def evaluate(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "test",
    threshold_from: str | float = "val",
    plots_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = True,
    localization_protocol: str = "standard",
    model: torch.nn.Module | None = None,
    meta: dict[str, Any] | None = None,
    keep_scores: bool = False,
    aggregation: str = "mean",
    bootstrap: int = 0,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on the ``split`` of the prepared cache ``data``; returns the report.

    ``aggregation``: clip probability from its windows, ``"mean"`` or ``"max"`` (see `score_split`;
    the threshold is tuned with the same rule).
    ``threshold_from``: "val" (best-accuracy threshold on this cache's val split; falls back
    to the checkpoint's when there is no val split), "checkpoint", or a number.
    ``keep_scores`` adds ``report["scores"]`` (video ids, labels, probabilities) for plots
    that compare several models. ``bootstrap=N`` adds ``report["bootstrap"]``: 95 % percentile
    intervals of AUC, AP, ACC@0.5 and ACC@thr over N resamplings of the clips (within class, seeded
    by ``bootstrap_seed``; `bootstrap_intervals`). ``model``/``meta`` pass an already loaded model. Raises
    `EvaluationError` (one line) when the checkpoint or the cache cannot be used.

    Example:
        >>> rep = evaluate("runs/a", "cache", split="test", plots_dir="runs/a/plots")  # doctest: +SKIP
        >>> print(format_report(rep))                                                   # doctest: +SKIP
    """
    from macbdf.checkpoint import CheckpointError, load_model

    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    data = Path(data)
    if model is None:
        try:
            model, meta = load_model(checkpoint, device)
        except CheckpointError as e:
            raise EvaluationError(str(e)) from None
    meta = dict(meta or {})
    model.eval()
    records = load_cache_records(data)
    pre_notes = check_preprocess(data, model.config.preprocess)
    test_recs = _select(records, split)
    if not test_recs:
        have = sorted({r.split for r in records})
        raise EvaluationError(f"no prepared samples in split {split!r} of {data} (splits present: {', '.join(have) or 'none'})")

    trained_on = meta.get("trained_on")
    cross = trained_on is not None and not _same_path(trained_on, data)
    # threshold
    thr_source: str
    threshold = 0.5
    val_info: dict[str, Any] = {}
    if isinstance(threshold_from, (int, float)) or _is_number(threshold_from):
        threshold, thr_source = float(threshold_from), "given"
    elif threshold_from == "checkpoint":
        threshold, thr_source = float(meta.get("threshold", 0.5)), "checkpoint"
    elif threshold_from == "val":
        val_recs = _select(records, "val") if split != "val" else []
        if val_recs:
            vs = score_split(model, data, val_recs, batch_size, device, progress, desc="scoring val",
                             aggregation=aggregation)
            yv = vs.labels()
            ok = np.isfinite(yv)
            t = M.best_threshold(yv[ok], vs.p[ok])
            if math.isnan(t):
                threshold, thr_source = float(meta.get("threshold", 0.5)), "checkpoint"
                val_info = {"note": f"val threshold undefined ({M.reason_of(t)}); used the checkpoint's"}
            else:
                threshold, thr_source = t, "val"
                val_info = {"n": int(ok.sum()), "auc": M.roc_auc(yv[ok], vs.p[ok]), "acc_at_threshold": M.accuracy(yv[ok], vs.p[ok], t)}
        else:
            threshold, thr_source = float(meta.get("threshold", 0.5)), "checkpoint"
            val_info = {"note": "no val split to tune on" if split != "val" else "evaluating val itself"}
    else:
        raise EvaluationError(f"--threshold-from must be val, checkpoint or a number, got {threshold_from!r}")

    scored = score_split(model, data, test_recs, batch_size, device, progress, desc=f"scoring {split}",
                         aggregation=aggregation)
    if not scored.records:
        raise EvaluationError(f"none of the {len(test_recs)} samples of split {split!r} could be read "
                              f"(first: {scored.failures[0]['reason'] if scored.failures else '?'})")
    train_methods = None if cross else {r.method for r in records if r.split == "train" and r.method}
    rep = compute_report(scored, threshold, train_methods or None, localization_protocol)
    # a single-modality baseline has no head for the other stream (its logit is a constant 0)
    used = {"av": ("audio", "video"), "audio": ("audio",), "video": ("video",)}.get(
        str(getattr(model.config, "modality", "av")), ("audio", "video"))
    rep["per_modality"] = {k: v for k, v in rep["per_modality"].items() if k in used}

    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split,
        "model": meta.get("model", {}).get("name"),
        "variant": {k: meta.get("model", {}).get(k) for k in ("modality", "fusion", "ms_depth", "use_contrastive",
                                                              "use_intra", "use_cross", "use_fusion_weights")},
        "trained_on": trained_on,
        "cross_dataset": bool(cross),
        "counts": _counts(scored.records),
        "threshold": {"value": float(threshold), "source": thr_source, **({"val": val_info} if val_info else {})},
        "aggregation": aggregation,
        **rep,
        "failures": scored.failures,
    }
    if pre_notes:
        report["preprocess_notes"] = pre_notes
    if bootstrap > 0:
        y_all = scored.labels()
        ok = np.isfinite(y_all)
        report["bootstrap"] = bootstrap_intervals(y_all[ok], scored.p[ok], float(threshold), bootstrap, bootstrap_seed)
    if keep_scores:
        report["scores"] = {
            "video_id": [r.video_id for r in scored.records],
            "label": scored.labels().tolist(),
            "p": scored.p.tolist(), "p_audio": scored.p_audio.tolist(), "p_video": scored.p_video.tolist(),
        }
    if plots_dir is not None:
        report["plots"] = make_plots(scored, report, Path(plots_dir), checkpoint)
    return report


def bootstrap_intervals(y_true: np.ndarray, p: np.ndarray, threshold: float, n_boot: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Percentile-bootstrap intervals over clips (resampled within class) of AUC, AP, ACC@0.5, ACC@thr.

    Example:
        >>> iv = bootstrap_intervals(np.array([0, 0, 1, 1]), np.array([.1, .6, .4, .9]), 0.5, n_boot=50)
        >>> sorted(iv["metrics"]), iv["metrics"]["auc"]["estimate"]
        (['acc', 'acc_thr', 'ap', 'auc'], 0.75)
    """
    from macbdf.metrics.stats import bootstrap_ci

    if len(np.unique(y_true)) < 2:
        return {"skipped": "one class only: no interval"}
    spec = {"auc": ("auc", 0.5), "ap": ("ap", 0.5), "acc": ("acc", 0.5), "acc_thr": ("acc", threshold)}
    return {"n_boot": int(n_boot), "seed": int(seed), "confidence": confidence,
            "method": "percentile bootstrap over clips, resampled within class",
            "metrics": {k: bootstrap_ci(y_true, p, m, n_boot=n_boot, confidence=confidence, seed=seed,
                                        threshold=t).to_dict() for k, (m, t) in spec.items()}}


def _is_number(x: Any) -> bool:
    try:
        float(x)
        return True
    except (TypeError, ValueError):
        return False


def make_plots(scored: ScoredSplit, report: dict[str, Any], out: Path, checkpoint: Any = None) -> dict[str, str]:
    """ROC (sample + unimodal heads), latent space (PCA/t-SNE), one score timeline, training
    curves when the run folder has a metrics.jsonl. Returns {name: path}; a failing plot is noted."""
    from macbdf.metrics import plots as P

    made: dict[str, str] = {}
    y = scored.labels()
    ok = np.isfinite(y)

    def attempt(name: str, fn: Any) -> None:
        try:
            made[name] = str(fn())
        except Exception as e:  # a plot must never take the report down
            made[name] = f"failed: {type(e).__name__}: {e}"[:200]

    attempt("roc", lambda: P.plot_roc({
        "multimodal": (y[ok], scored.p[ok]),
        "audio head (audio label)": (scored.labels("audio_label"), scored.p_audio),
        "video head (video label)": (scored.labels("video_label"), scored.p_video),
    }, out / "roc.png", title=f"ROC - {report.get('split')}"))
    if scored.emb and len(scored.records) >= 5:
        groups = [r.category or ("fake" if r.label else "real") for r in scored.records]
        emb = {k.replace("emb_", ""): v for k, v in scored.emb.items()}
        attempt("latent", lambda: P.plot_latent_space(emb, groups, out / "latent.png"))
    # timeline of the most confidently detected fake with known periods, else the first fake
    idx = [i for i, r in enumerate(scored.records) if r.fake_periods] or \
          [i for i, r in enumerate(scored.records) if r.label == 1]
    if idx:
        i = max(idx, key=lambda j: scored.p[j])
        r = scored.records[i]
        attempt("timeline", lambda: P.plot_score_timeline(
            scored.fps[i], {"audio": scored.frame_audio[i], "video": scored.frame_video[i]},
            out / "timeline.png", r.fake_periods, report["threshold"]["value"],
            title=f"{r.video_id} ({r.category or r.method})"))
    if checkpoint is not None:
        for cand in (Path(checkpoint) / "metrics.jsonl", Path(checkpoint).parent / "metrics.jsonl"):
            if cand.is_file():
                attempt("training_curves", lambda c=cand: P.plot_training_curves({"run": c}, out / "training_curves.png"))
                break
    return made


# ----------------------------------------------------------------------------- output
def _f(x: Any, pct: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "  -  "
    return f"{100 * x:5.1f}" if pct else f"{x:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """Readable terminal tables of a report (percentages)."""
    L: list[str] = []
    o = report["overall"]
    th = report["threshold"]
    L.append(f"{report.get('model') or 'model'} on {report['data']} [{report['split']}]: "
             f"{o['n']} samples ({o['n_fake']} fake, {o['n_real']} real)"
             + ("  [cross-dataset]" if report.get("cross_dataset") else ""))
    L.append(f"threshold {th['value']:.3f} (from {th['source']})")
    L.append("")
    L.append(f"{'':18s} {'ACC@.5':>7s} {'ACC@thr':>7s} {'AUC':>7s} {'AP':>7s} {'EER':>7s} {'n':>6s}")
    L.append(f"{'sample (fused)':18s} {_f(o['acc']):>7s} {_f(o['acc_thr']):>7s} {_f(o['auc']):>7s} "
             f"{_f(o['ap']):>7s} {_f(o['eer']):>7s} {o['n']:>6d}")
    for mod, m in report.get("per_modality", {}).items():
        L.append(f"{mod + ' head':18s} {_f(m['acc']):>7s} {_f(m['acc_thr']):>7s} {_f(m['auc']):>7s} "
                 f"{_f(m['ap']):>7s} {_f(m['eer']):>7s} {m['n']:>6d}")
    for title, key in (("category", "per_category"), ("method", "per_method"), ("difficulty", "per_difficulty")):
        groups = report.get(key) or {}
        if not groups:
            continue
        L.append("")
        L.append(f"{'per ' + title:18s} {'ACC@.5':>7s} {'ACC@thr':>7s} {'AUC*':>7s} {'n':>6s}")
        for g, m in groups.items():
            L.append(f"{g[:18]:18s} {_f(m['acc']):>7s} {_f(m['acc_thr']):>7s} {_f(m.get('auc')):>7s} {m['n']:>6d}")
    if report.get("per_category") or report.get("per_method") or report.get("per_difficulty"):
        L.append("  * AUC of a fake group against all real samples of the split")
    bs = report.get("bootstrap") or {}
    if bs.get("metrics"):
        from macbdf.metrics.stats import Interval

        L.append(f"95% CI ({bs['n_boot']} bootstrap resamplings of the clips within class, seed {bs['seed']}): "
                 + "  ".join(f"{k.upper().replace('_THR', '@thr')} {Interval(**v).fmt()}"
                             for k, v in bs["metrics"].items()))
    elif bs.get("skipped"):
        L.append(f"bootstrap: {bs['skipped']}")
    fr = report.get("frame", {})
    L.append("")
    L.append(f"frame AUC: audio {_f(fr.get('auc_audio'))}  video {_f(fr.get('auc_video'))}  "
             f"any {_f(fr.get('auc_any'))}  ({fr.get('n_frames', 0)} frames)")
    loc = report.get("localization", {})
    if "ap" in loc:
        ap = "  ".join(f"AP@{k} {_f(v)}" for k, v in loc["ap"].items())
        ar = "  ".join(f"AR@{k} {_f(v)}" for k, v in loc["ar"].items())
        L.append(f"localisation ({loc['protocol']}, {loc['n_segments']} segments): {ap}")
        L.append(f"  {ar}")
    elif loc:
        L.append(f"localisation: {loc.get('skipped')}")
    un = report.get("unseen_methods")
    if un:
        L.append(f"unseen methods {', '.join(un['methods'])}: ACC@.5 {_f(un['acc'])} ACC@thr {_f(un['acc_thr'])} "
                 f"AUC vs real {_f(un.get('auc'))} (n={un['n']})")
    if report.get("failures"):
        L.append(f"{len(report['failures'])} sample(s) could not be read (see JSON 'failures')")
    return "\n".join(L)


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Strict JSON (NaN -> null, reasons under "notes"), written atomically."""
    from macbdf.filemode import atomic_write_text

    notes: dict[str, str] = {}
    data = M.jsonable(obj, notes)
    if isinstance(data, dict) and notes:
        data.setdefault("notes", {}).update(notes)
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return Path(path)
