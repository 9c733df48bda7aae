"""Set a checkpoint's decision threshold from your own real clips, at a chosen false-positive rate.

A model scores footage from a new camera, codec or population on its own scale: the threshold
chosen on its training data's validation split may call many of your real videos fake. Give
`calibrate` clips you know to be real (files, folders searched recursively, or --list files), and
it scores them and stores the threshold at which at most --fpr of them would be called fake in
DIR/calibration.json. `macbdf detect`, `Detector.from_pretrained` and `macbdf serve` then use it
(an explicit --threshold still wins), and the model card records it.

What you see: how many clips were scored, how many are called fake at the new threshold, and the
exact 95 % upper bound on the false-positive rate those clips can vouch for (with 20 clips and none
called fake, the rate may still be up to ~14 %). Use clips like the ones you will screen (same
sources, cameras, compression); the more, the tighter. Clips that cannot be scored (unreadable, or
an abstention) are listed and left out. A previous calibration is kept in the file's history.

Exit code: 0 calibrated, 1 calibrated but some clips failed, 2 usage error or nothing scorable.

Examples:
  macbdf calibrate --checkpoint demo_real/checkpoint --real my_real_clips/ --fpr 0.05
  macbdf calibrate --checkpoint ckpt --real a.mp4 b.mp4 --list more.txt --fpr 0.01 --json cal.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory to calibrate")
    parser.add_argument("--real", nargs="*", default=[], metavar="PATH",
                        help="known-real video files or folders (searched recursively)")
    parser.add_argument("--list", dest="list_files", action="append", default=[], metavar="FILE",
                        help="text file with one known-real path per line (may be given several times)")
    parser.add_argument("--fpr", type=float, default=0.05,
                        help="target false-positive rate: share of real clips allowed to be called fake (default 0.05)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dry-run", action="store_true", help="score and report, but do not store the threshold")
    parser.add_argument("--json", dest="json_out", metavar="OUT.json", help="also write the calibration record here ('-' = stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _usage(msg: str) -> int:
    print(f"macbdf calibrate: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from macbdf.commands.detect import collect_inputs

    if not math.isfinite(args.fpr) or not 0.0 <= args.fpr < 1.0:
        return _usage(f"--fpr must be in [0, 1), got {args.fpr}")
    inputs, problems = collect_inputs(args.real, args.list_files)
    if problems:
        return _usage(problems[0])
    if not inputs:
        return _usage("no real clips given (use --real PATH... or --list FILE)")
    ckpt = Path(args.checkpoint)
    if not (ckpt / "config.json").is_file() or not (ckpt / "model.safetensors").is_file():
        return _usage(f"not a checkpoint directory (needs config.json and model.safetensors): {args.checkpoint}")

    from tqdm.auto import tqdm

    from macbdf.calibration import CalibrationError, calibrate_scores, calibration_brief, write_calibration
    from macbdf.detect import Detector

    try:
        # the threshold is irrelevant while scoring: only p_fake is used
        det = Detector.from_pretrained(ckpt, device=args.device, threshold=0.5)
    except Exception as e:  # noqa: BLE001 - a corrupt checkpoint is a usage problem, not a traceback
        return _usage(f"cannot load checkpoint {args.checkpoint}: {' '.join(str(e).split())}")
    scored, failed = [], []
    for p in tqdm(inputs, desc="calibrate", unit="clip", disable=args.quiet or None, file=sys.stderr):
        r = det.detect(p)
        if r.error or r.p_fake is None or r.verdict == "abstain" or not math.isfinite(r.p_fake):
            reason = r.error or getattr(r, "abstain_reason", None) or "no score"
            failed.append({"path": str(p), "reason": reason})
            tqdm.write(f"{p}: skipped: {reason}", file=sys.stderr)
        else:
            scored.append({"path": str(p), "p_fake": float(r.p_fake)})
    try:
        rec = calibrate_scores(scored, args.fpr)
    except CalibrationError as e:
        return _usage(str(e))
    rec["failed"] = failed
    prev = det.threshold if det.meta.get("calibration") is None else det.meta["calibration"]["threshold"]
    rec["previous_threshold"] = prev
    if not args.dry_run:
        rec = write_calibration(ckpt, rec)
        from macbdf.modelcard import read_card, update_card

        if read_card(ckpt, check_hash=False).get("present"):
            update_card(ckpt, calibration=calibration_brief(rec))
    print(f"calibrated on {rec['n_clips']} real clips ({len(failed)} skipped): threshold {rec['threshold']:.4f} "
          f"(was {prev:.4f}); {rec['n_called_fake']} of {rec['n_clips']} called fake ({rec['fpr_on_clips']:.1%}), "
          f"95% upper bound on the false-positive rate {rec['fpr_upper95']:.1%}"
          + ("" if not args.dry_run else " [dry run: not stored]"), file=sys.stderr)
    if rec.get("warning"):
        print(f"warning: {rec['warning']}", file=sys.stderr)
    if args.json_out:
        text = json.dumps(rec, indent=1, allow_nan=False)
        if args.json_out == "-":
            print(text)
        else:
            from macbdf.filemode import atomic_write_text

            atomic_write_text(args.json_out, text + "\n")
    return 1 if failed else 0
