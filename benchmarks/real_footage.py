"""Real footage: train on forged real clips, score held-out speakers and real deepfakes of unseen methods.

Runs the real-footage recipe (`macbdf demo --preset real`, src/macbdf_train/real_recipe.py) on a
corpus folder with a MANIFEST.csv (default: ../shared/realcorpus next to the repository), then
prints its figures: held-out forged AUC per family, the corpus's real deepfakes vs held-out real
clips (and silent copies of them), the share of held-out real clips called fake at the threshold
calibrated on the validation identities' real clips, and the wall time. Several seeds give a mean
and a 95 % t-interval over seeds.

It prints; it writes only under --out (default: a temporary folder), never into RESULTS.md.

Usage:
    python benchmarks/real_footage.py [--real-root DIR] [--out DIR] [--seeds 0] [--steps N]
Last line: ``real_heldout_auc: X`` (the mean over seeds of the real-deepfake AUC).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _t_interval(xs: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval half-width over seeds (scipy-free: t quantiles for small n)."""
    t975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, float("nan"), float("nan")
    half = t975.get(len(xs) - 1, 1.96) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - half, m + half


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real-root", default=str(REPO.parent / "shared" / "realcorpus"))
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (split, forging and training)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    root = Path(args.real_root)
    if not (root / "MANIFEST.csv").is_file():
        print(f"no corpus at {root} (needs MANIFEST.csv); pass --real-root", file=sys.stderr)
        return 2
    from macbdf_train.real_recipe import RealRecipeConfig, format_real_report, run_real_recipe

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="macbdf_real_"))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    reps = []
    for seed in seeds:
        kw = {"steps": args.steps} if args.steps else {}
        cfg = RealRecipeConfig(real_root=str(root), out=str(out / f"seed{seed}"), seed=seed, workers=args.workers,
                               progress=False, **kw)
        t0 = time.perf_counter()
        rep = run_real_recipe(cfg)
        rep["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        reps.append(rep)
        print(f"== seed {seed} ({rep['bench_wall_s']:.0f} s) ==")
        print("\n".join(format_real_report(rep).splitlines()[:-1]))
    if len(reps) > 1:
        print("== over seeds: mean [95 % t-interval] ==")
        keys = sorted({k for r in reps for k in r["heldout_forged_auc"]})
        for k in keys:
            xs = [r["heldout_forged_auc"].get(k) for r in reps]
            xs = [x for x in xs if x is not None]
            if xs:
                m, lo, hi = _t_interval(xs)
                print(f"heldout_forged_auc[{k}]: {m:.3f} [{lo:.3f}, {hi:.3f}]")
        for k in ("real_deepfakes_auc", "real_fpr_at_threshold", "bench_wall_s"):
            xs = [r[k] for r in reps if r.get(k) is not None]
            if xs:
                m, lo, hi = _t_interval(xs)
                print(f"{k}: {m:.3f} [{lo:.3f}, {hi:.3f}]")
    print(json.dumps({"out": str(out), "seeds": seeds}))
    vals = [r["real_deepfakes_auc"] for r in reps if r.get("real_deepfakes_auc") is not None]
    print(f"real_heldout_auc: {statistics.fmean(vals):.4f}" if vals else "real_heldout_auc: nan")
    return 0


if __name__ == "__main__":
    sys.exit(main())
