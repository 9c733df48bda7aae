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
import hashlib
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable

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


def shard_index(video_id: str, n: int) -> int:
    """Stable part of ``video_id`` among ``n`` (same on every machine and Python run)."""
    return int(hashlib.sha1(video_id.encode("utf-8", "surrogateescape")).hexdigest()[:12], 16) % n


def select_shard(records: list[Any], shard: tuple[int, int] | None) -> list[Any]:
    """Records of shard K of N (all records when ``shard`` is None), order kept."""
    if shard is None:
        return list(records)
    k, n = shard
    return [r for r in records if shard_index(r.video_id, n) == k]


# ---- worker side ---------------------------------------------------------------------------------
_W: dict[str, Any] = {}
DEFAULT_MAX_SECONDS = 300.0   # per video; a cache sample of a 700 s clip would be ~0.5 GB (0 = no limit)
STALE_TMP_S = 600.0           # with --shard: temp files untouched this long belong to no live job
PARENT_POLL_S = 1.0           # how often a worker checks that its parent is alive


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when ``parent_pid`` dies, even by ``kill -9``.

    On Linux the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere
    a daemon thread also polls ``os.getppid()`` and exits once the parent is gone (re-parented).
    """
    import ctypes
    import signal
    import sys as _sys
    import threading

    if _sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)   # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass   # no prctl (e.g. a non-glibc libc): the thread below still notices
    if os.getppid() != parent_pid:   # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)   # no cleanup of the pool: the parent that owned it is gone

    threading.Thread(target=watch, name="macbdf-parent-watch", daemon=True).start()


def _init_worker(cfg_dict: dict[str, Any], face_model: str | None, decode_threads: int, cv_threads: int,
                 parent_pid: int | None = None) -> None:
    import cv2

    if parent_pid is not None:
        die_with_parent(parent_pid)

    from macbdf.config import PreprocessConfig
    from macbdf.media.face import create_face_detector

    # N workers share the cores: one OpenCV thread each, decoder threads = cores / workers.
    # (In-process runs pass -1 / 0 and leave the caller's settings alone.)
    if cv_threads >= 0:
        cv2.setNumThreads(cv_threads)
    if decode_threads > 0:
        os.environ["MACBDF_DECODE_THREADS"] = str(decode_threads)
    _W["cfg"] = PreprocessConfig.from_dict(cfg_dict)
    _W["detector"] = create_face_detector(face_model)


def _work(item: tuple[dict[str, Any], str, str, int | None]) -> tuple[str, dict[str, Any]]:
    """Prepare and write one sample; never raises (a failure is returned with its reason)."""
    from macbdf.data.manifest import SampleRecord
    from macbdf.data.cache import write_sample
    from macbdf.media.decode import MediaError
    from macbdf.media.prepare import prepare_file

    rec_d, media_path, out_dir, max_frames = item
    rec = SampleRecord.from_dict(rec_d)
    try:
        clip = prepare_file(media_path, _W["cfg"], face_detector=_W["detector"], max_frames=max_frames)
        if "non_finite_audio" in clip.flags:
            # Training data must not carry a track we had to blank out: a clear failure instead.
            n = clip.info.get("non_finite_audio_samples", 0)
            raise MediaError(f"audio holds {n} non-finite or out-of-range samples (NaN/Inf or |x| > 1e3)")
        out = write_sample(out_dir, rec, clip)
        return "ok", out.to_dict()
    except MediaError as e:
        reason = str(e)
    except MemoryError:
        reason = "out of memory"
    except Exception as e:  # noqa: BLE001 - one bad file must not stop a dataset-wide run
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        reason = f"{type(e).__name__}: {msg}"[:300]
    return "fail", {"path": rec.path, "video_id": rec.video_id, "reason": reason}


# ---- driver --------------------------------------------------------------------------------------
def _media_path(path: str, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        return str(p)
    base = root.parent if root.is_file() else root
    return str(base / p)


def _run_pool(items: list[tuple], workers: int, init_args: tuple, on_result: Any, bar: Any) -> None:
    """Run ``_work`` over items in a spawn pool, at most 2 x workers in flight; survives crashes."""
    ctx = get_context("spawn")
    pending = list(reversed(items))
    while pending:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=init_args) as ex:
            inflight: dict[Future, tuple] = {}
            broken = False
            while (pending or inflight) and not broken:
                while pending and len(inflight) < 2 * workers:
                    it = pending.pop()
                    inflight[ex.submit(_work, it)] = it
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    it = inflight.pop(fut)
                    try:
                        on_result(*fut.result())
                    except BrokenProcessPool:
                        # A worker died (e.g. a decoder crash): blame that file, restart the pool.
                        broken = True
                        on_result("fail", {"path": it[0]["path"], "video_id": it[0]["video_id"],
                                           "reason": "worker process crashed while preparing this file"})
                    bar.update(1)
            if broken:
                # Files still in flight with the dead pool are retried in the new one.
                pending.extend(inflight.values())


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
    from macbdf.data.manifest import ManifestError, SampleRecord
    from macbdf.data import cache

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
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.max_seconds is not None and not (args.max_seconds >= 0 and args.max_seconds < float("inf")):
        print("error: --max-seconds must be a number >= 0 (0 = no limit)", file=sys.stderr)
        return 2
    try:
        shard = parse_shard(args.shard)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Load the detector once here so a missing or invalid model, or an OpenCV without the cascade
    # API, is one usage error, not a traceback from every worker and a failure for every file.
    import cv2

    from macbdf.media.face import FaceDetectorUnavailable, create_face_detector

    try:
        create_face_detector(args.face_model)
    except FaceDetectorUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, cv2.error) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        what = f"face model {args.face_model}" if args.face_model else "the Haar face cascade"
        print(f"error: cannot load {what}: {msg}", file=sys.stderr)
        return 2
    cfg = PreprocessConfig()
    for name, attr in (("fps", "fps"), ("face_size", "face_size"), ("n_mels", "n_mels")):
        v = getattr(args, name)
        if v is not None:
            if v <= 0:
                print(f"error: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
                return 2
            setattr(cfg, attr, type(getattr(cfg, attr))(v))
    cfg.trim_leading_silence = bool(args.trim_leading_silence)

    root = Path(args.root)
    if not root.exists():
        print(f"error: --root not found: {root}", file=sys.stderr)
        return 2
    try:
        from macbdf.data.adapters import load_dataset

        records = load_dataset(args.dataset, root, split_seed=args.split_seed,
                               identity_disjoint=args.identity_disjoint)
    except (ManifestError, ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.split:
        records = [r for r in records if r.split == args.split]
    records = select_shard(records, shard)
    if args.limit is not None:
        records = records[: max(0, args.limit)]

    out.mkdir(parents=True, exist_ok=True)
    # Temporary files of a killed run. Shard jobs may share OUT and write right now: only old ones go.
    cache.clean_stale_temp_files(out, older_than_s=STALE_TMP_S if shard is not None else 0.0)
    try:
        cache.check_cache_config(out, cfg)
    except cache.CacheError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # Resume: a sample file that exists is complete (atomic writes); its own metadata is its record.
    done: dict[str, SampleRecord] = {}
    todo: list[SampleRecord] = []
    for r in records:
        p = out / cache.sample_relpath(r.video_id)
        if p.exists():
            try:
                done[r.video_id] = cache.read_sample_record(p)
                continue
            except cache.CacheError:
                pass   # unreadable (e.g. disk full at write time): prepare again
        todo.append(r)
    skipped = len(done)
    manifest_path = out / cache.manifest_name(shard)
    failures_path = out / cache.failures_name(shard)
    failures: list[dict[str, Any]] = []
    order = {r.video_id: i for i, r in enumerate(records)}

    # Samples listed by an earlier run with another selection (--limit, --split) stay listed.
    prior: list[SampleRecord] = []
    if manifest_path.exists():
        try:
            from macbdf.data.manifest import read_manifest

            prior = [r for r in read_manifest(manifest_path)
                     if r.video_id not in order and r.file and (out / r.file).exists()]
        except ManifestError:
            prior = []

    def flush() -> None:
        rows = prior + sorted(done.values(), key=lambda r: order.get(r.video_id, 0))
        cache.write_jsonl((r.to_dict() for r in rows), manifest_path)
        cache.write_jsonl(failures, failures_path)

    last_flush = [time.monotonic()]

    def on_result(status: str, payload: dict[str, Any]) -> None:
        if status == "ok":
            done[payload["video_id"]] = SampleRecord.from_dict(payload)
        else:
            failures.append(payload)
        # The manifest is an index of the sample files; refresh it now and then so a killed run
        # still leaves a usable (if incomplete) manifest. Resume does not depend on it.
        if time.monotonic() - last_flush[0] > 30:
            flush()
            last_flush[0] = time.monotonic()

    max_frames = int(round(args.max_seconds * cfg.fps)) if args.max_seconds else None
    items = [(r.to_dict(), _media_path(r.path, root), str(out), max_frames) for r in todo]
    cores = os.cpu_count() or 1
    workers = max(1, min(args.workers, len(items))) if items else 1
    init_args = (cfg.to_dict(), args.face_model, max(1, cores // workers), 1 if workers > 1 else 0, os.getpid())
    from tqdm import tqdm

    with tqdm(total=len(items), desc="prepare", unit="video", disable=args.quiet or not items,
              file=sys.stderr, dynamic_ncols=True) as bar:
        if workers == 1:
            _init_worker(cfg.to_dict(), args.face_model, 0, -1)   # in-process: default threading
            for it in items:
                on_result(*_work(it))
                bar.update(1)
        else:
            _run_pool(items, workers, init_args, on_result, bar)
    flush()
    info = {
        "out": str(out), "dataset": args.dataset, "records": len(records), "prepared": len(done) - skipped,
        "skipped": skipped, "failed": len(failures), "manifest_file": manifest_path.name,
        "failures_file": failures_path.name, "shard": args.shard,
        "flags": _count_flags(done.values()),
    }
    _summary(args, out, info)
    return 1 if failures else 0


def _count_flags(records: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        for f in r.flags or []:
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))
