"""Make a labelled audio-visual deepfake dataset from real talking-face clips, in the LAV-DF
(default) or FakeAVCeleb layout, so `macbdf prepare --dataset lavdf|fakeavceleb` reads it.

Input: a folder of real clips (each file its own identity, its stem), or a manifest CSV with
columns file, label, identity[, has_audio, audio_content] (only label == real rows are used;
`file` relative to the manifest's folder or --root). Identities are split train/val/test
(--split-file or a seeded identity-disjoint --split-ratios); donors (another speaker's voice,
another face) come only from the same split, so held-out identities never leak into training.

Each source is cut into --segment-s segments; each segment gives its real copy plus
--fakes-per-segment fakes of distinct families (seeded, balanced over the dataset):
  video  self_blend     the same face, colour/geometry-jittered, blended back through a landmark hull
                        mask with a randomly eroded/dilated feathered edge (Self-Blended Images)
         mouth_retime   the mouth taken from frames 0.3-1 s away in the same clip, so the lips stop
                        following the audio (a stretch or the whole clip)
         face_swap      another identity's face, landmark-aligned, colour-matched (LAB), blended
  audio  audio_swap     another speaker's speech
         audio_same_speaker  the same speaker's other words (another segment of that identity)
         av_offset      the clip's audio 0.2-1.0 s late or early (gap filled from the rest of the clip)
         audio_splice   a 0.5-1.5 s stretch replaced from another speaker or elsewhere in the clip
                        (a partial fake: periods mark the stretch)
         voice_change   WORLD vocoder: F0 shift (2-6 semitones) and spectral-envelope warp
         time_stretch   WORLD re-synthesis at 0.85-0.94 or 1.06-1.15 x speed, cut to the segment
  both   fvfa           one video family + one audio family on the same clip
Every fake carries per-modality labels and per-frame fake periods. Clips are face crops
(--crop-scale x the tracked face box, --crop-size pixels) at 25 fps with 16 kHz audio; real
copies and fakes go through the same re-encode and loudness normalisation. Silent sources, and
--silent-fraction of the real copies and video-only fakes of speech sources, are written without
an audio track. forge_info.json records settings, identity splits and every clip's source,
segment, families, donor, parameters, labels and periods; failures.jsonl lists skipped
sources/segments (undecodable, too short, no face in most frames).

Watching the fakes: the clips are ordinary MP4 files; look a clip up in forge_info.json ("clips":
file, method, video_periods, audio_periods) or use --layout fakeavceleb, whose folders name the
category. Rerunning the same command resumes (finished clips are kept); the same command writes
byte-identical files with any --workers. Exit status: 0 all sources used, 1 some sources or
segments skipped (see failures.jsonl) or nothing forged, 2 bad usage.

Examples:
  macbdf forge --root ../shared/realcorpus --manifest ../shared/realcorpus/MANIFEST.csv --out data/forged --workers 2
  macbdf forge --root my_clips/ --out data/my_forged --layout fakeavceleb --fakes-per-segment 4
"""
from __future__ import annotations

import argparse
import json
import sys


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN,VAL,TEST fractions, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative fractions TRAIN,VAL,TEST, got {text!r}")
    return parts[0], parts[1], parts[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from macbdf.forge import FAMILIES

    parser.add_argument("--root", required=True, help="folder of real clips (or the folder the manifest's files are relative to)")
    parser.add_argument("--manifest", default=None, metavar="CSV",
                        help="CSV with file,label,identity[,has_audio,audio_content]; only label == real rows are used")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or a previous forge run to resume)")
    parser.add_argument("--layout", default="lavdf", choices=("lavdf", "fakeavceleb"),
                        help="dataset layout (default lavdf: it carries splits and fake periods)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--identities", default=None, metavar="A,B", help="only these identities")
    parser.add_argument("--exclude-identities", default=None, metavar="A,B", help="leave these identities out")
    parser.add_argument("--split-file", default=None, metavar="JSON", help="{identity: train|val|test} table")
    parser.add_argument("--split-ratios", type=_ratios, default=(0.6, 0.15, 0.25), metavar="TR,VA,TE",
                        help="seeded identity-disjoint split when no --split-file (default 0.6,0.15,0.25)")
    parser.add_argument("--segment-s", type=float, default=4.0, help="segment length in seconds (default 4)")
    parser.add_argument("--min-segment-s", type=float, default=1.5,
                        help="a clip shorter than one segment but at least this long is one segment (default 1.5)")
    parser.add_argument("--max-segments-per-clip", type=int, default=None, metavar="N",
                        help="at most N segments per source, spread over the clip (default: all)")
    parser.add_argument("--fakes-per-segment", type=int, default=3, metavar="K", help="fakes per segment (default 3)")
    parser.add_argument("--families", default=None, metavar="A,B",
                        help=f"families to draw from (default all: {','.join(FAMILIES)})")
    parser.add_argument("--silent-fraction", type=float, default=0.2,
                        help="share of real copies and video-only fakes written without audio (default 0.2)")
    parser.add_argument("--crop-size", type=int, default=160, help="face-crop side in pixels (default 160)")
    parser.add_argument("--crop-scale", type=float, default=1.8, help="crop side / tracked face side (default 1.8)")
    parser.add_argument("--crf", type=int, default=23, help="H.264 CRF of every written clip (default 23)")
    parser.add_argument("--min-face", type=float, default=0.6,
                        help="skip segments with a face in fewer than this share of frames (default 0.6)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--keep-cache", action="store_true",
                        help="keep the decoded face crops in OUT/.forge_cache (default: deleted when done)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON summary")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from macbdf.forge import ForgeError, forge
    from macbdf.media.landmarks import LandmarksUnavailable

    try:
        rep = forge(args.root, args.out, manifest=args.manifest, layout=args.layout, seed=args.seed,
                    identities=args.identities, exclude_identities=args.exclude_identities, split_file=args.split_file,
                    split_ratios=args.split_ratios, segment_s=args.segment_s, min_segment_s=args.min_segment_s,
                    max_segments_per_clip=args.max_segments_per_clip, fakes_per_segment=args.fakes_per_segment,
                    families=args.families, silent_fraction=args.silent_fraction, crop_size=args.crop_size,
                    crop_scale=args.crop_scale, crf=args.crf, min_face=args.min_face, workers=args.workers,
                    keep_cache=args.keep_cache, progress=not (args.quiet or args.json))
    except (ForgeError, LandmarksUnavailable) as e:
        print(f"macbdf forge: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        c = rep.counts
        print(f"{rep.out_dir}: {rep.written + rep.resumed} clips from {rep.segments} segments of {rep.sources} sources "
              f"({rep.written} written, {rep.resumed} already there) in {rep.seconds:.1f} s ({rep.cpu_seconds:.1f} s CPU)")
        for key in ("split", "category", "method", "has_audio"):
            print(f"  {key + ':':10s}" + ", ".join(f"{k} {v}" for k, v in sorted(c.get(key, {}).items())))
        for f in rep.failures:
            where = f["source"] + (f" segment {f['segment']}" if "segment" in f else "")
            print(f"  skipped {where}: {f['reason']}", file=sys.stderr)
    return 1 if rep.failures or rep.written + rep.resumed == 0 else 0
