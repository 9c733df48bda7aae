"""The main job end to end on the built-in synthetic benchmark (`macbdf demo`, `make demo`).

Stages (each resumable: a finished stage leaves ``DIR/stages/<stage>.json`` and is skipped on
the next run with the same settings; a half-trained model resumes its run; changing a training
setting such as ``steps`` retrains the models but keeps the generated and prepared data):

1. ``synth``    -- the synthetic audio-visual benchmark in the FakeAVCeleb layout, identity-
                   disjoint splits (``DIR/synth``);
2. ``prepare``  -- decode, track faces, log-mel into a cache (``DIR/cache``);
3. ``train:*``  -- MACB-DF ``small`` with OM-Pareto (``macbdf``) and the audio-only,
                   video-only and concatenation baselines, same data, seed and steps
                   (``DIR/runs/<name>``);
4. ``eval:*``   -- each model on the identity-disjoint test split (threshold tuned on val);
5. ``checkpoint`` -- the full model's best checkpoint copied to ``DIR/checkpoint`` (usable by
                   ``macbdf detect --checkpoint DIR/checkpoint``);
6. ``detect``   -- the Detector on held-out test clips (one fake, one real) straight from MP4;
7. ``report``   -- terminal report, ``DIR/report.json`` and plots (ROC of the four models,
                   training curves, latent space, score timeline) in ``DIR``.

``report.json``: ``{"models": {"macbdf"|"audio_only"|"video_only"|"concat": {"auc", "acc",
"acc_thr", "ap", "eer", "per_category": {cat: {"acc", "acc_thr", "auc", "n"}}, "per_modality":
...}}, "goal": {...}, "data": ..., "settings": ..., "detect": [...], "timings_s": {...}}``.

Example:
    >>> from macbdf_train.demo import DemoConfig, run_demo
    >>> report = run_demo(DemoConfig(out="demo_out"))            # doctest: +SKIP
    >>> report["models"]["macbdf"]["auc"] > report["models"]["concat"]["auc"]  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MODELS: dict[str, dict[str, Any]] = {
    "macbdf": {"label": "MACB-DF (OM-Pareto)", "overrides": {}},
    "audio_only": {"label": "audio-only", "overrides": {"modality": "audio"}},
    "video_only": {"label": "video-only", "overrides": {"modality": "video"}},
    "concat": {"label": "concat fusion", "overrides": {"fusion": "concat"}},
}
AUC_GOAL = 0.95


class DemoError(RuntimeError):
    """One-line reason why the demo stopped."""


@dataclass
class DemoConfig:
    """Settings of `run_demo`; the defaults are the 2-core, <= 10-minute main job.

    ``quick=True`` shrinks everything (tiny model, a few clips, a few steps) for tests.
    """

    out: str
    # 480 clips, one identity per block of 4 (120 identities): the full model's errors were mostly unseen real
    # faces scored as manipulated by the video side; 320 clips / 80 identities gave 94.1 / 92.1 (seeds 0 / 1),
    # 480 / 120 gave 95.8 / 97.8 with the same training (RESULTS.md, "## more identities"). The test split then
    # holds 24 real clips instead of 16, so the test AUC is also less noisy. Costs ~65 s of synth and prepare.
    num_clips: int = 480
    seed: int = 0
    model: str = "small"
    steps: int = 250
    batch_size: int = 16
    # lr 3e-3 learns the synchrony and audio traces within the budget (1e-3 left them half-learnt);
    # the longer warm-up (20 % of the steps) keeps the video conv stem from collapsing at such a lr
    # (RESULTS.md, "## sync").
    lr: float = 3e-3
    warmup: float = 0.2
    # The video encoder at a third of that lr: at 2e-3-3e-3 its conv stem sometimes stopped learning
    # in the first ~50 steps (its gradient vanished, the video head stayed at chance; 4 of ~12 runs,
    # baselines included); at 1e-3 it never did (RESULTS.md, "## sync").
    lr_scales: dict[str, float] = field(default_factory=lambda: {"video_encoder": 0.33})
    # Which weights are evaluated, copied to DIR/checkpoint and used for detection: "final" (the end
    # of the cosine schedule) or "best" (best validation AUC). With 24-32 validation clips the AUC
    # saturates at 1.0 early and picks an under-trained checkpoint: the final weights were as good or
    # better in 7 of 8 runs measured (RESULTS.md, "## sync").
    checkpoint: str = "final"
    balancer: str = "ompareto"
    workers: int = 2
    # Models trained at the same time, each in its own process with cpu_count // parallel torch
    # threads (0 = min(2, CPUs), 1 = one after the other). On 2 cores two 1-thread trainings finish
    # ~1.45x sooner than the same two runs one after the other with 2 threads each (small convs
    # scale poorly across threads).
    parallel: int = 0
    device: str = "cpu"
    synth_opts: dict[str, Any] = field(default_factory=dict)
    prepare_args: list[str] = field(default_factory=list)
    models: tuple[str, ...] = tuple(MODELS)
    quick: bool = False
    progress: bool = True

    @classmethod
    def quick_config(cls, out: str, **kw: Any) -> "DemoConfig":
        """Reduced sizes for tests and smoke runs (tiny model, 16 short small clips, a few steps)."""
        base = dict(out=out, num_clips=16, model="tiny", steps=4, batch_size=4, workers=1, quick=True, parallel=1,
                    synth_opts={"duration_range": (1.0, 1.2), "size": 96})
        base.update(kw)
        return cls(**base)


# ----------------------------------------------------------------------------- stages
class _Stages:
    """Stage bookkeeping: DIR/stages/<name>.json holds a finished stage's result."""

    def __init__(self, root: Path, log: Callable[[str], None]) -> None:
        self.dir = root / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.timings: dict[str, float] = {}
        self.train_wall: float | None = None   # wall time of the parallel training, when used
        self.recorded: set[str] = set()        # stages finished by `record` in this invocation

    def done(self, name: str, key: str) -> bool:
        """Whether stage ``name`` finished with the settings ``key``."""
        try:
            return json.loads(self._path(name).read_text(encoding="utf-8")).get("_key", "") == key
        except (OSError, json.JSONDecodeError):
            return False

    def has_marker(self, name: str) -> bool:
        return self._path(name).is_file()

    def forget(self, name: str) -> None:
        """Drop a stage's marker (its output was removed)."""
        self._path(name).unlink(missing_ok=True)

    def record(self, name: str, res: dict[str, Any], key: str, seconds: float) -> None:
        """Mark stage ``name`` finished with result ``res`` (it ran elsewhere, e.g. in a worker process)."""
        from macbdf_train.evaluate import write_json

        res = dict(res, _seconds=round(float(seconds), 2), _key=key)
        write_json(res, self._path(name))
        self.timings[name] = res["_seconds"]
        self.recorded.add(name)

    def _path(self, name: str) -> Path:
        return self.dir / (name.replace(":", "_") + ".json")

    def run(self, name: str, fn: Callable[[], dict[str, Any]], key: str = "",
            stale: Callable[[], None] | None = None) -> dict[str, Any]:
        """Run ``fn`` unless its marker exists with the same settings ``key``.

        A marker made with other settings is stale: ``stale()`` removes that stage's old output
        (inside the demo folder) and the stage runs again.
        """
        p = self._path(name)
        if p.is_file():
            try:
                res = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                res = None  # a corrupt marker: redo the stage
            if res is not None and res.get("_key", "") == key:
                if name not in self.recorded:
                    self.log(f"[demo] {name}: done earlier, skipped")
                self.timings[name] = float(res.get("_seconds", 0.0))
                return res
            if res is not None:
                self.log(f"[demo] {name}: settings changed, running it again")
                if stale is not None:
                    stale()
            p.unlink(missing_ok=True)
        self.log(f"[demo] {name} ...")
        t0 = time.perf_counter()
        try:
            res = fn()
        except DemoError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one line for the user; finished stages stay done for a rerun
            msg = " ".join(str(e).split())[:300]
            raise DemoError(f"stage {name} failed: {type(e).__name__}: {msg} (rerun the same command to resume)") from e
        res["_seconds"] = round(time.perf_counter() - t0, 2)
        res["_key"] = key
        self.timings[name] = res["_seconds"]
        from macbdf_train.evaluate import write_json

        write_json(res, p)
        self.log(f"[demo] {name}: {res['_seconds']:.1f} s")
        return json.loads(p.read_text(encoding="utf-8"))


def _stage_synth(cfg: DemoConfig, synth_dir: Path) -> dict[str, Any]:
    from macbdf.synth import generate

    opts = dict(cfg.synth_opts)
    opts.setdefault("workers", cfg.workers)
    opts.setdefault("num_identities", max(60, -(-cfg.num_clips // 4)))   # one identity per block of 4 clips
    try:
        generate(synth_dir, "fakeavceleb", cfg.num_clips, cfg.seed, **opts)
    except TypeError:
        # an option this synth version does not take: retry with the documented core arguments
        opts.pop("workers", None)
        generate(synth_dir, "fakeavceleb", cfg.num_clips, cfg.seed, **opts)
    p = synth_dir / "synth_info.json"
    info = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    return {"dir": str(synth_dir), "settings": info.get("settings"),
            "identities_per_split": {s: len(v) for s, v in (info.get("splits") or {}).items()},
            "clips": len(info.get("clips") or [])}


def synth_manifest(synth_dir: Path, dest: Path, seed: int = 0) -> dict[str, Any]:
    """Read the synthetic FakeAVCeleb-layout folder with the `fakeavceleb` adapter and add the
    generator's ground truth from ``synth_info.json``: its identity-disjoint train/val/test
    split (which also keeps held-out families in test) and per-modality fake periods (partial
    fakes get correct frame labels). Written as a generic JSONL manifest for `prepare`.

    Without a usable ``synth_info.json`` the adapter's own seeded identity-disjoint split is used.
    """
    from macbdf.data.adapters import load_dataset
    from macbdf.data.manifest import write_manifest

    info_path = synth_dir / "synth_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    clips = {str(c.get("file")): c for c in info.get("clips", []) if c.get("file")}
    recs = load_dataset("fakeavceleb", synth_dir, split_seed=seed, identity_disjoint=True)
    matched = 0
    for r in recs:
        try:
            rel = Path(r.path).resolve().relative_to(synth_dir.resolve()).as_posix()
        except ValueError:
            rel = r.path
        c = clips.get(rel)
        r.dataset = "synth"
        if c is None:
            continue
        matched += 1
        r.split = c.get("split", r.split)
        vp = [list(map(float, q)) for q in c.get("video_periods") or []] if r.video_label else []
        ap = [list(map(float, q)) for q in c.get("audio_periods") or []] if r.audio_label else []
        r.video_fake_periods, r.audio_fake_periods = vp, ap
        r.fake_periods = _union(vp + ap)
        r.identity = c.get("identity_name", r.identity)
        r.extra["cross_modal_only"] = bool(c.get("cross_modal_only", False))
    if clips and matched < len(recs):
        # a mix of generator splits and adapter splits could leak identities: use the adapter's
        recs = load_dataset("fakeavceleb", synth_dir, split_seed=seed, identity_disjoint=True)
        for r in recs:
            r.dataset = "synth"
        matched = 0
    write_manifest(recs, dest)
    return {"records": len(recs), "split_source": "synth_info.json" if matched else "adapter (identity-disjoint)"}


def _union(periods: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(periods):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _stage_prepare(cfg: DemoConfig, synth_dir: Path, cache_dir: Path) -> dict[str, Any]:
    from macbdf.cli import main as cli_main

    man = Path(cfg.out) / "synth_manifest.jsonl"
    man_info = synth_manifest(synth_dir, man, cfg.seed)
    argv = ["prepare", "--dataset", "manifest", "--root", str(man), "--out", str(cache_dir),
            "--workers", str(cfg.workers), *cfg.prepare_args]
    rc = cli_main(argv)
    if rc not in (0, 1):
        raise DemoError(f"`macbdf {' '.join(argv)}` failed with exit code {rc}")
    from macbdf_train.ablate import describe_data

    info = describe_data(cache_dir)
    fails = cache_dir / "failures.jsonl"
    n_fail = sum(1 for line in fails.read_text().splitlines() if line.strip()) if fails.is_file() else 0
    if "test" not in info["splits"] or "train" not in info["splits"]:
        raise DemoError(f"prepared cache lacks a train or test split: {info['splits']}")
    return {"cache": str(cache_dir), "data": info, "failures": n_fail, "manifest": man_info}


def _stage_train(cfg: DemoConfig, cache_dir: Path, run_dir: Path, overrides: dict[str, Any],
                 progress: bool | None = None) -> dict[str, Any]:
    from macbdf_train.ablate import train_run

    scales = _scales_for(cfg, overrides)
    summary = train_run(cache_dir, run_dir, cfg.model, overrides, steps=cfg.steps, batch_size=cfg.batch_size,
                        lr=cfg.lr, warmup=cfg.warmup, lr_scales=scales, seed=cfg.seed,
                        balancer=cfg.balancer, device=cfg.device,
                        progress=cfg.progress if progress is None else progress)
    keep = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}
    keep["final_val"] = summary.get("final_val")
    return keep


def _scales_for(cfg: DemoConfig, overrides: dict[str, Any]) -> dict[str, float]:
    from macbdf_train.ablate import scales_for

    return scales_for(cfg.lr_scales, overrides)


def _lane_init(threads: int) -> None:
    """Worker start-up for parallel training: a fixed number of torch / OpenMP threads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _lane_train(cfg_dict: dict[str, Any], cache_dir: str, run_dir: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """One model's training in a worker process (no progress bar: several run at once)."""
    cfg = DemoConfig(**cfg_dict)
    t0 = time.perf_counter()
    res = _stage_train(cfg, Path(cache_dir), Path(run_dir), overrides, progress=False)
    res["_lane_seconds"] = round(time.perf_counter() - t0, 2)
    return res


def _parallel_lanes(cfg: DemoConfig) -> int:
    if cfg.parallel > 0:
        return cfg.parallel
    if cfg.device != "cpu":   # one accelerator: one training at a time
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _train_parallel(cfg: DemoConfig, st: "_Stages", names: list[str], cache_dir: Path, runs: dict[str, Path],
                    train_key: str, lanes: int) -> None:
    """Train ``names`` in ``lanes`` worker processes (longest first), then record each as a finished stage."""
    import concurrent.futures as cf
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // lanes)
    cost = {"macbdf": 4, "concat": 3, "video_only": 2, "audio_only": 1}
    order = sorted(names, key=lambda n: -cost.get(n, 0))
    st.log(f"[demo] training {', '.join(order)} in {lanes} parallel processes ({threads} thread(s) each) ...")
    cfg_dict = {k: v for k, v in dataclasses.asdict(cfg).items()}
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=lanes, mp_context=mp.get_context("spawn"), initializer=_lane_init,
                                initargs=(threads,)) as ex:
        futs = {ex.submit(_lane_train, cfg_dict, str(cache_dir), str(runs[n]), MODELS[n]["overrides"]): n
                for n in order}
        try:
            for f in cf.as_completed(futs):
                n = futs[f]
                try:
                    results[n] = f.result()
                except Exception as e:  # finished runs stay; a rerun resumes the others
                    msg = " ".join(str(e).split())[:300]
                    raise DemoError(f"stage train:{n} failed: {type(e).__name__}: {msg} "
                                    "(rerun the same command to resume)") from e
                st.log(f"[demo] train:{n}: {results[n]['_lane_seconds']:.1f} s "
                       f"({time.perf_counter() - t0:.0f} s since the parallel start)")
        except BaseException:
            for f in futs:
                f.cancel()
            raise
    for n in order:  # record as stages (the stage's own seconds are its wall time inside its lane)
        res = results[n]
        sec = res.pop("_lane_seconds")
        st.record(f"train:{n}", res, train_key, sec)
    st.train_wall = round(time.perf_counter() - t0, 2)


def _stage_eval(cfg: DemoConfig, cache_dir: Path, run_dir: Path, name: str) -> dict[str, Any]:
    from macbdf_train.ablate import best_checkpoint
    from macbdf_train.evaluate import evaluate

    ck = best_checkpoint(run_dir, prefer=cfg.checkpoint)
    rep = evaluate(ck, cache_dir, split="test", threshold_from="val", device=_eval_device(cfg.device),
                   progress=cfg.progress, plots_dir=(Path(cfg.out) / "plots" / name) if name == "macbdf" else None,
                   keep_scores=True)
    return rep


def _eval_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _stage_checkpoint(run_dir: Path, dest: Path, prefer: str = "final") -> dict[str, Any]:
    from macbdf.checkpoint import CONFIG_FILE, MODEL_FILE
    from macbdf.modelcard import CARD_JSON, CARD_MD
    from macbdf_train.ablate import best_checkpoint

    src = best_checkpoint(run_dir, prefer=prefer)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for f in (MODEL_FILE, CONFIG_FILE, CARD_JSON, CARD_MD):
        if f in (MODEL_FILE, CONFIG_FILE) or (src / f).is_file():
            shutil.copy2(src / f, tmp / f)
    if dest.exists():
        shutil.rmtree(dest)  # our own earlier copy (the demo folder is ours)
    os.replace(tmp, dest)
    return {"checkpoint": str(dest), "from": str(src)}


def _stage_detect(cfg: DemoConfig, ckpt: Path, cache_dir: Path) -> dict[str, Any]:
    from macbdf.detect import Detector
    from macbdf_train.evaluate import load_cache_records

    recs = [r for r in load_cache_records(cache_dir) if r.split == "test" and r.file and Path(r.path).is_file()]
    picks = []
    for want in ("FVFA", "RVFA", "FVRA"):
        fake = next((r for r in recs if r.category == want), None)
        if fake:
            picks.append(fake)
            break
    real = next((r for r in recs if r.label == 0), None)
    if real:
        picks.append(real)
    if not picks:
        return {"results": [], "note": "no held-out clip with a readable source file"}
    det = Detector.from_pretrained(ckpt, device=_eval_device(cfg.device))
    out = []
    for r in picks:
        res = det(r.path).to_dict()
        res["truth"] = {"label": r.label, "category": r.category, "method": r.method, "video_id": r.video_id}
        res.pop("frame_scores", None)  # long; the timeline plot shows them
        out.append(res)
    return {"results": out}


# ----------------------------------------------------------------------------- report
def _model_entry(rep: dict[str, Any]) -> dict[str, Any]:
    o = rep["overall"]
    cats = {c: {k: m.get(k) for k in ("acc", "acc_thr", "auc", "n")} for c, m in rep.get("per_category", {}).items()}
    return {"auc": o.get("auc"), "acc": o.get("acc"), "acc_thr": o.get("acc_thr"), "ap": o.get("ap"),
            "eer": o.get("eer"), "threshold": rep.get("threshold", {}).get("value"), "n": o.get("n"),
            "per_category": cats,
            "per_modality": {m: {"auc": v.get("auc"), "acc": v.get("acc")} for m, v in rep.get("per_modality", {}).items()},
            "per_method": {g: {k: v.get(k) for k in ("acc_thr", "auc", "n")} for g, v in rep.get("per_method", {}).items()},
            "per_difficulty": {g: {k: v.get(k) for k in ("acc_thr", "auc", "n")}
                               for g, v in rep.get("per_difficulty", {}).items()},
            "frame_auc": rep.get("frame", {}).get("auc_any"), "checkpoint": rep.get("checkpoint")}


def _pct(x: Any) -> str:
    return "  -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}"


def format_demo_report(report: dict[str, Any]) -> str:
    """The terminal report: models side by side, per category, goal check, detection."""
    L = []
    d = report.get("data", {})
    sp = d.get("splits", {})
    L.append("=" * 78)
    L.append("MACB-DF demo - synthetic FakeAVCeleb-layout benchmark, identity-disjoint test split")
    L.append("data: " + ", ".join(f"{s} {c['n']} ({c['fake']} fake/{c['real']} real)" for s, c in sp.items()))
    L.append("=" * 78)
    cats = ("RVRA", "RVFA", "FVRA", "FVFA")
    L.append(f"{'model':22s} {'AUC':>6s} {'ACC':>6s} {'ACC@thr':>7s} | " + " ".join(f"{c:>6s}" for c in cats)
             + "   (per-category ACC@thr)")
    for name, m in report["models"].items():
        label = MODELS.get(name, {}).get("label", name)
        pc = m.get("per_category", {})
        L.append(f"{label:22s} {_pct(m.get('auc')):>6s} {_pct(m.get('acc')):>6s} {_pct(m.get('acc_thr')):>7s} | "
                 + " ".join(f"{_pct(pc.get(c, {}).get('acc_thr')):>6s}" for c in cats))
    L.append("")
    L.append(f"{'per-category AUC*':22s} " + " ".join(f"{c:>6s}" for c in cats[1:]))
    for name, m in report["models"].items():
        label = MODELS.get(name, {}).get("label", name)
        pc = m.get("per_category", {})
        L.append(f"{label:22s} " + " ".join(f"{_pct(pc.get(c, {}).get('auc')):>6s}" for c in cats[1:]))
    L.append("  * a fake category against all real test clips")
    g = report.get("goal", {})
    if g:
        L.append("")
        L.append(f"goal: full-model test AUC >= {g['auc_target']:.2f} and above every baseline -> "
                 f"{'MET' if g.get('met') else 'NOT MET'} (AUC {_pct(g.get('macbdf_auc'))}; best baseline "
                 f"{g.get('best_baseline')} {_pct(g.get('best_baseline_auc'))})")
    det = report.get("detect", {}).get("results", [])
    if det:
        L.append("")
        L.append("detection on held-out clips (straight from MP4):")
        for r in det:
            t = r.get("truth", {})
            if r.get("error"):
                L.append(f"  {Path(r['path']).name}: error {r['error']}")
                continue
            L.append(f"  {Path(r['path']).name} [{t.get('category')}, {t.get('method')}]: p_fake {r['p_fake']:.3f} "
                     f"(audio {r['p_audio_fake']:.3f}, video {r['p_video_fake']:.3f}) -> {r['verdict']}")
    tm = report.get("timings_s", {})
    if tm:
        L.append("")
        par = report.get("train_parallel_wall_s")
        total = report.get("wall_s")
        L.append("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in tm.items())
                 + (f"; the trainings ran in parallel: {par:.0f}s wall" if par else "")
                 + (f"; total {total:.0f}s wall" if total is not None else f"; total {sum(tm.values()):.0f}s"))
    L.append(f"report: {report.get('report_path')}   checkpoint: {report.get('checkpoint')}")
    return "\n".join(L)


def _plots(out: Path, evals: dict[str, dict[str, Any]], runs: dict[str, Path]) -> dict[str, str]:
    from macbdf.metrics import plots as P

    made: dict[str, str] = {}
    curves = {}
    for name, rep in evals.items():
        sc = rep.get("scores")
        if sc:
            curves[MODELS.get(name, {}).get("label", name)] = (sc["label"], sc["p"])
    try:
        if curves:
            made["roc"] = str(P.plot_roc(curves, out / "roc.png", title="test ROC: MACB-DF vs baselines"))
    except Exception as e:  # plots never fail the demo
        made["roc"] = f"failed: {e}"
    try:
        runs_ok = {MODELS.get(n, {}).get("label", n): p / "metrics.jsonl" for n, p in runs.items()
                   if (p / "metrics.jsonl").is_file()}
        if runs_ok:
            made["training_curves"] = str(P.plot_training_curves(runs_ok, out / "training_curves.png",
                                                                 title="training curves"))
    except Exception as e:
        made["training_curves"] = f"failed: {e}"
    full_plots = evals.get("macbdf", {}).get("plots") or {}
    for k, v in full_plots.items():
        if k in ("latent", "timeline") and not str(v).startswith("failed"):
            dest = out / Path(v).name
            try:
                shutil.copy2(v, dest)
                made[k] = str(dest)
            except OSError:
                pass
    return made


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    """Run (or resume) every stage; returns the report (also written to ``DIR/report.json``)."""
    from macbdf_train.evaluate import write_json

    t_start = time.perf_counter()
    if cfg.checkpoint not in ("final", "best"):
        raise DemoError(f"checkpoint must be 'final' or 'best', got {cfg.checkpoint!r}")
    out = Path(cfg.out)
    _check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(out, cfg)
    data_key = _key(cfg, _DATA_KEYS)
    train_key = _key(cfg, _DATA_KEYS + _TRAIN_KEYS)
    eval_key = _key(cfg, _DATA_KEYS + _TRAIN_KEYS + ("checkpoint",))
    st = _Stages(out, log)
    synth_dir, cache_dir, runs_dir = out / "synth", out / "cache", out / "runs"
    st.run("synth", lambda: _stage_synth(cfg, synth_dir), data_key, lambda: _rmtree(synth_dir))
    prep = st.run("prepare", lambda: _stage_prepare(cfg, synth_dir, cache_dir), data_key,
                  lambda: _rmtree(cache_dir))
    evals: dict[str, dict[str, Any]] = {}
    runs: dict[str, Path] = {name: runs_dir / name for name in cfg.models}
    todo = [n for n in cfg.models if not st.done(f"train:{n}", train_key)]
    for name in todo:
        run_dir = runs[name]
        stale_marker = st.has_marker(f"train:{name}")
        if stale_marker:
            st.log(f"[demo] train:{name}: settings changed, running it again")
        partial_other = (run_dir / "train_config.json").is_file() and \
            not _same_run(run_dir, cfg, MODELS[name]["overrides"])
        if stale_marker or partial_other:
            _rmtree(run_dir)  # made with other settings: cannot be resumed
            st.forget(f"train:{name}")
    lanes = min(_parallel_lanes(cfg), len(todo))
    if lanes > 1:
        _train_parallel(cfg, st, todo, cache_dir, runs, train_key, lanes)
    for name in cfg.models:
        spec = MODELS[name]
        run_dir = runs[name]
        st.run(f"train:{name}", lambda: _stage_train(cfg, cache_dir, run_dir, spec["overrides"]), train_key,
               lambda: _rmtree(run_dir))
        evals[name] = st.run(f"eval:{name}", lambda: _stage_eval(cfg, cache_dir, run_dir, name), eval_key)
    ck = out / "checkpoint"
    report: dict[str, Any] = {"models": {n: _model_entry(r) for n, r in evals.items()}}
    if "macbdf" in cfg.models:
        st.run("checkpoint", lambda: _stage_checkpoint(runs["macbdf"], ck, cfg.checkpoint), eval_key)
        det = st.run("detect", lambda: _stage_detect(cfg, ck, cache_dir), eval_key)
        report["detect"] = {k: v for k, v in det.items() if not k.startswith("_")}
        report["checkpoint"] = str(ck)
        full = report["models"]["macbdf"].get("auc")
        base = {n: m.get("auc") for n, m in report["models"].items() if n != "macbdf"}
        best_b = max(base, key=lambda n: -1 if base[n] is None else base[n]) if base else None
        _card_figures(ck, report["models"], cfg)
        report["goal"] = {
            "auc_target": AUC_GOAL,
            "macbdf_auc": full,
            "best_baseline": best_b,
            "best_baseline_auc": base.get(best_b) if best_b else None,
            "met": bool(full is not None and full >= AUC_GOAL and all(v is None or full > v for v in base.values())),
        }
    report["data"] = prep.get("data")
    report["settings"] = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress",)}
    report["plots"] = _plots(out, evals, runs)
    report["timings_s"] = dict(st.timings)
    if st.train_wall is not None:
        report["train_parallel_wall_s"] = st.train_wall
    report["wall_s"] = round(time.perf_counter() - t_start, 2)   # this invocation (a resumed run: its part)
    report["report_path"] = str(out / "report.json")
    write_json(report, out / "report.json")
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _card_figures(ck: Path, models: dict[str, Any], cfg: DemoConfig) -> None:
    """Put the demo's measured test figures on the shipped checkpoint's model card."""
    from macbdf.modelcard import update_card

    figs = {f"synthetic_test_auc_{n}": m.get("auc") for n, m in models.items() if m.get("auc") is not None}
    figs["measured_on"] = f"identity-disjoint test split of the synthetic benchmark (seed {cfg.seed})"
    update_card(ck, recipe="synthetic-demo", figures=figs)


def _check_out_dir(out: Path) -> None:
    """Refuse a non-empty folder that is not an earlier demo output (never overwrite user files)."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"--out exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / "demo_config.json").is_file():
        raise DemoError(f"{out} is not empty and not an earlier demo output; choose another --out")


# Settings each stage depends on: changing a training setting retrains but keeps the data.
_DATA_KEYS = ("num_clips", "seed", "synth_opts", "prepare_args", "quick")
_TRAIN_KEYS = ("model", "steps", "batch_size", "lr", "warmup", "lr_scales", "balancer")


def _key(cfg: DemoConfig, keys: tuple[str, ...]) -> str:
    d = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    return json.dumps({k: d.get(k) for k in keys}, sort_keys=True)


def _same_run(run_dir: Path, cfg: DemoConfig, overrides: dict[str, Any] | None = None) -> bool:
    """Whether a partial run in ``run_dir`` was started with this demo's training settings."""
    try:
        tc = json.loads((run_dir / "train_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    keys = ("model", "steps", "batch_size", "lr", "warmup", "balancer", "seed")
    return all(tc.get(k) == getattr(cfg, k) for k in keys) and \
        (tc.get("lr_scales") or {}) == _scales_for(cfg, overrides or {})


def _rmtree(p: Path) -> None:
    """Remove a folder the demo itself created inside its output folder."""
    if p.exists():
        shutil.rmtree(p)


def _write_config(out: Path, cfg: DemoConfig) -> None:
    from macbdf.checkpoint import atomic_write_text

    atomic_write_text(out / "demo_config.json", json.dumps(dataclasses.asdict(cfg), indent=2, default=str) + "\n")
