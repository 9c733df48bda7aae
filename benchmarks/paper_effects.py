"""The paper's effects with statistics: Table 2 rows, the depth sweep (Fig. 5) and OM-Pareto on/off
training curves (Fig. 6-7), each cell over several training seeds, with 95 % intervals.

Cells (`macbdf ablate`'s names): ``table2`` = full, wo_LC, wo_intra, wo_cross, wo_w; ``depth`` =
depth_0, depth_2, depth_4, depth_6; ``pareto`` = full, pareto_off. Every cell is trained once per seed
in ``--seeds`` on the same prepared data (the seed is the training seed: initialisation, batch order,
augmentation), evaluated once on the identity-disjoint test split (threshold tuned on val), and
summarised by `macbdf_train.ablate.run_grid_seeds`: mean test AUC with a Student-t interval over seeds
and a pooled clip-bootstrap interval, the paired difference to ``full``, and an effect **claimed only
where the cell's t-interval and full's do not overlap**. Curves: train loss and val AUC per step, mean
and 95 % t band over seeds (``pareto_curves_bands.png``); the depth sweep with error bars
(``depth_sweep_ci.png``).

Data: ``--data CACHE`` (a prepared cache with train/val/test), or, without it, ``--clips N`` synthetic
clips (FakeAVCeleb layout, one identity per 4 clips, seed ``--data-seed``) generated and prepared under
``OUT/data``. Writes only under ``--out`` (never benchmarks/RESULTS.md).

CPU budget (the 2-core machine; an hour or more for the full set at 120 steps):
    python benchmarks/paper_effects.py --out /tmp/effects --clips 160 --steps 120 --seeds 0,1,2 \
        --cells full,wo_LC,pareto_off,depth_0
On a GPU, the paper-size config (``base``, ms_depth 6, more steps):
    python benchmarks/paper_effects.py --out runs/effects --clips 960 --steps 2000 --seeds 0,1,2 \
        --model base --batch-size 32 --lr 1e-3 --device cuda

The defaults follow the demo's training settings (lr 3e-3, 20 % warm-up, video encoder at 0.33 of
the lr, final weights); note these were tuned on the full model only (benchmarks/RESULTS.md ## protocol).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

GROUPS = {
    "table2": ("full", "wo_LC", "wo_intra", "wo_cross", "wo_w"),
    "depth": ("depth_0", "depth_2", "depth_4", "depth_6"),
    "pareto": ("full", "pareto_off"),
}


def parse_cells(spec: str) -> list[str]:
    """``table2,depth`` or explicit cell names (mixable) -> ordered unique cell names."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        for c in GROUPS.get(part, (part,)):
            if c not in out:
                out.append(c)
    return out


def make_data(out: Path, clips: int, seed: int, workers: int) -> Path:
    """Generate and prepare ``clips`` synthetic clips under ``out``; returns the cache (resumable)."""
    from macbdf.cli import main as cli_main
    from macbdf.synth import generate
    from macbdf_train.demo import synth_manifest

    synth_dir, cache = out / "synth", out / "cache"
    if not (synth_dir / "synth_info.json").is_file():
        generate(synth_dir, "fakeavceleb", clips, seed, workers=workers, num_identities=max(40, -(-clips // 4)))
    if not (cache / "manifest.jsonl").is_file() or not (cache / "cache_config.json").is_file():
        man = out / "synth_manifest.jsonl"
        synth_manifest(synth_dir, man, seed)
        rc = cli_main(["prepare", "--dataset", "manifest", "--root", str(man), "--out", str(cache),
                       "--workers", str(workers)])
        if rc not in (0, 1):
            raise SystemExit(f"error: prepare failed with exit code {rc}")
    return cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (everything is written under it)")
    ap.add_argument("--data", help="prepared cache; default: generate --clips synthetic clips under OUT/data")
    ap.add_argument("--clips", type=int, default=160, help="synthetic clips when --data is not given (default 160)")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the generated data (default 0)")
    ap.add_argument("--cells", default="table2,depth,pareto",
                    help="cell groups (table2, depth, pareto) and/or `macbdf ablate` cell names (default all three groups)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds, >= 3 for an interval worth the name (default 0,1,2)")
    ap.add_argument("--steps", type=int, default=120, help="training steps per cell and seed (default 120)")
    ap.add_argument("--model", default="small", help="model config (default small; `base` on a GPU)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--video-lr-scale", type=float, default=0.33, help="lr multiplier of the video encoder (default 0.33)")
    ap.add_argument("--checkpoint", choices=("final", "best"), default="final")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2, help="processes for synth / prepare")
    args = ap.parse_args(argv)

    from macbdf_train.ablate import CELLS, AblationError, run_grid_seeds

    cells = parse_cells(args.cells)
    bad = [c for c in cells if c not in CELLS]
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if bad or not seeds or len(set(seeds)) != len(seeds) or args.steps < 1:
        print(f"error: unknown cells {bad} or bad --seeds/--steps (cells: {', '.join(CELLS)})", file=sys.stderr)
        return 2
    if "full" not in cells:
        cells.insert(0, "full")   # the reference of every effect
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = Path(args.data) if args.data else make_data(out / "data", args.clips, args.data_seed, args.workers)
    t_data = time.perf_counter() - t0
    extra = {"lr": args.lr, "warmup": args.warmup}
    if args.video_lr_scale != 1.0:
        extra["lr_scales"] = {"video_encoder": args.video_lr_scale}
    try:
        summary = run_grid_seeds(data, out / "grid", seeds, cells=cells, model=args.model, steps=args.steps,
                                 batch_size=args.batch_size, device=args.device, progress=False,
                                 checkpoint=args.checkpoint, extra_train=extra)
    except AblationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    print(summary["markdown"])
    for name, e in summary["effects"].items():
        print(f"{name}: {e['claim']}")
    print(f"plots: {', '.join(summary.get('plots', {}).values()) or 'none'}")
    print(f"wall: {wall:.0f} s (data {t_data:.0f} s); tables: {out / 'grid' / 'ablation_seeds.md'}")
    meta = {"argv": sys.argv[1:] if argv is None else argv, "wall_s": round(wall, 1), "data_s": round(t_data, 1),
            "data": str(data)}
    from macbdf.filemode import atomic_write_text

    atomic_write_text(out / "paper_effects_run.json", json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
