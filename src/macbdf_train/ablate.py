"""The paper's ablation studies as one resumable grid: train each variant, evaluate, tabulate.

Why one file of ~620 lines: one job, the grid, in marked parts (training glue, data description, grid,
several seeds) that share the cell table and its keys.

Cells (``grid="paper"``):

=============  ==============================================  ==========================
cell           what changes                                     paper
=============  ==============================================  ==========================
full           nothing (the model's own config, OM-Pareto)       Table 2 last row
wo_LC          ``use_contrastive=False``                         Table 2 "w/o L_C"
wo_intra       ``use_intra=False`` (no L_aa, L_vv)               Table 2 "w/o L_intra"
wo_cross       ``use_cross=False`` (no L_av, L_va)               Table 2 "w/o L_cross"
wo_w           ``use_fusion_weights=False`` (fixed 0.5/0.5)      Table 2 "w/o w"
wo_sync        ``sync_dim=0`` (our synchrony extension off)      - (not in the paper)
depth_K        ``ms_depth=K`` for K in 0, 2, 4, 6, 8             Fig. 5
pareto_off     plain summed loss instead of OM-Pareto            Fig. 6-7
audio_only     ``modality="audio"``                              unimodal baseline
video_only     ``modality="video"``                              unimodal baseline
concat         ``fusion="concat"`` (+ sync if the model has it)  fusion baseline
concat_nosync  ``fusion="concat", sync_dim=0``                   fusion baseline, no sync
=============  ==============================================  ==========================

The synchrony extension runs in every model with both modalities (the concat baseline included), so
``full - concat`` and ``wo_sync - concat_nosync`` compare the paper's components with and without it,
and ``full - wo_sync`` is its own effect (`COMPARISONS`, listed under the table when the cells ran).

``grid="quick"`` keeps full, wo_LC, pareto_off, depth_0, audio_only, video_only and concat.
Cells whose settings coincide (e.g. ``depth_2`` when the model's own depth is 2) are trained
once and share the result.

Every cell trains into ``OUT/cells/<cell>/run`` with the same data, seed, steps and batch
size, then is evaluated on the cache's test split (threshold tuned on val) into
``OUT/cells/<cell>/eval.json``. A cell whose ``eval.json`` exists with the same settings is
skipped, so an interrupted grid resumes where it stopped (a half-trained cell resumes its
run). ``OUT/ablation.md`` and ``OUT/ablation.csv`` hold one row per cell and are headed by the
data the grid ran on (cache path, sample counts, synth seed) and the settings.

Example:
    >>> from macbdf_train.ablate import run_grid
    >>> table = run_grid("cache/synth", "runs/ablation", grid="quick", model="small", steps=300)  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

CELLS: dict[str, dict[str, Any]] = {
    "full": {"desc": "MACB-DF (full, OM-Pareto)", "model": {}, "train": {}},
    "wo_LC": {"desc": "w/o L_C (no contrastive learning)", "model": {"use_contrastive": False}, "train": {}},
    "wo_intra": {"desc": "w/o L_intra (no L_aa, L_vv)", "model": {"use_intra": False}, "train": {}},
    "wo_cross": {"desc": "w/o L_cross (no L_av, L_va)", "model": {"use_cross": False}, "train": {}},
    "wo_w": {"desc": "w/o w (fixed fusion weights)", "model": {"use_fusion_weights": False}, "train": {}},
    "wo_sync": {"desc": "w/o temporal sync (our extension off)", "model": {"sync_dim": 0}, "train": {}},
    **{f"depth_{k}": {"desc": f"multi-scale depth {k}", "model": {"ms_depth": k}, "train": {}} for k in (0, 2, 4, 6, 8)},
    "pareto_off": {"desc": "plain summed loss (no OM-Pareto)", "model": {}, "train": {"balancer": "sum"}},
    "audio_only": {"desc": "audio-only baseline", "model": {"modality": "audio"}, "train": {}},
    "video_only": {"desc": "video-only baseline", "model": {"modality": "video"}, "train": {}},
    "concat": {"desc": "concatenation-fusion baseline (+ sync when the model has it)", "model": {"fusion": "concat"},
               "train": {}},
    "concat_nosync": {"desc": "concatenation-fusion baseline without sync", "model": {"fusion": "concat", "sync_dim": 0},
                      "train": {}},
}
# Paired comparisons reported when both cells ran: (name, A, B, question). With a model that has the sync
# extension, `concat` carries it too, so full vs concat and wo_sync vs concat_nosync compare the paper's
# components with and without our extension, and full vs wo_sync is the extension's own effect.
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("fusion_with_sync", "full", "concat", "paper's components over concat, both with sync"),
    ("fusion_without_sync", "wo_sync", "concat_nosync", "paper's components over concat, both without sync"),
    ("sync_effect", "full", "wo_sync", "our sync extension's effect on the full model"),
)
GRIDS: dict[str, tuple[str, ...]] = {
    "paper": tuple(CELLS),
    "quick": ("full", "wo_LC", "pareto_off", "depth_0", "audio_only", "video_only", "concat"),
}
CSV_COLUMNS = ("cell", "description", "model_overrides", "train_overrides", "acc", "acc_thr", "auc", "ap",
               "eer", "audio_auc", "video_auc", "frame_auc", "threshold", "train_s", "status")


class AblationError(RuntimeError):
    """One-line reason why the grid cannot run (bad cache, unknown cell, ...)."""


# ----------------------------------------------------------------------------- training glue
def make_train_config(**kw: Any) -> Any:
    """A `macbdf_train.config.TrainConfig` from keyword settings: ``model_overrides`` (ModelConfig fields) become
    its ``overrides``, None means the trainer's default, and a name that is not a TrainConfig field is an error
    (`AblationError` naming the closest field: a typo must not pass unnoticed).

    Example:
        >>> make_train_config(data="c", out="r", model_overrides={"ms_depth": 0}, steps=None, lr=3e-3).overrides
        {'ms_depth': 0}
        >>> make_train_config(data="c", out="r", lr_scale={"video_encoder": 0.3})
        Traceback (most recent call last):
        ...
        macbdf_train.ablate.AblationError: unknown training setting 'lr_scale' (did you mean 'lr_scales'?)
    """
    from macbdf_train.config import TrainConfig, TrainError

    settings = {k: v for k, v in kw.items() if v is not None and k != "model_overrides"}
    if kw.get("model_overrides"):
        settings["overrides"] = dict(kw["model_overrides"])
    try:
        return TrainConfig.from_settings(**settings)
    except TrainError as e:
        raise AblationError(str(e)) from None


def scales_for(lr_scales: dict[str, float] | None, model_overrides: dict[str, Any] | None) -> dict[str, float]:
    """The lr multipliers that apply to a model: a single-modality model has no encoder of the other
    modality, so its prefixes are dropped (the trainer refuses prefixes that match nothing).

    Example:
        >>> scales_for({"video_encoder": 0.33}, {"modality": "audio"}), scales_for({"video_encoder": 0.33}, {})
        ({}, {'video_encoder': 0.33})
    """
    missing = {"audio": "video", "video": "audio"}.get(str((model_overrides or {}).get("modality", "")))
    return {k: v for k, v in (lr_scales or {}).items() if not (missing and k.startswith(missing))}


def train_run(
    data: str | os.PathLike,
    out: str | os.PathLike,
    model: str,
    model_overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    **train_kw: Any,
) -> dict[str, Any]:
    """Train one run (resuming when ``out`` holds a partial one); returns the trainer's summary."""
    from macbdf.checkpoint import TRAIN_STATE_FILE

    out = Path(out)
    # a partial run (killed mid-way) continues instead of starting over
    resume = out.is_dir() and any(out.glob("**/" + TRAIN_STATE_FILE))
    cfg = make_train_config(data=str(data), out=str(out), model=model, model_overrides=model_overrides,
                            resume=resume, **train_kw)
    from macbdf_train.trainer import train

    t0 = time.perf_counter()
    summary = train(cfg)
    summary = dict(summary or {})
    summary["train_s"] = float(summary.get("train_time_s") or (time.perf_counter() - t0))
    return summary


def best_checkpoint(run_dir: str | os.PathLike, prefer: str = "best") -> Path:
    """The checkpoint folder of a run: ``run/best`` (best validation AUC) when present and
    ``prefer == "best"``, else the final ``run`` itself."""
    from macbdf.checkpoint import is_checkpoint

    run_dir = Path(run_dir)
    if prefer == "best" and is_checkpoint(run_dir / "best"):
        return run_dir / "best"
    if is_checkpoint(run_dir):
        return run_dir
    if is_checkpoint(run_dir / "best"):
        return run_dir / "best"
    raise AblationError(f"no checkpoint in {run_dir}")


# ----------------------------------------------------------------------------- data description
def describe_data(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """What a table must be marked with: cache path, split/label/category counts, synth seed."""
    from macbdf_train.evaluate import load_cache_records

    cache_dir = Path(cache_dir)
    recs = load_cache_records(cache_dir)
    prepared = [r for r in recs if r.file]
    splits: dict[str, dict[str, int]] = {}
    for r in prepared:
        s = splits.setdefault(r.split, {"n": 0, "fake": 0, "real": 0})
        s["n"] += 1
        s["fake" if r.label == 1 else "real"] += 1
    cats: dict[str, int] = {}
    for r in prepared:
        if r.category:
            cats[r.category] = cats.get(r.category, 0) + 1
    info: dict[str, Any] = {
        "cache": str(cache_dir.resolve()),
        "n_samples": len(prepared),
        "splits": dict(sorted(splits.items())),
        "categories": cats,
        "datasets": sorted({r.dataset for r in prepared}),
    }
    synth = find_synth_info(prepared)
    if synth:
        s = {**(synth.get("settings") or {}), **synth}
        info["synth"] = {k: s[k] for k in ("seed", "layout", "num_clips", "holdout_families", "duration_range",
                                            "size") if k in s}
    return info


def find_synth_info(records: Sequence[Any]) -> dict[str, Any] | None:
    """``synth_info.json`` of the synthetic benchmark the records come from, if any."""
    for r in records[:5]:
        p = Path(r.path)
        for parent in list(p.parents)[:6]:
            f = parent / "synth_info.json"
            if f.is_file():
                try:
                    return json.loads(f.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    return None
    return None


# ----------------------------------------------------------------------------- grid
def _cell_key(model: str, model_over: dict[str, Any], train_over: dict[str, Any], settings: dict[str, Any],
              data: str) -> str:
    from macbdf.models.registry import resolve_config

    cfg = resolve_config(model, **model_over).to_dict()
    cfg.pop("name", None)
    cfg.pop("description", None)
    blob = json.dumps({"model": cfg, "train": {**settings, **train_over}, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * float(x):.1f}"


def run_grid(
    data: str | os.PathLike,
    out: str | os.PathLike,
    grid: str = "quick",
    cells: Sequence[str] | None = None,
    model: str = "small",
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    balancer: str = "ompareto",
    device: str = "cpu",
    progress: bool = True,
    extra_train: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    checkpoint: str = "best",
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the grid and write ``ablation.md``/``ablation.csv``; returns the table.

    ``checkpoint``: evaluate each cell's ``"best"`` validation checkpoint or its ``"final"`` weights.
    ``keep_scores``: keep each cell's test scores in its ``eval.json`` (for clip-bootstrap intervals).

    Raises `AblationError` on unusable inputs; a cell that fails is recorded with its reason
    and the grid goes on.
    """
    from macbdf_train.evaluate import EvaluationError, evaluate, write_json

    if grid not in GRIDS:
        raise AblationError(f"unknown grid {grid!r}; use one of {', '.join(GRIDS)}")
    names = list(cells) if cells else list(GRIDS[grid])
    unknown = [c for c in names if c not in CELLS]
    if unknown:
        raise AblationError(f"unknown cell(s) {', '.join(unknown)}; known: {', '.join(CELLS)}")
    data_info = describe_data(data)
    if not any(s in data_info["splits"] for s in ("train",)) or "test" not in data_info["splits"]:
        raise AblationError(f"the cache needs train and test splits, has: {', '.join(data_info['splits']) or 'none'}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint not in ("best", "final"):
        raise AblationError(f"checkpoint must be 'best' or 'final', got {checkpoint!r}")
    settings = {"model": model, "steps": steps, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                "balancer": balancer, **(extra_train or {}), **({"checkpoint": "final"} if checkpoint == "final" else {})}
    rows: list[dict[str, Any]] = []
    done_keys: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        spec = CELLS[name]
        train_over = {"balancer": balancer, **spec["train"]}
        try:
            key = _cell_key(model, spec["model"], train_over, settings, data_info["cache"])
        except (ValueError, KeyError) as e:
            rows.append(_row(name, spec, None, f"failed: {e}"))
            continue
        cell_dir = out / "cells" / name
        eval_path = cell_dir / "eval.json"
        status = "done"
        rep: dict[str, Any] | None = None
        if key in done_keys:  # identical settings already run under another name
            rep = done_keys[key]
            status = f"same as {rep['_cell']}"
        elif eval_path.is_file():
            try:
                old = json.loads(eval_path.read_text(encoding="utf-8"))
                if old.get("cell_key") == key:
                    rep, status = old, "cached"
            except (OSError, json.JSONDecodeError):
                rep = None
        if rep is None:
            run_dir = cell_dir / "run"
            if cell_dir.exists() and (cell_dir / "cell_key").is_file() and \
                    (cell_dir / "cell_key").read_text().strip() != key:
                shutil.rmtree(cell_dir)  # settings changed: the old partial run is of another cell
            cell_dir.mkdir(parents=True, exist_ok=True)
            (cell_dir / "cell_key").write_text(key + "\n")
            log(f"[{i + 1}/{len(names)}] {name}: {spec['desc']}")
            try:
                t0 = time.perf_counter()
                cell_train = dict(extra_train or {})
                if "lr_scales" in cell_train:
                    cell_train["lr_scales"] = scales_for(cell_train["lr_scales"], spec["model"])
                summary = train_run(data, run_dir, model, spec["model"], steps=steps, epochs=epochs,
                                    batch_size=batch_size, seed=seed, device=device,
                                    **train_over, **cell_train)
                train_s = float(summary.get("train_s", time.perf_counter() - t0))
                ck = best_checkpoint(run_dir, prefer=checkpoint)
                rep = evaluate(ck, data, split="test", threshold_from="val", device=device, progress=progress,
                               keep_scores=keep_scores)
                rep["cell_key"] = key
                rep["train_s"] = train_s
                rep["train_summary"] = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
                write_json(rep, eval_path)
                rep = json.loads(eval_path.read_text(encoding="utf-8"))
            except (EvaluationError, AblationError) as e:
                rows.append(_row(name, spec, None, f"failed: {e}"))
                continue
            except Exception as e:  # a crashing cell must not stop the grid
                rows.append(_row(name, spec, None, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]))
                continue
        rep["_cell"] = rep.get("_cell", name)
        done_keys[key] = rep
        rows.append(_row(name, spec, rep, status))
        _write_tables(out, rows, data_info, settings, names)  # keep the table current as cells finish
    table = _write_tables(out, rows, data_info, settings, names)
    _plots(out, rows)
    return table


def _row(name: str, spec: dict[str, Any], rep: dict[str, Any] | None, status: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cell": name, "description": spec["desc"],
                           "model_overrides": json.dumps(spec["model"]) if spec["model"] else "",
                           "train_overrides": json.dumps(spec["train"]) if spec["train"] else "",
                           "status": status}
    if rep:
        o = rep.get("overall", {})
        pm = rep.get("per_modality", {})
        row.update(acc=o.get("acc"), acc_thr=o.get("acc_thr"), auc=o.get("auc"), ap=o.get("ap"),
                   eer=o.get("eer"), audio_auc=pm.get("audio", {}).get("auc"),
                   video_auc=pm.get("video", {}).get("auc"), frame_auc=rep.get("frame", {}).get("auc_any"),
                   threshold=rep.get("threshold", {}).get("value"), train_s=rep.get("train_s"),
                   run=rep.get("checkpoint"))
    return row


def _write_tables(out: Path, rows: list[dict[str, Any]], data_info: dict[str, Any], settings: dict[str, Any],
                  planned: Sequence[str]) -> dict[str, Any]:
    from macbdf.filemode import atomic_write_text

    head = ["# MACB-DF ablation grid", "",
            f"- data: `{data_info['cache']}` ({data_info['n_samples']} samples; "
            + ", ".join(f"{s}: {c['n']} ({c['fake']} fake / {c['real']} real)" for s, c in data_info["splits"].items())
            + ")"]
    if data_info.get("categories"):
        head.append("- categories: " + ", ".join(f"{k} {v}" for k, v in sorted(data_info["categories"].items())))
    if data_info.get("synth"):
        head.append("- synthetic benchmark: " + ", ".join(f"{k}={v}" for k, v in data_info["synth"].items()))
    head.append("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None))
    head.append("- evaluation: test split, whole clips; ACC@thr uses the best-accuracy threshold on val; "
                "per-modality AUC from the unimodal heads against the modality's own label")
    head.append(f"- cells finished: {sum(1 for r in rows if 'auc' in r)} of {len(planned)}")
    head.append("")
    head.append("| cell | variant | ACC@0.5 | ACC@thr | AUC | AP | EER | audio AUC | video AUC | frame AUC | train s | status |")
    head.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ts = r.get("train_s")
        head.append(f"| {r['cell']} | {r['description']} | {_fmt(r.get('acc'))} | {_fmt(r.get('acc_thr'))} | "
                    f"{_fmt(r.get('auc'))} | {_fmt(r.get('ap'))} | {_fmt(r.get('eer'))} | {_fmt(r.get('audio_auc'))} | "
                    f"{_fmt(r.get('video_auc'))} | {_fmt(r.get('frame_auc'))} | "
                    f"{'-' if ts is None else f'{ts:.0f}'} | {r['status']} |")
    head.append("")
    head.append("Figures in %. AUC/AP/EER on the test split; '-' = undefined or not run.")
    by = {r["cell"]: r for r in rows if r.get("auc") is not None}
    comp = [(n, a, b, q) for n, a, b, q in COMPARISONS if a in by and b in by]
    if comp:
        head.append("")
        head.append("Paired comparisons (test AUC, one run each; `--seeds` adds intervals):")
        for _n, a, b, q in comp:
            head.append(f"- {a} - {b} ({q}): {100 * (float(by[a]['auc']) - float(by[b]['auc'])):+.1f}")
    md = "\n".join(head) + "\n"
    atomic_write_text(out / "ablation.md", md)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["# data", json.dumps(data_info, sort_keys=True)])
    w.writerow(["# settings", json.dumps(settings, sort_keys=True)])
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in CSV_COLUMNS])
    atomic_write_text(out / "ablation.csv", buf.getvalue())
    return {"data": data_info, "settings": settings, "rows": rows, "markdown": md}


def _plots(out: Path, rows: list[dict[str, Any]]) -> None:
    """Fig. 5 (depth sweep) and Fig. 6 (training curves with/without OM-Pareto) when their cells ran."""
    from macbdf.metrics import plots as P

    by = {r["cell"]: r for r in rows}
    runs = {}
    for cell, label in (("full", "OM-Pareto"), ("pareto_off", "plain sum")):
        mj = out / "cells" / cell / "run" / "metrics.jsonl"
        if cell in by and mj.is_file():
            runs[label] = mj
    if len(runs) == 2:
        try:
            P.plot_training_curves(runs, out / "pareto_curves.png", title="OM-Pareto on/off (Fig. 6)")
        except Exception as e:  # plots are a bonus, never a failure of the grid
            print(f"note: training-curve plot failed: {e}", file=sys.stderr)
    depth = [(int(c.split("_")[1]), by[c]) for c in by if c.startswith("depth_") and by[c].get("auc") is not None]
    if len(depth) >= 2:
        try:
            depth.sort()
            P.plot_sweep([d for d, _ in depth], {"AUC": [r["auc"] for _, r in depth], "ACC@thr": [r["acc_thr"] for _, r in depth]},
                         out / "depth_sweep.png", xlabel="multi-scale depth", title="depth sweep (Fig. 5)")
        except Exception as e:
            print(f"note: depth-sweep plot failed: {e}", file=sys.stderr)


# ----------------------------------------------------------------------------- several seeds
def _cell_eval(seed_dir: Path, row: dict[str, Any]) -> dict[str, Any] | None:
    """A cell's eval.json in one seed's grid (a cell that shared another's settings reads that one)."""
    status = str(row.get("status", ""))
    cell = status[len("same as "):] if status.startswith("same as ") else row["cell"]
    p = seed_dir / "cells" / cell / "eval.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _scores_of(rep: dict[str, Any] | None) -> tuple[Any, Any, list[str]] | None:
    import numpy as np

    sc = (rep or {}).get("scores")
    if not sc:
        return None
    y, p = np.asarray(sc["label"], dtype=float), np.asarray(sc["p"], dtype=float)
    ok = np.isfinite(y) & np.isfinite(p)
    return y[ok], p[ok], [v for v, k in zip(sc["video_id"], ok) if k]


def summarize_seeds(out: str | os.PathLike, tables: dict[int, dict[str, Any]], reference: str = "full",
                    n_boot: int = 1000, boot_seed: int = 0) -> dict[str, Any]:
    """Per cell: test AUC mean with a t-interval over seeds and a pooled clip-bootstrap interval; per
    cell against ``reference``: the paired difference (t over seeds and pooled paired bootstrap) and
    whether the two cells' t-intervals separate (the rule for claiming an effect)."""
    import numpy as np

    from macbdf.metrics.stats import bootstrap_mean_ci, t_interval

    out = Path(out)
    seeds = sorted(tables)
    order = [r["cell"] for r in tables[seeds[0]]["rows"]]
    cells: dict[str, Any] = {}
    scores: dict[str, list[Any]] = {}
    for name in order:
        rows = {s: next((r for r in tables[s]["rows"] if r["cell"] == name), {}) for s in seeds}
        vals = {k: [rows[s].get(k) for s in seeds] for k in ("auc", "acc_thr", "ap", "audio_auc", "video_auc")}
        entry: dict[str, Any] = {"description": rows[seeds[0]].get("description"), "per_seed": vals}
        for k, v in vals.items():
            entry[k] = t_interval([float("nan") if x is None else float(x) for x in v]).to_dict()
        sc = [_scores_of(_cell_eval(out / f"seed_{s}", rows[s])) for s in seeds if rows[s]]
        if sc and all(x is not None for x in sc) and len(sc) == len(seeds):
            scores[name] = sc
            entry["auc_bootstrap"] = bootstrap_mean_ci([(y, p) for y, p, _ in sc], "auc", n_boot=n_boot,
                                                       seed=boot_seed).to_dict()
        cells[name] = entry
    from macbdf.metrics.stats import Interval

    def paired(a_name: str, b_name: str) -> dict[str, Any] | None:
        """AUC(a) - AUC(b): t over the per-seed differences, pooled paired clip bootstrap, separation."""
        a, b = cells[a_name]["per_seed"]["auc"], cells[b_name]["per_seed"]["auc"]
        if any(x is None for x in a + b):
            return None
        it = t_interval(a, ref=b)
        eff: dict[str, Any] = {"diff_t": it.to_dict()}
        if a_name in scores and b_name in scores:
            pairs = []
            for (ya, pa, ida), (_yb, pb, idb) in zip(scores[a_name], scores[b_name]):
                pos = {v: i for i, v in enumerate(idb)}
                ia = [i for i, v in enumerate(ida) if v in pos]
                pairs.append((ya[ia], pa[ia], np.asarray(pb)[[pos[ida[i]] for i in ia]]))
            eff["diff_bootstrap"] = bootstrap_mean_ci(pairs, "auc", n_boot=n_boot, seed=boot_seed).to_dict()
        sep = len(seeds) > 1 and Interval(**cells[a_name]["auc"]).separated_from(Interval(**cells[b_name]["auc"]))
        eff["separated"] = bool(sep)
        eff["claim"] = (("higher" if it.estimate > 0 else "lower") + f" than {b_name} (t-intervals separate)"
                        if sep else f"no effect claimed (t-intervals of {a_name} and {b_name} overlap)")
        return eff

    effects: dict[str, Any] = {}
    if reference in cells:
        for name in order:
            if name != reference:
                e = paired(name, reference)
                if e is not None:
                    effects[name] = e
    comparisons: dict[str, Any] = {}
    for cname, a_name, b_name, question in COMPARISONS:
        if a_name in cells and b_name in cells:
            e = paired(a_name, b_name)
            if e is not None:
                comparisons[cname] = {"a": a_name, "b": b_name, "question": question, **e}
    return {"seeds": seeds, "reference": reference, "cells": cells, "effects": effects, "comparisons": comparisons,
            "intervals": {"t": "Student t over the per-seed test AUCs (training seed; the data are fixed)",
                          "bootstrap": f"pooled percentile bootstrap of the seed mean, {n_boot} replicates "
                                       f"(seed {boot_seed}), each resampling every seed's test clips within class"},
            "settings": tables[seeds[0]].get("settings"), "data": tables[seeds[0]].get("data")}


def _seed_markdown(summary: dict[str, Any]) -> str:
    from macbdf.metrics.stats import Interval

    def iv(d: dict[str, Any] | None) -> str:
        return Interval(**d).fmt() if d else "-"

    d = summary.get("data") or {}
    L = ["# MACB-DF ablation grid over seeds", "",
         f"- data: `{d.get('cache')}` (" + ", ".join(f"{s}: {c['n']} ({c['fake']} fake / {c['real']} real)"
                                                    for s, c in (d.get("splits") or {}).items()) + ")",
         f"- seeds (training): {', '.join(map(str, summary['seeds']))}; settings: "
         + ", ".join(f"{k}={v}" for k, v in (summary.get("settings") or {}).items() if v is not None and k != "seed"),
         f"- intervals (95 %): t = {summary['intervals']['t']}; bootstrap = {summary['intervals']['bootstrap']}",
         f"- an effect is claimed only where the cell's t-interval and {summary['reference']}'s do not overlap", "",
         "| cell | variant | test AUC mean [t 95% CI] | [clip bootstrap] | per seed | ACC@thr [t] | "
         f"AUC - {summary['reference']} [t] | [paired bootstrap] | claim |",
         "|---|---|---|---|---|---|---|---|---|"]
    for name, c in summary["cells"].items():
        e = summary["effects"].get(name, {})
        per = " / ".join("-" if v is None else f"{100 * v:.1f}" for v in c["per_seed"]["auc"])
        boot = iv(c.get("auc_bootstrap")).split(" ", 1)[-1] if c.get("auc_bootstrap") else "-"
        pb = iv(e.get("diff_bootstrap")) if e.get("diff_bootstrap") else "-"
        L.append(f"| {name} | {c['description']} | {iv(c['auc'])} | {boot} | {per} | {iv(c['acc_thr'])} | "
                 f"{iv(e.get('diff_t')) if e else '-'} | {pb} | {e.get('claim', 'reference' if name == summary['reference'] else '-')} |")
    L.append("")
    L.append("Figures in %, test split, threshold for ACC@thr tuned on val.")
    if summary.get("comparisons"):
        L.append("")
        L.append("Paired comparisons (A - B test AUC; t over seeds | pooled paired clip bootstrap):")
        for c in summary["comparisons"].values():
            L.append(f"- {c['a']} - {c['b']} ({c['question']}): {iv(c['diff_t'])} | "
                     f"{iv(c.get('diff_bootstrap')) if c.get('diff_bootstrap') else '-'} -> {c['claim']}")
    return "\n".join(L) + "\n"


def plot_seed_curves(out: Path, seeds: Sequence[int], pairs: Sequence[tuple[str, str]], path: Path,
                     title: str) -> Path | None:
    """Training curves (train loss, val AUC per step) of ``pairs`` = (cell, label), mean over seeds
    with a 95 % t band (Fig. 6-7 with bands)."""
    from macbdf.metrics import plots as P

    runs = {}
    for cell, label in pairs:
        recs = [P.read_metrics_jsonl(out / f"seed_{s}" / "cells" / cell / "run" / "metrics.jsonl") for s in seeds]
        if all(recs):
            runs[label] = recs
    if len(runs) < 1:
        return None
    return P.plot_curves_with_bands(runs, path, keys=("train/loss", "val/auc"), title=title)


def run_grid_seeds(data: str | os.PathLike, out: str | os.PathLike, seeds: Sequence[int],
                   log: Callable[[str], None] = lambda s: print(s, file=sys.stderr), reference: str = "full",
                   **kw: Any) -> dict[str, Any]:
    """`run_grid` once per training seed into ``OUT/seed_<k>`` (test scores kept), then `summarize_seeds`.

    Writes ``OUT/ablation_seeds.md``, ``OUT/ablation_seeds.json``, and with the cells present
    ``OUT/pareto_curves_bands.png`` (full vs pareto_off, Fig. 6-7) and ``OUT/depth_sweep_ci.png`` (Fig. 5).

    Example:
        >>> s = run_grid_seeds("cache/synth", "runs/abl", [0, 1, 2], cells=["full", "wo_LC"], steps=120)  # doctest: +SKIP
        >>> s["effects"]["wo_LC"]["claim"]                                                                 # doctest: +SKIP
    """
    from macbdf.filemode import atomic_write_text
    from macbdf.metrics import jsonable

    if not seeds or len(set(seeds)) != len(seeds):
        raise AblationError(f"seeds must be distinct, got {list(seeds)}")
    out = Path(out)
    tables = {}
    for s in seeds:
        log(f"[ablate] ===== seed {s} =====")
        tables[int(s)] = run_grid(data, out / f"seed_{s}", seed=int(s), log=log, keep_scores=True, **kw)
    summary = summarize_seeds(out, tables, reference=reference)
    md = _seed_markdown(summary)
    atomic_write_text(out / "ablation_seeds.md", md)
    atomic_write_text(out / "ablation_seeds.json", json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n")
    summary["markdown"] = md
    plots: dict[str, str] = {}
    try:
        p = plot_seed_curves(out, list(tables), [("full", "OM-Pareto"), ("pareto_off", "plain sum")],
                             out / "pareto_curves_bands.png", "OM-Pareto on/off (Fig. 6-7), mean and 95% t band over seeds")
        if p and "pareto_off" in summary["cells"]:
            plots["pareto_curves"] = str(p)
    except Exception as e:  # plots are a bonus
        log(f"note: curve plot failed: {e}")
    depth = sorted((int(c.split("_")[1]), c) for c in summary["cells"] if c.startswith("depth_"))
    if len(depth) >= 2:
        try:
            from macbdf.metrics import plots as P

            ivs = [summary["cells"][c]["auc"] for _, c in depth]
            plots["depth_sweep"] = str(P.plot_sweep_ci([k for k, _ in depth], {"test AUC": ivs},
                                                       out / "depth_sweep_ci.png", xlabel="multi-scale depth",
                                                       title="depth sweep (Fig. 5), mean and 95% t interval"))
        except Exception as e:
            log(f"note: depth plot failed: {e}")
    summary["plots"] = plots
    return summary
