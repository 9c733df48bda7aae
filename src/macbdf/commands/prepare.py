"""Decode videos, track faces, compute log-mel and write a sharded, resumable cache.

Reads a dataset in its shipped layout (--dataset NAME --root DIR), and for every video:
decodes it with PyAV (any codec FFmpeg reads; rotation honoured), resamples it to --fps by
timestamps and the audio to 16 kHz mono, tracks the main face (OpenCV Haar cascade, or a YuNet
.onnx given with --face-model) and cuts --face-size square RGB crops, computes the log-mel
spectrogram of Eq. 1 (--n-mels bands, a fixed number of mel frames per video frame), and writes one
safetensors file per sample under OUT/shards/NNN/ plus OUT/manifest.jsonl and OUT/failures.jsonl.

  * Resumable: samples already in OUT are skipped; every file is written atomically, so an
    interrupted run leaves no half-written files. Re-running retries the failed files.
  * Bad files (truncated, not media, no video) go to failures.jsonl with a one-line reason; the
    rest go on. A video without audio is prepared with silence and the flag no_audio; without a
    detectable face with a centre crop and the flag no_face (face_partial if found in < 80%).
  * Clusters: --shard K/N (0 <= K < N) prepares only the records whose stable hash of video_id
    falls in part K, so N jobs (a SLURM array: --shard $SLURM_ARRAY_TASK_ID/N, or Ray tasks) can
    share one OUT on a shared file system. Each writes manifest-K-of-N.jsonl and
    failures-K-of-N.jsonl; `macbdf prepare --merge --out OUT` joins them into manifest.jsonl and
    failures.jsonl (readers of the cache also accept the unmerged shard files).

The pipeline is `macbdf.data.prepare_cache.prepare_cache`; this command parses and prints.

Exit code: 0 all prepared, 1 some files failed, 2 usage error (bad options, unreadable metadata,
cache prepared with other settings).

Examples:
  macbdf prepare --dataset fakeavceleb --root /data/FakeAVCeleb_v1.2 --out cache/fakeavceleb --workers 8
  macbdf prepare --dataset folder --root my_videos/ --out cache/mine --face-model yunet.onnx
  macbdf prepare --dataset dfdc --root /data/dfdc --out /shared/cache/dfdc --shard 3/64   # one array task
  macbdf prepare --merge --out /shared/cache/dfdc
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from macbdf.data.prepare_cache import DEFAULT_MAX_SECONDS

DATASETS = ("fakeavceleb", "dfdc", "lavdf", "avdeepfake1m", "defakeavmit", "manifest", "folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", help=f"dataset layout to read: {', '.join(DATASETS)} "
                        "(or any other name registered in macbdf.data.adapters)")
    parser.add_argument("--root", help="dataset folder as shipped (for --dataset manifest: the CSV/JSONL file)")
    parser.add_argument("--out", required=True, help="cache directory to create or resume")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--shard", default=None, metavar="K/N",
                        help="prepare only part K of N (0-based), split by a stable hash of video_id")
    parser.add_argument("--face-size", type=int, default=None, help="face crop side in pixels (default 96)")
    parser.add_argument("--fps", type=float, default=None, help="target frame rate (default 25)")
    parser.add_argument("--n-mels", type=int, default=None, help="mel bands of Eq. 1 (default 64)")
    parser.add_argument("--face-model", default=None, metavar="PATH",
                        help="YuNet .onnx for cv2.FaceDetectorYN instead of the Haar cascade")
    parser.add_argument("--limit", type=int, default=None, help="prepare at most N records (after --shard)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help=f"keep at most this many seconds of each video (bounds cache size and memory on "
                             f"long videos; default {DEFAULT_MAX_SECONDS:.0f}, 0 = no limit)")
    parser.add_argument("--trim-leading-silence", action="store_true",
                        help="drop each clip's frames before its audio starts (fake periods shift with them): "
                             "removes the leading-silence shortcut of datasets whose fakes start silent; "
                             "stored in cache_config.json (see `macbdf audit`)")
    parser.add_argument("--split", default=None, help="only records of this split (train/val/test)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 80:20 split where a dataset has none")
    parser.add_argument("--identity-disjoint", action="store_true", help="identity-disjoint seeded splits")
    parser.add_argument("--merge", action="store_true",
                        help="only merge manifest-K-of-N.jsonl / failures-K-of-N.jsonl of OUT into manifest.jsonl")
    parser.add_argument("--rescan", action="store_true",
                        help="with --merge: rebuild manifest.jsonl from the sample files themselves")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> (K, N) with 0 <= K < N; None stays None.

    Example:
        >>> parse_shard("3/8")
        (3, 8)
    """
    if text is None:
        return None
    try:
        k_s, n_s = text.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise ValueError(f"--shard must be K/N, e.g. 0/4 (got {text!r})") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard K/N needs 0 <= K < N (got {text!r})")
    return k, n


def _summary(args: argparse.Namespace, out: Path, info: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"prepared {info['prepared']}, skipped {info['skipped']} (already in cache), "
              f"failed {info['failed']} -> {out}")
        if info["failed"]:
            print(f"  reasons in {out / info['failures_file']}")


def run(args: argparse.Namespace) -> int:
    from macbdf.config import PreprocessConfig
    from macbdf.data import cache
    from macbdf.data.manifest import ManifestError
    from macbdf.data.prepare_cache import PrepareError, prepare_cache

    out = Path(args.out)
    if args.merge:
        if not out.is_dir():
            print(f"error: no cache at {out}", file=sys.stderr)
            return 2
        try:
            n, f = cache.merge_shards(out, rescan=args.rescan)
        except (cache.CacheError, ManifestError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        info = {"merged_samples": n, "failures": f, "manifest": str(out / "manifest.jsonl")}
        print(json.dumps(info) if args.json else f"merged {n} samples ({f} failures) into {out / 'manifest.jsonl'}")
        return 0
    if not args.dataset or not args.root:
        print("error: --dataset and --root are required (or use --merge)", file=sys.stderr)
        return 2
    cfg = PreprocessConfig()
    try:
        shard = parse_shard(args.shard)
        for name in ("fps", "face_size", "n_mels"):
            v = getattr(args, name)
            if v is not None:
                if v <= 0:
                    raise ValueError(f"--{name.replace('_', '-')} must be > 0")
                setattr(cfg, name, type(getattr(cfg, name))(v))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg.trim_leading_silence = bool(args.trim_leading_silence)
    try:
        info = prepare_cache(args.dataset, args.root, out, cfg=cfg, workers=args.workers, shard=shard,
                             face_model=args.face_model, limit=args.limit, max_seconds=args.max_seconds,
                             split=args.split, split_seed=args.split_seed, identity_disjoint=args.identity_disjoint,
                             progress=not args.quiet)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _summary(args, out, info)
    return 1 if info["failed"] else 0
