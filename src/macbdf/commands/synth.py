"""Generate the synthetic audio-visual deepfake benchmark as real MP4 files (H.264 + AAC, 25 fps,
16 kHz mono) in the FakeAVCeleb or LAV-DF layout, so `macbdf prepare --dataset fakeavceleb|lavdf`
reads it like the real datasets.

Each clip is a procedural talking head (60+ identities: face geometry, skin/hair/eye colours,
backgrounds, head motion, blinks, lighting) speaking procedural speech (source-filter synthesis
with per-speaker pitch and formants, CV syllables, pauses, jitter/shimmer, breaths); the mouth
follows the syllables. Clips come in blocks of four sharing one person and utterance: the real
clip (RVRA) and fakes made from it (RVFA, FVRA, FVFA). Manipulation families:
  video: faceswap (donor face, blend seam, colour mismatch), lipsync (mouth driven by another
         utterance), gan (face-region upsampling / blur / flicker / checkerboard)
  audio: voiceconv (pitch/formant conversion + vocoder artefacts), tts (flat prosody, regular
         timing), splice (another speaker's segment inserted), audioswap (another real utterance
         of the same voice)
Artefact strengths are randomised per clip; some fakes (lipsync with no visual trace, audioswap)
are only detectable across modalities. Splits are identity-disjoint (train/val/test; LAV-DF
spells val "dev"); synth_info.json records seed, families, identity splits and per-clip truth.

Examples:
  macbdf synth data/synth_favc --layout fakeavceleb --num-clips 200 --seed 0 --workers 2
  macbdf synth data/synth_lavdf --layout lavdf --num-clips 300 --seed 1 --holdout-families faceswap,tts

Rerunning the same command on a partly written folder resumes it; a non-empty folder that is not
a synth output of the same settings is refused.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _duration_range(text: str) -> tuple[float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}")
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from macbdf.synth.plan import FAMILIES, LAYOUTS

    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder (new, empty, or a previous synth run to resume)")
    parser.add_argument("--layout", required=True, choices=LAYOUTS, help="dataset layout to write")
    parser.add_argument("--num-clips", type=int, required=True, help="number of clips (multiples of 4 keep categories balanced)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same metadata and labels (default 0)")
    parser.add_argument("--duration-range", type=_duration_range, default=(2.0, 4.0), metavar="MIN,MAX",
                        help="clip duration range in seconds (default 2,4)")
    parser.add_argument("--size", type=int, default=160, help="frame size in pixels, square and even (default 160)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="worker processes (default: CPU cores, at most 4)")
    parser.add_argument("--holdout-families", default="", metavar="A,B",
                        help=f"families kept out of train/val (only in test), from: {','.join(FAMILIES)}")
    parser.add_argument("--partial-ratio", type=float, default=None,
                        help="share of fakes manipulated only in segments (default: 0 for fakeavceleb, 0.8 for lavdf)")
    parser.add_argument("--identities", type=int, default=None, help="identity pool size (default max(60, blocks/2))")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from macbdf.synth.generate import SynthError, synthesize

    try:
        report = synthesize(
            args.out_dir, args.layout, args.num_clips, args.seed,
            duration_range=args.duration_range, size=args.size, workers=args.workers,
            holdout_families=args.holdout_families or None, partial_ratio=args.partial_ratio,
            num_identities=args.identities, progress=not (args.quiet or args.json),
        )
    except SynthError as e:
        print(f"macbdf synth: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        c = report.counts
        print(f"{report.out_dir}: {report.total - len(report.failed)} clips ({report.written} written, "
              f"{report.resumed} already there) in {report.seconds:.1f} s, {report.clips_per_s:.2f} clips/s")
        print("  categories: " + ", ".join(f"{k} {v}" for k, v in sorted(c.get("category", {}).items())))
        print("  splits:     " + ", ".join(f"{k} {v}" for k, v in sorted(c.get("split", {}).items())))
        for f in report.failed:
            print(f"  FAILED {f['file']}: {f['reason']}", file=sys.stderr)
    return 1 if report.failed else 0
