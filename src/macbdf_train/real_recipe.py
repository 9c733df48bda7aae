"""The real-footage recipe: `macbdf demo --preset real --real-root DIR --out OUT`.

Why one file of ~510 lines: one job, the recipe's stages and its report, read top to bottom.

A model that has only seen procedural faces calls real people fake. This recipe trains on real
talking-face footage instead, with fakes forged from it (`macbdf forge`), and measures what a user
needs to know before trusting it on their own clips:

1. **split** the corpus's real clips by identity (seeded): train / val / test. Identities that also
   appear among the corpus's real deepfakes go to test, so no deepfaked person is trained on.
2. **forge** every real clip of every split into a labelled LAV-DF-layout dataset; donors (another
   speaker's voice, a face-swap partner) come only from the same split, so held-out identities
   never reach training data.
3. **prepare** it (the normal cache) and **train** `small` on the train split (val for the
   validation threshold and curves).
4. **evaluate** on the held-out identities' forged clips, per family (`heldout_forged_auc`), and
   among clips with and without audio (missing tracks must carry no label).
5. **calibrate** the threshold on the val identities' real clips (the recipe's stand-in for "a
   user's own clips"; originals and silent copies) at ``fpr``.
6. **score the corpus's real deepfakes** (never trained or tuned on) against the held-out
   identities' real clips and silent copies of them, with the one `Detector` users run.
7. write ``OUT/checkpoint`` with its model card and ``OUT/report.json``.

Every stage is resumable (the demo's stage markers). Budget: <= 15 minutes on 2 CPU cores.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


class RecipeError(RuntimeError):
    """The recipe cannot run with what it was given (one-line message)."""


@dataclass
class RealRecipeConfig:
    """Settings of the real-footage recipe (defaults: the 2-core, <= 15-minute run)."""

    real_root: str
    out: str
    manifest: str | None = None            # default: REAL_ROOT/MANIFEST.csv
    seed: int = 0
    model: str = "small"
    # the sync front end reads the mouth at full resolution: real lips are a few pixels at half
    # resolution of a 96-px face crop (models/sync.py, SyncVideoNet). Forge makes silent reals and
    # silent fakes alike, so the multimodal head has seen silence and judges silent clips too
    # (no_audio_head="fused"): clips with and without audio stay on one scale (RESULTS `## real
    # footage`: a real clip's p_fake moved -0.34 when its audio was removed with the video head, -0.10 with this)
    model_overrides: dict[str, Any] = field(default_factory=lambda: {"sync_region": "mouth", "no_audio_head": "fused"})
    # 360 steps (~1.0 s each on 2 quiet cores) keep the whole recipe at ~12 minutes beside forge
    # (~175 s), prepare (~85 s) and the evaluations (~90 s), so that the intermittent slow stretches
    # of a shared machine (training steps at 2-2.5 s for minutes) still end within 15 minutes
    # (RESULTS `## real footage, session 7`)
    steps: int = 360
    batch_size: int = 16
    lr: float = 2e-3
    warmup: float = 0.15
    lr_scales: dict[str, float] = field(default_factory=lambda: {"video_encoder": 0.33})
    checkpoint: str = "final"
    # one real copy per 3 fakes: a class-balanced epoch keeps the fused head's prior at 1:1, so an
    # unseen speaker's uncertain clip is not pushed to "fake" by the 3:1 prior
    balance: str = "label"
    split_ratios: tuple[float, float, float] = (0.6, 0.15, 0.25)
    segment_s: float = 4.0
    fakes_per_segment: int = 3
    silent_fraction: float = 0.2
    fpr: float = 0.05
    workers: int = 2
    device: str = "cpu"
    forge_opts: dict[str, Any] = field(default_factory=dict)   # more keyword arguments of macbdf.forge.forge
    identities: tuple[str, ...] | None = None   # only these real identities (tests, small runs)
    max_real_deepfakes: int | None = None       # score only the N shortest real deepfakes (tests)
    progress: bool = True


# ----------------------------------------------------------------------------- corpus and split
@dataclass
class CorpusClip:
    path: Path
    label: str                 # real | fake
    identity: str
    method: str
    has_audio: bool
    speech: bool
    licence: str


def read_corpus(root: Path, manifest: Path | None = None) -> list[CorpusClip]:
    """The corpus's MANIFEST.csv rows (file, label, manipulation_method, identity, has_audio,
    audio_content, repo_license); files are relative to the manifest's folder."""
    man = manifest or root / "MANIFEST.csv"
    if not man.is_file():
        raise RecipeError(f"no manifest at {man} (the real-footage recipe reads a MANIFEST.csv with file, label, "
                          "identity, has_audio columns; see ../shared/realcorpus/README.md)")
    try:
        with open(man, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RecipeError(f"cannot read {man}: {e}") from None
    need = {"file", "label", "identity"}
    if not rows or not need <= set(rows[0]):
        raise RecipeError(f"{man} lacks the columns {sorted(need)}")
    out = []
    for r in rows:
        p = (man.parent / r["file"]).resolve()
        label = (r.get("label") or "").strip().lower()
        if label not in ("real", "fake") or not r.get("identity"):
            continue
        content = (r.get("audio_content") or "").lower()
        has_audio = str(r.get("has_audio", "")).strip().lower() in ("true", "1", "yes")
        out.append(CorpusClip(p, label, r["identity"].strip(), (r.get("manipulation_method") or "").strip() or "real",
                              has_audio, has_audio and "speech" in content, (r.get("repo_license") or "").strip()))
    return out


def split_identities(clips: Sequence[CorpusClip], seed: int,
                     ratios: tuple[float, float, float] = (0.6, 0.15, 0.25)) -> dict[str, str]:
    """Identity -> train|val|test for the real clips, seeded and stratified by speech / silent.

    Identities that also appear among the fakes go to test: a model must not have seen a person
    as real whose deepfake it is then scored on (it would learn the face, not the forgery).

    Example:
        >>> c = [CorpusClip(Path(f"{i}.mp4"), "real", f"p{i}", "real", True, True, "") for i in range(10)]
        >>> s = split_identities(c, 0)
        >>> sorted(s.values()).count("train"), sorted(s.values()).count("test")
        (6, 2)
    """
    rng = np.random.default_rng(seed)
    faked = {c.identity for c in clips if c.label == "fake"}
    real_ids = sorted({c.identity for c in clips if c.label == "real"})
    speech = {c.identity for c in clips if c.label == "real" and c.speech}
    out = {i: "test" for i in real_ids if i in faked}
    for group in (sorted(i for i in real_ids if i in speech and i not in out),
                  sorted(i for i in real_ids if i not in speech and i not in out)):
        order = [group[k] for k in rng.permutation(len(group))]
        n = len(order)
        n_val = int(round(n * ratios[1]))
        n_test = int(round(n * ratios[2]))
        for k, ident in enumerate(order):
            out[ident] = "val" if k < n_val else "test" if k < n_val + n_test else "train"
    return out


# The settings each stage's output depends on (later stages depend on the earlier ones' too).
DATA_SETTINGS = ("real_root", "manifest", "seed", "split_ratios", "segment_s", "fakes_per_segment", "silent_fraction",
                 "forge_opts", "identities")
TRAIN_SETTINGS = ("model", "model_overrides", "steps", "batch_size", "lr", "warmup", "lr_scales", "balance")
EVAL_SETTINGS = ("checkpoint", "fpr", "max_real_deepfakes")


def settings_keys(cfg: RealRecipeConfig) -> dict[str, str]:
    """The stage markers' keys (JSON): ``data`` (forge, prepare), ``train``, ``eval`` (the rest).

    Each key holds the settings its stages' output depends on, so that a changed setting redoes
    exactly the stages it affects (a new ``steps`` retrains instead of resuming the finished
    run). How the run is carried out (workers, device, out folder, progress bars) is in none, and
    the corpus paths are resolved: the same corpus spelled another way ("../shared/realcorpus"
    from the repository, an absolute path from a benchmark) must not redo finished stages.

    Example:
        >>> a = RealRecipeConfig(real_root="corpus", out="o1", workers=1, progress=False)
        >>> b = RealRecipeConfig(real_root=os.path.abspath("corpus"), out="o2", workers=2)
        >>> settings_keys(a) == settings_keys(b)
        True
        >>> k, k2 = settings_keys(a), settings_keys(dataclasses.replace(a, steps=5))
        >>> k["data"] == k2["data"], k["train"] == k2["train"], k["eval"] == k2["eval"]
        (True, False, False)
    """
    settings = dataclasses.asdict(cfg)
    for k in ("real_root", "manifest"):
        if settings.get(k):
            settings[k] = str(Path(settings[k]).resolve())
    out, names = {}, ()
    for stage, more in (("data", DATA_SETTINGS), ("train", TRAIN_SETTINGS), ("eval", EVAL_SETTINGS)):
        names += more
        out[stage] = json.dumps({k: settings[k] for k in names}, sort_keys=True, default=str)
    return out


# ----------------------------------------------------------------------------- stages
def _stage_forge(cfg: RealRecipeConfig, reals: list[CorpusClip], split: dict[str, str], forged: Path) -> dict[str, Any]:
    from macbdf.filemode import atomic_write_text
    from macbdf.forge import ForgeError, forge
    from macbdf.media.landmarks import LandmarksUnavailable

    out = Path(cfg.out)
    # the clips to forge, as a manifest in the corpus's own columns (identity and audio facts)
    man = out / "forge_sources.csv"
    cols = ["file", "label", "identity", "has_audio", "audio_content"]
    lines = [",".join(cols)]
    root = Path(cfg.real_root).resolve()
    for c in reals:
        # relative to the corpus root: forge's clip ids then do not depend on where the corpus lies
        lines.append(",".join([_csv(Path(os.path.relpath(c.path, root)).as_posix()), "real", _csv(c.identity), str(c.has_audio),
                               "speech" if c.speech else ("silent" if c.has_audio else "none")]))
    atomic_write_text(man, "\n".join(lines) + "\n")
    split_file = out / "identity_split.json"
    atomic_write_text(split_file, json.dumps(split, indent=1, sort_keys=True) + "\n")
    try:
        rep = forge(root, forged, manifest=man, layout="lavdf", split_file=split_file, seed=cfg.seed,
                    segment_s=cfg.segment_s, fakes_per_segment=cfg.fakes_per_segment,
                    silent_fraction=cfg.silent_fraction, workers=cfg.workers, progress=cfg.progress, **cfg.forge_opts)
    except (ForgeError, LandmarksUnavailable) as e:
        raise RecipeError(f"forge: {e}") from None
    rc = 1 if rep.failures or rep.written + rep.resumed == 0 else 0
    info = json.loads((forged / "forge_info.json").read_text(encoding="utf-8"))
    return {"forged": str(forged), "clips": len(info.get("clips", [])), "exit_code": rc}


def _csv(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n') else s


def _stage_prepare(cfg: RealRecipeConfig, forged: Path, cache: Path) -> dict[str, Any]:
    from macbdf.data.prepare_cache import PrepareError, prepare_cache
    from macbdf_train.ablate import describe_data

    try:
        prepare_cache("lavdf", forged, cache, workers=cfg.workers, progress=cfg.progress)
    except PrepareError as e:
        raise RecipeError(f"prepare failed: {e}") from None
    info = describe_data(cache)
    if "train" not in info["splits"] or "test" not in info["splits"]:
        raise RecipeError(f"prepared cache lacks a train or test split: {info['splits']}")
    return {"cache": str(cache), "data": info}


def _stage_train(cfg: RealRecipeConfig, cache: Path, run_dir: Path) -> dict[str, Any]:
    from macbdf_train.ablate import scales_for, train_run

    over = _overrides_for(cfg)
    summary = train_run(cache, run_dir, cfg.model, over, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                        warmup=cfg.warmup, lr_scales=scales_for(cfg.lr_scales, over), seed=cfg.seed,
                        balancer="ompareto", balance=cfg.balance, device=cfg.device, progress=cfg.progress)
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _overrides_for(cfg: RealRecipeConfig) -> dict[str, Any]:
    """The recipe's model overrides that apply to its model (sync_region only where sync is on)."""
    from macbdf.models.registry import get_model_config

    base = get_model_config(cfg.model)
    over = dict(cfg.model_overrides)
    if not getattr(base, "sync_dim", 0):
        over.pop("sync_region", None)
    return over


def _families_of(forged: Path) -> dict[str, dict[str, Any]]:
    """forge_info.json: file (relative to the forged root) -> the clip's ground truth."""
    info = json.loads((forged / "forge_info.json").read_text(encoding="utf-8"))
    return {str(c["file"]): c for c in info.get("clips", [])}


def _auc(y: Sequence[int], p: Sequence[float]) -> float | None:
    from macbdf.metrics.sample import roc_auc

    y = np.asarray(y, dtype=float)
    if y.size == 0 or y.min() == y.max():
        return None
    v = roc_auc(y, np.asarray(p, dtype=float))
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def _stage_eval_forged(cfg: RealRecipeConfig, cache: Path, ckpt: Path, forged: Path) -> dict[str, Any]:
    """Held-out identities' forged clips: AUC of each family against the real copies."""
    from macbdf.checkpoint import load_model
    from macbdf_train.evaluate import load_cache_records, score_split

    model, _ = load_model(ckpt, cfg.device)
    recs = [r for r in load_cache_records(cache) if r.split == "test"]
    scored = score_split(model, cache, recs, device=cfg.device, progress=cfg.progress, desc="held-out forged")
    truth = _families_of(forged)
    rows = []
    for r, p in zip(scored.records, scored.p):
        rel = _rel(r.path, forged)
        t = truth.get(rel, {})
        fams = [f for f in (t.get("video_family"), t.get("audio_family")) if f]
        if len(fams) == 2:
            fams.append("fvfa_combination")
        if r.label == 1 and not fams:
            fams = ["unknown"]
        rows.append({"label": int(r.label), "p": float(p), "families": fams,
                     "has_audio": bool(t.get("has_audio", "no_audio" not in (r.flags or [])))})
    reals = [x for x in rows if x["label"] == 0]
    fams = sorted({f for x in rows for f in x["families"]})
    by_family = {}
    for fam in fams:
        fk = [x for x in rows if x["label"] == 1 and fam in x["families"]]
        by_family[fam] = _auc([0] * len(reals) + [1] * len(fk), [x["p"] for x in reals] + [x["p"] for x in fk])
    by_family["all"] = _auc([x["label"] for x in rows], [x["p"] for x in rows])
    audio = {}
    for name, keep in (("with_audio", True), ("silent", False)):
        sub = [x for x in rows if x["has_audio"] == keep]
        audio[name] = {"auc": _auc([x["label"] for x in sub], [x["p"] for x in sub]), "n": len(sub),
                       "n_fake": sum(x["label"] for x in sub)}
    counts = {fam: sum(1 for x in rows if fam in x["families"]) for fam in fams}
    return {"heldout_forged_auc": by_family, "heldout_forged_by_audio": audio, "n_heldout_forged": len(rows),
            "n_heldout_forged_real": len(reals), "family_counts": counts, "failures": len(scored.failures)}


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def silent_copy(src: Path, dst: Path) -> Path:
    """``dst``: the video stream of ``src`` copied packet by packet, no audio (no re-encode)."""
    import av

    from macbdf.filemode import atomic_write  # the one temp-file-then-replace convention

    with atomic_write(dst) as tmp, av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            out.mux(pkt)
    return dst


def _eval_media(cfg: RealRecipeConfig, reals: list[CorpusClip], split: dict[str, str], which: str) -> list[dict[str, Any]]:
    """The real originals of one split plus silent copies of those with audio (mp4 remux)."""
    out = Path(cfg.out) / "eval_media" / which
    items = []
    for c in reals:
        if split.get(c.identity) != which:
            continue
        items.append({"path": str(c.path), "label": 0, "method": "real", "identity": c.identity,
                      "has_audio": c.has_audio, "copy": False})
        if c.has_audio:
            dst = out / f"{c.path.stem}.silent.mp4"
            if not dst.is_file():
                try:
                    silent_copy(c.path, dst)
                except Exception as e:  # noqa: BLE001 - an odd container: leave the copy out, say so
                    print(f"note: no silent copy of {c.path.name}: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
            items.append({"path": str(dst), "label": 0, "method": "real (silent copy)", "identity": c.identity,
                          "has_audio": False, "copy": True})
    return items


def _score(det: Any, items: list[dict[str, Any]], desc: str, progress: bool) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    out = []
    for it in tqdm(items, desc=desc, unit="clip", disable=not progress or None, file=sys.stderr):
        r = det.detect(it["path"])
        p = r.p_fake if r.error is None and r.p_fake is not None and math.isfinite(r.p_fake) else None
        out.append({**it, "p_fake": p, "p_audio_fake": r.p_audio_fake, "p_video_fake": r.p_video_fake,
                    "verdict": r.verdict, "flags": list(r.flags), "error": r.error})
    return out


def _stage_calibrate(cfg: RealRecipeConfig, ckpt: Path, reals: list[CorpusClip], split: dict[str, str]) -> dict[str, Any]:
    from macbdf.calibration import calibrate_scores, calibration_brief, write_calibration
    from macbdf.detect import Detector
    from macbdf.modelcard import update_card

    items = _eval_media(cfg, reals, split, "val")
    forged = Path(cfg.out) / "forged"
    for c in _families_of(forged).values():  # the val identities' real segments as forge wrote them
        if c.get("split") == "val" and not c.get("video_label") and not c.get("audio_label"):
            items.append({"path": str(forged / c["file"]), "label": 0, "method": "real (forged copy)",
                          "identity": c.get("identity"), "has_audio": bool(c.get("has_audio")), "copy": True})
    det = Detector.from_pretrained(ckpt, device=cfg.device, threshold=0.5)
    scored = [s for s in _score(det, items, "calibrate (val reals)", cfg.progress) if s["p_fake"] is not None]
    rec = calibrate_scores([{"path": s["path"], "p_fake": s["p_fake"]} for s in scored], cfg.fpr)
    rec["source"] = ("val identities' real clips, silent copies of them and their re-encoded segments as forge "
                     "wrote them (never trained on)")
    rec = write_calibration(ckpt, rec)
    update_card(ckpt, calibration=calibration_brief(rec))
    return {"threshold": rec["threshold"], "n_clips": rec["n_clips"], "fpr_upper95": rec["fpr_upper95"],
            "val_threshold": det.meta.get("threshold")}


def _stage_real_deepfakes(cfg: RealRecipeConfig, ckpt: Path, clips: list[CorpusClip], reals: list[CorpusClip],
                          split: dict[str, str]) -> dict[str, Any]:
    from macbdf.detect import Detector

    det = Detector.from_pretrained(ckpt, device=cfg.device)      # the calibrated threshold
    held = _eval_media(cfg, reals, split, "test")
    fake_clips = [c for c in clips if c.label == "fake"]
    if cfg.max_real_deepfakes is not None:
        fake_clips = sorted(fake_clips, key=lambda c: c.path.stat().st_size)[: cfg.max_real_deepfakes]
    fakes = [{"path": str(c.path), "label": 1, "method": c.method, "identity": c.identity, "has_audio": c.has_audio,
              "copy": False} for c in fake_clips]
    rows = _score(det, held + fakes, "real deepfakes vs held-out reals", cfg.progress)
    ok = [r for r in rows if r["p_fake"] is not None]
    y, p = [r["label"] for r in ok], [r["p_fake"] for r in ok]
    by_method: dict[str, list[float]] = {}
    for r in ok:
        if r["label"] == 1:
            by_method.setdefault(r["method"], []).append(r["p_fake"])
    held_ok = [r for r in ok if r["label"] == 0]
    thr = det.threshold
    orig = {r["identity"] + "|" + Path(r["path"]).name.split(".")[0]: r for r in held_ok if not r["copy"]}
    shifts = []
    for r in held_ok:
        if r["copy"]:
            o = orig.get(r["identity"] + "|" + Path(r["path"]).name.split(".")[0])
            if o is not None:
                shifts.append(r["p_fake"] - o["p_fake"])
    sub = {}
    for name, keep in (("with_audio", True), ("without_audio", False)):
        s = [r for r in ok if r["has_audio"] == keep]
        sub[name] = {"auc": _auc([r["label"] for r in s], [r["p_fake"] for r in s]), "n_real": sum(1 for r in s if r["label"] == 0),
                     "n_fake": sum(1 for r in s if r["label"] == 1)}
    return {
        # the issue's figure: the corpus's real deepfakes vs the held-out identities' real clips as they are
        "real_deepfakes_auc": _auc([r["label"] for r in ok if not r["copy"]], [r["p_fake"] for r in ok if not r["copy"]]),
        # with silent copies of those real clips added: a model that leans on "no audio = real" scores higher
        # here than above, so the gap between the two is itself a shortcut check
        "real_deepfakes_auc_with_silent_copies": _auc(y, p),
        "real_deepfakes_by_audio": sub,
        "real_deepfakes_by_method": {m: round(float(np.mean(v)), 4) for m, v in sorted(by_method.items())},
        "real_fpr_at_threshold": round(sum(r["p_fake"] >= thr for r in held_ok) / max(1, len(held_ok)), 4),
        "real_fake_recall_at_threshold": round(sum(r["p_fake"] >= thr for r in ok if r["label"] == 1)
                                               / max(1, sum(r["label"] for r in ok)), 4),
        "silent_copy_shift": {"mean": round(float(np.mean(shifts)), 4) if shifts else None,
                              "mean_abs": round(float(np.mean(np.abs(shifts))), 4) if shifts else None, "n": len(shifts)},
        "n_heldout_real_clips": len(held_ok), "n_real_deepfakes": sum(1 for r in ok if r["label"] == 1),
        "threshold": thr,
        "failed": [{"path": r["path"], "error": r["error"] or r.get("verdict")} for r in rows if r["p_fake"] is None],
        "_rows": rows,
    }


# ----------------------------------------------------------------------------- the recipe
def run_real_recipe(cfg: RealRecipeConfig, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    """Run (or resume) the recipe; returns the report (also written to ``OUT/report.json``)."""
    from macbdf.modelcard import update_card
    from macbdf_train.demo import _rmtree, _Stages, _stage_checkpoint
    from macbdf_train.evaluate import write_json

    t0 = time.perf_counter()
    root = Path(cfg.real_root)
    if not root.is_dir():
        raise RecipeError(f"--real-root is not a folder: {cfg.real_root}")
    if not 0.0 <= cfg.fpr < 1.0:
        raise RecipeError(f"fpr must be in [0, 1), got {cfg.fpr}")
    clips = read_corpus(root, Path(cfg.manifest) if cfg.manifest else None)
    missing = [c for c in clips if not c.path.is_file()]
    if missing:
        raise RecipeError(f"{len(missing)} files named in the manifest are missing, e.g. {missing[0].path}")
    reals = [c for c in clips if c.label == "real"]
    if cfg.identities:
        reals = [c for c in reals if c.identity in set(cfg.identities)]
    if len({c.identity for c in reals}) < 3:
        raise RecipeError("need real clips of at least 3 identities (train, val and test)")
    # all clips: identities of the corpus's deepfakes are sent to test (see split_identities)
    split = split_identities(reals + [c for c in clips if c.label == "fake"], cfg.seed, cfg.split_ratios)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = settings_keys(cfg)
    key = keys["eval"]
    st = _Stages(out, log)
    forged, cache, run_dir, ck = out / "forged", out / "cache", out / "runs" / "macbdf", out / "checkpoint"
    # made with other settings: removed (they are the recipe's own folders), never resumed
    st.run("forge", lambda: _stage_forge(cfg, reals, split, forged), keys["data"], lambda: _rmtree(forged))
    prep = st.run("prepare", lambda: _stage_prepare(cfg, forged, cache), keys["data"], lambda: _rmtree(cache))
    train = st.run("train", lambda: _stage_train(cfg, cache, run_dir), keys["train"], lambda: _rmtree(run_dir))
    st.run("checkpoint", lambda: _stage_checkpoint(run_dir, ck, cfg.checkpoint), key, lambda: _rmtree(ck))
    ev = st.run("eval_forged", lambda: _stage_eval_forged(cfg, cache, ck, forged), key)
    cal = st.run("calibrate", lambda: _stage_calibrate(cfg, ck, reals, split), key)
    rd = st.run("real_deepfakes", lambda: _stage_real_deepfakes(cfg, ck, clips, reals, split), key)

    ids = {s: sorted(i for i, v in split.items() if v == s) for s in SPLITS}
    licences = sorted({c.licence for c in reals if split.get(c.identity) == "train" and c.licence})
    report: dict[str, Any] = {
        "preset": "real",
        "heldout_forged_auc": ev["heldout_forged_auc"],
        "heldout_forged_by_audio": ev["heldout_forged_by_audio"],
        "real_deepfakes_auc": rd["real_deepfakes_auc"],
        "real_deepfakes_auc_with_silent_copies": rd["real_deepfakes_auc_with_silent_copies"],
        "real_deepfakes_by_audio": rd["real_deepfakes_by_audio"],
        "real_deepfakes_by_method": rd["real_deepfakes_by_method"],
        "real_fpr_at_threshold": rd["real_fpr_at_threshold"],
        "real_fake_recall_at_threshold": rd["real_fake_recall_at_threshold"],
        "silent_copy_shift": rd["silent_copy_shift"],
        "threshold": rd["threshold"],
        "calibration": cal,
        "n_train_identities": len(ids["train"]),
        "n_val_identities": len(ids["val"]),
        "n_heldout_identities": len(ids["test"]),
        "identities": ids,
        "n_heldout_real_clips": rd["n_heldout_real_clips"],
        "n_real_deepfakes": rd["n_real_deepfakes"],
        "n_heldout_forged": ev["n_heldout_forged"],
        "family_counts_heldout": ev["family_counts"],
        "data": prep.get("data"),
        "train": {k: train.get(k) for k in ("steps", "train_s", "final_val_auc", "best_auc", "best_step") if k in train},
        "failed_eval_clips": rd["failed"],
        "checkpoint": str(ck),
        "settings": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"},
        "timings_s": dict(st.timings),
    }
    if not (ck / "model_card.json").is_file() or not st.done("card", key):
        figs = {k: report[k] for k in ("heldout_forged_auc", "real_deepfakes_auc", "real_deepfakes_by_method",
                                       "real_fpr_at_threshold", "heldout_forged_by_audio")}
        figs["measured_on"] = (f"{len(ids['test'])} held-out identities of {root.name} (forged clips; real originals and "
                               f"silent copies) and its {rd['n_real_deepfakes']} real deepfakes; seed {cfg.seed}")
        update_card(ck, recipe="real-footage", figures=figs, trained_on={
            "data": f"{root.name}: real talking-face clips of {len(ids['train'])} identities, forged with macbdf forge",
            "identities": {s: len(v) for s, v in ids.items()}, "train_identities": ids["train"],
            "forged_clips": (prep.get("data") or {}).get("splits"), "never_trained_on": "the corpus's real deepfakes",
            "forge_settings": {"segment_s": cfg.segment_s, "fakes_per_segment": cfg.fakes_per_segment,
                               "silent_fraction": cfg.silent_fraction, "seed": cfg.seed}},
            licences=licences or ["not stated"])
        st.record("card", {}, key, 0.0)
    report["wall_s"] = round(time.perf_counter() - t0, 2)
    write_json(report, out / "report.json")
    write_json({"rows": rd["_rows"]}, out / "real_deepfakes_scores.json")
    return report


def format_real_report(rep: dict[str, Any]) -> str:
    """The recipe's figures as a short text report."""
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    lines = [f"real-footage recipe: {rep['n_train_identities']} training identities, {rep['n_heldout_identities']} held out",
             "held-out forged clips, AUC per family (vs held-out real copies):"]
    for k, v in rep["heldout_forged_auc"].items():
        lines.append(f"  {k:<22} {f(v)}")
    a = rep["heldout_forged_by_audio"]
    lines.append(f"  among clips with audio {f(a['with_audio']['auc'])} (n={a['with_audio']['n']}), "
                 f"silent {f(a['silent']['auc'])} (n={a['silent']['n']})")
    lines.append(f"real deepfakes vs held-out real clips: AUC {f(rep['real_deepfakes_auc'])} "
                 f"({rep['n_real_deepfakes']} fakes; with silent copies of the reals added "
                 f"{f(rep.get('real_deepfakes_auc_with_silent_copies'))}, {rep['n_heldout_real_clips']} reals)")
    sh = rep.get("silent_copy_shift") or {}
    lines.append(f"  a silent copy moves a held-out real clip's p_fake by {f(sh.get('mean'))} on average (n={sh.get('n')}; "
                 "0 = the missing track carries no label)")
    for m, v in rep["real_deepfakes_by_method"].items():
        lines.append(f"  {m[:60]:<60} mean p_fake {f(v)}")
    lines.append(f"threshold {f(rep['threshold'])} (calibrated at FPR {rep['settings']['fpr']} on "
                 f"{rep['calibration']['n_clips']} val real clips): held-out reals called fake {f(rep['real_fpr_at_threshold'])}, "
                 f"real deepfakes caught {f(rep['real_fake_recall_at_threshold'])}")
    lines.append(f"checkpoint: {rep['checkpoint']} (model card beside it); wall {rep['wall_s']:.0f} s this invocation")
    lines.append(f"real_heldout_auc: {f(rep['real_deepfakes_auc'])}")
    return "\n".join(lines)
