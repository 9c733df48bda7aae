"""Train a MACB-DF model on a prepared cache (one process, or many with torchrun/DDP).

Reads CACHE_DIR (made by `macbdf prepare`): the `train` split for training, the `val` split for
validation (AUC, accuracy, the calibrated best-accuracy threshold, best checkpoint). Optimiser:
AdamW with linear warm-up and cosine decay, gradient clipping; OM-Pareto gradient balancing
(paper §3.5) or the plain summed loss (--balancer sum). fp32 by default; bf16/fp16 autocast on GPU
(fp16 with loss scaling); a step whose loss or gradient is not finite is skipped and logged.

Writes into RUN_DIR:
  model.safetensors, config.json   final model; config.json holds the model config and `threshold`
  best/                            the checkpoint with the best validation AUC (use it for detect/evaluate)
  train_state.pt                   optimizer/scheduler/RNG/data position for --resume
  metrics.jsonl                    one JSON record per line (kind: train, val, epoch, skip)
  tb/                              TensorBoard event files (tensorboard --logdir RUN_DIR/tb)
  summary.json                     final figures (also printed; --json prints it as JSON)

An existing RUN_DIR is never overwritten: continue it with --resume (exact on CPU: a run killed at
any point and resumed ends with the same weights and metrics as an uninterrupted one), or choose
another --out. --set changes model config fields (see `macbdf models --json`), for ablations.

Multi-GPU / multi-node: launch the same command under torchrun, e.g.
  torchrun --standalone --nproc_per_node 4 -m macbdf train --data cache --model base --out runs/b
(CPU processes use the gloo backend). --batch-size is per process. Resuming a multi-process run
needs the same number of processes and, across machines, RUN_DIR on a shared file system.

Examples:
  macbdf train --data cache --model small --out runs/small --epochs 20
  macbdf train --data cache --model tiny --out runs/t --steps 200 --balancer sum --set ms_depth=4
  macbdf train --data cache --model small --out runs/small --resume
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from macbdf.optim.pareto import DEFAULT_KAPPA, DEFAULT_LAM0, DEFAULT_UNIMODAL, UNIMODAL_GROUPINGS

    parser.add_argument("--data", required=True, metavar="CACHE_DIR", help="prepared cache (from `macbdf prepare`)")
    parser.add_argument("--model", default="small", metavar="NAME", help="named model config (tiny, small, base, ...; default small)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoints, logs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=None, help="passes over the training split (default 10)")
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (instead of --epochs)")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step per process (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay on matrices (default 0.05)")
    parser.add_argument("--warmup", type=float, default=0.05,
                        help="warm-up: a fraction of all steps if < 1, else a number of steps (default 0.05)")
    parser.add_argument("--clip-grad", type=float, default=1.0, help="max gradient norm; 0 disables (default 1.0)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="fp32 (default); bf16/fp16 autocast on GPU (fp16 needs CUDA)")
    parser.add_argument("--balancer", choices=("ompareto", "sum"), default="ompareto",
                        help="OM-Pareto gradient balancing (paper §3.5) or the plain summed loss")
    parser.add_argument("--lam0", type=float, default=DEFAULT_LAM0, help=f"OM-Pareto λ0 of Eq. 23 (default {DEFAULT_LAM0})")
    parser.add_argument("--kappa", type=float, default=DEFAULT_KAPPA, help=f"OM-Pareto κ of Eq. 23 (default {DEFAULT_KAPPA})")
    parser.add_argument("--pareto-unimodal", choices=tuple(UNIMODAL_GROUPINGS), default=DEFAULT_UNIMODAL,
                        help="OM-Pareto's unimodal objectives per encoder: the unimodal sample losses of Eq. 19 "
                             "(default: those heads read only their own encoder; the frame heads read the fused "
                             "multi-scale maps, so their losses count as multimodal) or sample + frame losses")
    parser.add_argument("--lr-scale", dest="lr_scales", action="append", default=[], metavar="PREFIX=X",
                        help="learning-rate multiplier for the model parameters whose name starts with PREFIX, "
                             "repeatable (e.g. --lr-scale video_encoder=0.33)")
    parser.add_argument("--augment", default="none", metavar="OPS",
                        help="training augmentation, comma-separated: flip (mirror the window), color (one "
                             "brightness/contrast change per window), gain (+-6 dB loudness); default none")
    parser.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                        help="keep an exponential moving average of the weights with this decay (e.g. 0.99) and "
                             "validate/save the averaged weights; 0 = off (default)")
    parser.add_argument("--balance", choices=("none", "label"), default="none",
                        help="label: repeat the authentic training samples in every epoch so that real and fake "
                             "windows are about equally frequent (default none: each sample once per epoch)")
    parser.add_argument("--eval-every", type=int, default=0, help="validate every N steps; 0 = every epoch (default)")
    parser.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps; 0 = every epoch (default)")
    parser.add_argument("--log-every", type=int, default=10, help="write a train record every N steps (default 10)")
    parser.add_argument("--max-skip-fraction", type=float, default=0.25, metavar="F",
                        help="fail (exit 1) when more than this share of the steps is skipped (non-finite loss, "
                             "batches without 2 usable samples; default 0.25)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="data-loading worker processes (default 0)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--train-split", default="train", help="split to train on (default train)")
    parser.add_argument("--val-split", default="val", help="split to validate on (default val)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="model config override, repeatable (e.g. --set ms_depth=4 --set use_contrastive=false)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def parse_lr_scales(items: list[str]) -> dict[str, float]:
    """``["video_encoder=0.33"]`` -> ``{"video_encoder": 0.33}``; ValueError with a one-line message otherwise."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, val = item.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise ValueError(f"--lr-scale takes PREFIX=NUMBER, got {item!r}")
        if not (out[key.strip()] > 0 and out[key.strip()] != float("inf")):
            raise ValueError(f"--lr-scale multipliers must be > 0 and finite, got {item!r}")
    return out


def run(args: argparse.Namespace) -> int:
    from macbdf.checkpoint import CheckpointError
    from macbdf_train.trainer import TrainConfig, TrainError, parse_overrides, train

    try:
        try:
            lr_scales = parse_lr_scales(args.lr_scales)
        except ValueError as e:
            raise TrainError(str(e)) from None
        cfg = TrainConfig(
            data=args.data, out=args.out, model=args.model, resume=args.resume, epochs=args.epochs,
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            warmup=args.warmup, clip_grad=args.clip_grad, precision=args.precision, balancer=args.balancer,
            lam0=args.lam0, kappa=args.kappa, pareto_unimodal=args.pareto_unimodal, balance=args.balance,
            lr_scales=lr_scales, augment=args.augment, ema=args.ema, max_skip_fraction=args.max_skip_fraction,
            eval_every=args.eval_every, save_every=args.save_every,
            log_every=args.log_every, seed=args.seed, workers=args.workers, device=args.device,
            train_split=args.train_split, val_split=args.val_split, overrides=parse_overrides(args.overrides),
            progress=not args.no_progress and sys.stderr.isatty(), tensorboard=not args.no_tensorboard,
        )
        summary = train(cfg)
    except (TrainError, CheckpointError) as e:
        msg = str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 1 if msg.startswith(("training diverged", "training failed")) else 2
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        fv = summary.get("final_val") or {}

        def f(x: object) -> str:
            return f"{x:.4f}" if isinstance(x, float) else ("n/a" if x is None else str(x))

        print(f"trained {summary['model']} for {summary['steps']} steps ({summary['epochs']:.2f} epochs, "
              f"{summary['world_size']} process(es), balancer {summary['balancer']}) in {summary['train_time_s']:.1f} s")
        print(f"val AUC {f(fv.get('auc'))}  ACC@0.5 {f(fv.get('acc'))}  ACC@thr {f(fv.get('acc_thr'))}  "
              f"threshold {f(summary['threshold'])}  best AUC {f(summary['best_val_auc'])} at step {summary['best_step']}")
        if summary["skipped_steps"]:
            print(f"skipped {summary['skipped_steps']} non-finite steps (see metrics.jsonl)")
        print(f"checkpoints: {summary['run_dir']} (final), {summary['run_dir']}/best (best val AUC)")
    return 0
