"""Run the paper's ablation studies as one grid and write one Markdown + CSV table.

Each cell trains the same model on the same data with one change, then is evaluated on
the cache's test split (threshold tuned on val):

  full         the model as configured, OM-Pareto balancing       (Table 2, last row)
  wo_LC        without contrastive learning L_C                    (Table 2)
  wo_intra     without the intra-modal terms L_aa, L_vv            (Table 2)
  wo_cross     without the cross-modal terms L_av, L_va            (Table 2)
  wo_w         without the adaptive fusion weights w               (Table 2)
  depth_K      multi-scale depth K = 0, 2, 4, 6, 8                 (Fig. 5)
  pareto_off   plain summed loss instead of OM-Pareto              (Fig. 6-7)
  audio_only / video_only / concat   unimodal and concatenation baselines

--grid paper runs all of them; --grid quick runs full, wo_LC, pareto_off, depth_0 and the
three baselines; --cells picks any subset. The grid is resumable: finished cells (their
OUT/cells/<cell>/eval.json with the same settings) are skipped, a half-trained cell resumes.

Output: OUT/ablation.md and OUT/ablation.csv, headed by the data they were run on (cache
path, split and category counts, synth seed) and the settings; OUT/pareto_curves.png and
OUT/depth_sweep.png when those cells ran; per cell the run and eval.json under OUT/cells/.

Examples:
  macbdf ablate --data cache/synth --out runs/ablation --grid quick --steps 300
  macbdf ablate --data cache/synth --out runs/ablation --grid paper --model small --epochs 10
  macbdf ablate --data cache/synth --out runs/ablation --cells full,pareto_off --steps 200
  macbdf ablate --data cache/synth --out runs/abl3 --cells full,wo_LC,pareto_off --steps 120 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="CACHE_DIR", help="prepared cache with train/val/test splits (required)")
    parser.add_argument("--out", metavar="DIR", help="output folder: cells, tables, plots (required)")
    parser.add_argument("--grid", default="quick", choices=["paper", "quick"], help="which cells (default quick)")
    parser.add_argument("--cells", metavar="A,B,...", help="explicit comma-separated list of cells (overrides --grid)")
    # the training settings: flags, defaults and help derived from TrainConfig's fields
    from macbdf_train.config import TrainConfig
    from macbdf_train.flags import add_flags

    add_flags(parser, TrainConfig, ("model", "steps", "epochs", "batch_size", "seed"), exclusive=False,
              defaults={"batch_size": None},
              extra_help={"seed": "shared by every cell"})
    parser.add_argument("--seeds", metavar="A,B,...", type=seeds_arg,
                        help="run the grid once per training seed (OUT/seed_<k>) and add OUT/ablation_seeds.md/.json: "
                             "per cell the mean test AUC with a 95%% t-interval over seeds and a pooled clip-bootstrap "
                             "interval, the paired difference to `full`, and an effect claimed only where the "
                             "t-intervals separate; curves with bands (pareto_curves_bands.png) and the depth sweep "
                             "with error bars (depth_sweep_ci.png). Overrides --seed")
    add_flags(parser, TrainConfig, ("balancer", "lr", "warmup", "lr_scales"), defaults={"lr": None, "warmup": None},
              extra_help={"balancer": "every cell but pareto_off", "lr_scales": "in every cell that has them"})
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="evaluate each cell's best-validation checkpoint (default) or its final weights")
    add_flags(parser, TrainConfig, ("device",), defaults={"device": "cpu"})
    parser.add_argument("--json", action="store_true", help="print the table as JSON instead of Markdown")
    parser.add_argument("--list", action="store_true", help="list the cells and exit")


def parse_seeds(text: str | None) -> list[int] | None:
    """``--seeds 0,1,2`` -> [0, 1, 2]; None when not given; ValueError (one line) otherwise.

    Example:
        >>> parse_seeds("0, 1,2"), parse_seeds(None)
        ([0, 1, 2], None)
    """
    if text is None:
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds takes distinct integers like 0,1,2; got {text!r}")
    return seeds


def seeds_arg(text: str) -> list[int]:
    """argparse ``type=`` of ``--seeds`` (ablate and demo): a bad list is argparse's one-line usage error."""
    import argparse

    try:
        return parse_seeds(text) or []
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from macbdf_train.ablate import CELLS, GRIDS, AblationError, run_grid, run_grid_seeds
    from macbdf_train.evaluate import EvaluationError

    if args.list:
        for name, spec in CELLS.items():
            grids = ",".join(g for g, cells in GRIDS.items() if name in cells)
            print(f"{name:12s} {spec['desc']}  [{grids}]")
        return 0
    if not args.data or not args.out:
        print("error: --data and --out are required (or --list)", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1 or args.epochs is not None and args.epochs < 1:
        print("error: --steps/--epochs must be >= 1", file=sys.stderr)
        return 2
    cells = [c.strip() for c in args.cells.split(",") if c.strip()] if args.cells else None
    seeds = args.seeds
    from macbdf_train.config import TrainConfig, TrainError
    from macbdf_train.flags import values_from_args

    try:
        extra = values_from_args(args, TrainConfig, ("lr", "warmup", "lr_scales"), drop_none=True)
    except TrainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    common = dict(grid=args.grid, cells=cells, model=args.model, steps=args.steps, epochs=args.epochs,
                  batch_size=args.batch_size, balancer=args.balancer, device=args.device, progress=not args.json,
                  checkpoint=args.checkpoint, extra_train=extra)
    try:
        if seeds:
            table = run_grid_seeds(args.data, args.out, seeds, **common)
        else:
            table = run_grid(args.data, args.out, seed=args.seed, **common)
    except (AblationError, EvaluationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        from macbdf.metrics import jsonable

        print(json.dumps(jsonable({k: v for k, v in table.items() if k != "markdown"}), indent=2))
    else:
        print(table["markdown"])
    if seeds:
        failed = [(c, v["per_seed"]["auc"]) for c, v in table["cells"].items() if any(x is None for x in v["per_seed"]["auc"])]
        for c, _ in failed:
            print(f"cell {c}: failed or undefined in some seed (see OUT/seed_<k>/ablation.md)", file=sys.stderr)
        return 1 if failed else 0
    failed = [r for r in table["rows"] if str(r.get("status", "")).startswith("failed")]
    for r in failed:
        print(f"cell {r['cell']}: {r['status']}", file=sys.stderr)
    return 1 if failed else 0
