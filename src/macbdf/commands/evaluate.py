"""Evaluate a trained checkpoint on a prepared cache with the paper's protocol.

Every sample of the chosen split is scored on its whole length (consecutive windows of the
model's frame count, probabilities averaged over windows weighted by real frames), then:

  sample level   ACC at 0.5 and at the best threshold found on the cache's val split,
                 AUC, AP, EER
  per category   RVRA / RVFA / FVRA / FVFA (a fake category's AUC is against all reals)
  per method     each manipulation method, same protocol
  per modality   the unimodal audio/video heads against each modality's own label
  frame level    pooled frame AUC (audio, video, any)
  localisation   AP@IoU 0.5/0.75/0.95 and AR@N from the frame scores, where the data has
                 fake periods (LAV-DF protocol; --loc-protocol lavdf reproduces the
                 reference code's numbers exactly)
  unseen methods methods of the split never seen in the cache's train split (synth's
                 held-out families), pooled against the reals

Benchmark submission files (no model run): --submission FILE --metadata META --format F scores
files in the benchmarks' own formats (`macbdf detect --av1m-cls/--av1m-loc/--lavdf-segments`, or
any other detector's) against the dataset's metadata with AV-Deepfake1M's metrics:
  av1m-cls   'file;score' lines vs AV-1M *_metadata.json (or LAV-DF metadata.json): AUC
  av1m-loc   {file: [[score, start_s, end_s], ...]}: AP@IoU 0.5/0.75/0.9/0.95, AR@50/30/20/10/5
  lavdf      a folder of <file>.csv (begin,end,score in frames): AP@0.5/0.75/0.95, AR@100/50/20/10

Cross-dataset (the paper's Table 3): evaluate a checkpoint trained on one cache on another,
normally with --split all --threshold-from checkpoint; the report flags it.

Examples:
  macbdf evaluate --checkpoint runs/a --data cache/synth --json runs/a/eval.json
  macbdf evaluate --checkpoint runs/a --data cache/synth --plots runs/a/plots
  macbdf evaluate --checkpoint runs/a --data cache/synth --bootstrap 1000   # with 95% CIs
  macbdf evaluate --checkpoint runs/dfdc --data cache/fakeavceleb --split all \\
      --threshold-from checkpoint --json cross.json
  macbdf evaluate --submission loc.json --metadata test_metadata.json --format av1m-loc --json loc_eval.json

Exit codes: 0 ok, 1 some samples could not be read (the rest are evaluated), 2 bad usage
or unusable checkpoint/cache.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", metavar="RUN_DIR",
                        help="checkpoint folder (config.json + model.safetensors), e.g. a training run's output")
    parser.add_argument("--data", metavar="CACHE_DIR", help="prepared cache (from `macbdf prepare`)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                        help="which split of the cache to evaluate (default: test; `all` for cross-dataset)")
    parser.add_argument("--json", metavar="OUT.json", help="write the full report as JSON here")
    parser.add_argument("--plots", metavar="DIR", help="write ROC, latent-space, timeline (and training-curve) plots here")
    parser.add_argument("--threshold-from", default="val", metavar="val|checkpoint|X",
                        help="tuned threshold: best accuracy on the cache's val split (default), the checkpoint's "
                             "stored threshold, or a number")
    parser.add_argument("--loc-protocol", default="standard", choices=["standard", "lavdf"],
                        help="temporal localisation AP/AR protocol (default standard; lavdf = reference code)")
    parser.add_argument("--aggregation", default="mean", choices=["mean", "max"],
                        help="clip probability from its windows: frame-weighted mean (default) or the most "
                             "suspicious window (catches short fake segments; same as `detect --aggregation`)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="add 95%% confidence intervals of AUC, AP, ACC@0.5 and ACC@thr from N percentile-bootstrap "
                             "resamplings of the clips (within class; e.g. 1000). Default 0 = none")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table (JSON only)")
    sub = parser.add_argument_group("benchmark submission files (instead of --checkpoint/--data)")
    sub.add_argument("--submission", metavar="FILE|DIR", help="a submission file (a folder for --format lavdf)")
    sub.add_argument("--metadata", metavar="META.json", help="AV-Deepfake1M *_metadata.json or LAV-DF metadata.json")
    sub.add_argument("--format", dest="sub_format", choices=["av1m-cls", "av1m-loc", "lavdf"],
                     help="the submission's format (see above)")
    sub.add_argument("--fps", type=float, default=25.0,
                     help="lavdf: frame rate where the metadata has no video_frames/duration (default 25)")


def _run_submission(args: argparse.Namespace) -> int:
    from macbdf.metrics import jsonable
    from macbdf.metrics.submission import SubmissionError, score_submission

    if not args.metadata or not args.sub_format:
        print("error: --submission needs --metadata and --format", file=sys.stderr)
        return 2
    if args.fps <= 0:
        print("error: --fps must be > 0", file=sys.stderr)
        return 2
    try:
        report = score_submission(args.submission, args.metadata, args.sub_format, fps=args.fps)
    except SubmissionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = json.dumps(jsonable(report), indent=2)
    if args.json:
        from macbdf.filemode import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    if not args.quiet or not args.json:
        print(text)
    return 1 if report["missing"] else 0


def run(args: argparse.Namespace) -> int:
    from macbdf_train.evaluate import EvaluationError, evaluate, format_report, write_json

    if args.submission:
        if args.checkpoint or args.data:
            print("error: --submission scores a file; do not combine it with --checkpoint/--data", file=sys.stderr)
            return 2
        if args.json and Path(args.json).is_dir():
            print(f"error: --json must be a file path, got a folder: {args.json}", file=sys.stderr)
            return 2
        return _run_submission(args)
    if not args.checkpoint or not args.data:
        print("error: give --checkpoint and --data (or --submission, --metadata and --format)", file=sys.stderr)
        return 2
    if args.json and Path(args.json).is_dir():
        print(f"error: --json must be a file path, got a folder: {args.json}", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    if args.bootstrap < 0:
        print("error: --bootstrap must be >= 0", file=sys.stderr)
        return 2
    thr = args.threshold_from
    if thr not in ("val", "checkpoint"):
        try:
            thr = float(thr)
        except ValueError:
            print(f"error: --threshold-from must be val, checkpoint or a number, got {thr!r}", file=sys.stderr)
            return 2
    try:
        report = evaluate(
            args.checkpoint, args.data, split=args.split, threshold_from=thr, plots_dir=args.plots,
            batch_size=args.batch_size, device=args.device, progress=not args.quiet,
            localization_protocol=args.loc_protocol, aggregation=args.aggregation,
            bootstrap=args.bootstrap, bootstrap_seed=args.bootstrap_seed,
        )
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        write_json(report, args.json)
    if not args.quiet:
        print(format_report(report))
        if args.json:
            print(f"\nreport written to {args.json}")
    elif not args.json:
        from macbdf.metrics import jsonable

        print(json.dumps(jsonable(report), indent=2))
    return 1 if report.get("failures") else 0
