"""Shortcut audit of a prepared cache: can metadata alone tell real from fake?

Reads CACHE (made by `macbdf prepare`) and, per clip, the leading and trailing silence and the
loudness of the cached audio (Eq. 1 log-mel), the duration, source frame rate, resolution, codec and
bitrate, and the face-track coverage and flags. Reports per feature the real and fake means, the
standardised difference (Cohen's d) and the single-feature AUC, then a metadata-only classifier
(logistic regression and gradient-boosted trees) with group-wise cross-validation (GroupKFold over
`identity`, over `video_id` where records have none): its pooled out-of-fold AUC says how much a
detector could learn from the metadata alone. Above 0.6 a WARNING line names the strongest features.

Leading silence is the known shortcut of FakeAVCeleb and AV-Deepfake1M (their fakes start silent):
prepare the cache again with `macbdf prepare --trim-leading-silence` and audit it to see the effect.

Examples:
  macbdf audit --data cache/synth
  macbdf audit --data cache/fakeavceleb --split train --json audit.json

Exit codes: 0 audited (with or without a warning), 2 bad usage or unreadable cache.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="CACHE_DIR", help="prepared cache (from `macbdf prepare`)")
    parser.add_argument("--split", default=None, choices=["train", "val", "test"],
                        help="audit only this split (default: every record)")
    parser.add_argument("--folds", type=int, default=5, help="GroupKFold folds of the metadata classifier (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment and the trees (default 0)")
    parser.add_argument("--permutations", type=int, default=10,
                        help="label permutations for the classifier's chance level (default 10; 0 = none)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="OUT.json",
                        help="JSON report: to OUT.json, or to stdout when no file is given")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from macbdf.data.audit import audit_cache, format_audit
    from macbdf.data.manifest import ManifestError
    from macbdf.data.cache import CacheError
    from macbdf.metrics import jsonable

    if args.folds < 2 or args.permutations < 0:
        print("error: --folds must be >= 2 and --permutations >= 0", file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(f"error: cache folder not found: {args.data}", file=sys.stderr)
        return 2
    if args.json not in (None, "-") and Path(args.json).is_dir():
        print(f"error: --json must be a file path, got a folder: {args.json}", file=sys.stderr)
        return 2
    try:
        report = audit_cache(args.data, split=args.split, folds=args.folds, seed=args.seed,
                             permutations=args.permutations)
    except (CacheError, ManifestError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    if report["n"] == 0:
        print(f"error: no labelled prepared clips in {args.data}" + (f" (split {args.split})" if args.split else ""),
              file=sys.stderr)
        return 2
    text = json.dumps(jsonable(report), indent=2)
    if args.json == "-":
        print(text)
        return 0
    if args.json:
        from macbdf.filemode import atomic_write_text

        atomic_write_text(args.json, text + "\n")
    print(format_audit(report))
    return 0
