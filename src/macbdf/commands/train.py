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
    # every flag but --json is a TrainConfig field: name, default, choices and help are written there once
    from macbdf_train.config import TrainConfig
    from macbdf_train.flags import add_flags

    add_flags(parser, TrainConfig, required=("data", "out"))
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from macbdf.checkpoint import CheckpointError
    from macbdf_train.config import TrainConfig, TrainError
    from macbdf_train.flags import values_from_args
    from macbdf_train.trainer import train

    try:
        settings = values_from_args(args, TrainConfig)
        settings["progress"] = settings["progress"] and sys.stderr.isatty()
        summary = train(TrainConfig.from_settings(**settings))
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
