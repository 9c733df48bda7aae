"""The prepare pipeline as a library call: a dataset -> a sharded, resumable cache (`macbdf.data.cache`).

`prepare_cache` is what ``macbdf prepare`` runs (the command only parses arguments and prints); the
demo and the real-data recipe call it directly. For every record of the dataset: decode, track the
face, log-mel (`macbdf.media.prepare.prepare_file`), one sample file written atomically.

* Resumable: a sample file that exists is complete (atomic writes) and is skipped; its own metadata
  is its record. Failed files are retried on the next run.
* Bad files go to the failures file with a one-line reason; the rest go on. Workers are spawned
  (never forked), die with their parent, and a crashed worker costs only the file it held.
* ``shard=(K, N)`` prepares only the records whose stable hash of ``video_id`` falls in part K and
  writes ``manifest-K-of-N.jsonl`` / ``failures-K-of-N.jsonl``; every reader of the cache accepts
  them unmerged (`macbdf.data.cache.read_cache_manifest`), `merge_shards` joins them.
* The manifest is flushed every 30 s, so a killed run leaves a usable (if incomplete) manifest.

Example:
    >>> info = prepare_cache("manifest", "clips/manifest.jsonl", "cache", workers=2)   # doctest: +SKIP
    >>> info["prepared"], info["failed"], info["manifest_file"]                        # doctest: +SKIP
    (16, 0, 'manifest.jsonl')
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable

from macbdf.config import PreprocessConfig
from macbdf.data import cache
from macbdf.data.manifest import ManifestError, SampleRecord, read_manifest

__all__ = ["PrepareError", "prepare_cache", "select_shard", "shard_index", "die_with_parent", "DEFAULT_MAX_SECONDS"]

DEFAULT_MAX_SECONDS = 300.0   # per video; a cache sample of a 700 s clip would be ~0.5 GB (0 = no limit)
STALE_TMP_S = 600.0           # with a shard: temp files untouched this long belong to no live job
PARENT_POLL_S = 1.0           # how often a worker checks that its parent is alive
FLUSH_EVERY_S = 30.0          # manifest refresh while preparing


class PrepareError(ValueError):
    """The preparation cannot start as asked (one line: bad option, unreadable metadata, a cache
    prepared with other settings, no usable face detector); ``macbdf prepare`` exits 2."""


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
        out = cache.write_sample(out_dir, rec, clip)
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


def _check_face_detector(face_model: str | None) -> None:
    # Loaded once here so a missing or invalid model, or an OpenCV without the cascade API, is one
    # usage error, not a traceback from every worker and a failure for every file.
    import cv2

    from macbdf.media.face import FaceDetectorUnavailable, create_face_detector

    try:
        create_face_detector(face_model)
    except FaceDetectorUnavailable as e:
        raise PrepareError(str(e)) from None
    except (FileNotFoundError, cv2.error) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        what = f"face model {face_model}" if face_model else "the Haar face cascade"
        raise PrepareError(f"cannot load {what}: {msg}") from None


def prepare_cache(dataset: str, root: str | os.PathLike, out: str | os.PathLike, *,
                  cfg: PreprocessConfig | None = None, workers: int = 1, shard: tuple[int, int] | None = None,
                  face_model: str | None = None, limit: int | None = None,
                  max_seconds: float | None = DEFAULT_MAX_SECONDS, split: str | None = None, split_seed: int = 0,
                  identity_disjoint: bool = False, progress: bool = True) -> dict[str, Any]:
    """Prepare (or resume) the cache ``out`` from ``dataset`` read at ``root``; returns the summary.

    Args:
        dataset: adapter name (`macbdf.data.adapters`: fakeavceleb, lavdf, manifest, folder, ...).
        root: the dataset folder as shipped (for ``manifest``: the CSV/JSONL file).
        out: cache directory to create or resume.
        cfg: preprocessing settings (default `PreprocessConfig()`); a cache keeps its first.
        workers: parallel worker processes (spawned).
        shard: ``(K, N)``: only part K of N (see the module docstring).
        face_model: a YuNet .onnx instead of the Haar cascade.
        limit: at most this many records (after ``split`` and ``shard``).
        max_seconds: keep at most this many seconds of each video (0 or None: no limit).
        split, split_seed, identity_disjoint: keep one split / the seeded split where the dataset has none.
        progress: a progress bar on stderr.

    Returns:
        ``{"out", "dataset", "records", "prepared", "skipped", "failed", "manifest_file",
        "failures_file", "shard", "flags"}`` (``shard`` as ``"K/N"`` or None; ``flags``: counts).

    Raises:
        PrepareError: the preparation cannot start (see the class).
    """
    cfg = cfg or PreprocessConfig()
    if workers < 1:
        raise PrepareError("--workers must be >= 1")
    if max_seconds is not None and not (max_seconds >= 0 and max_seconds < float("inf")):
        raise PrepareError("--max-seconds must be a number >= 0 (0 = no limit)")
    if shard is not None and (shard[1] < 1 or not 0 <= shard[0] < shard[1]):
        raise PrepareError(f"--shard K/N needs 0 <= K < N (got {shard[0]}/{shard[1]})")
    _check_face_detector(face_model)
    root, out = Path(root), Path(out)
    if not root.exists():
        raise PrepareError(f"--root not found: {root}")
    try:
        from macbdf.data.adapters import load_dataset

        records = load_dataset(dataset, root, split_seed=split_seed, identity_disjoint=identity_disjoint)
    except (ManifestError, ValueError, FileNotFoundError, NotADirectoryError) as e:
        raise PrepareError(str(e)) from None
    if split:
        records = [r for r in records if r.split == split]
    records = select_shard(records, shard)
    if limit is not None:
        records = records[: max(0, limit)]

    out.mkdir(parents=True, exist_ok=True)
    # Temporary files of a killed run. Shard jobs may share OUT and write right now: only old ones go.
    cache.clean_stale_temp_files(out, older_than_s=STALE_TMP_S if shard is not None else 0.0)
    try:
        cache.check_cache_config(out, cfg)
    except cache.CacheError as e:
        raise PrepareError(str(e)) from None

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

    # Samples listed by an earlier run with another selection (limit, split) stay listed.
    prior: list[SampleRecord] = []
    if manifest_path.exists():
        try:
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
        if time.monotonic() - last_flush[0] > FLUSH_EVERY_S:
            flush()
            last_flush[0] = time.monotonic()

    max_frames = int(round(max_seconds * cfg.fps)) if max_seconds else None
    items = [(r.to_dict(), _media_path(r.path, root), str(out), max_frames) for r in todo]
    cores = os.cpu_count() or 1
    n_workers = max(1, min(workers, len(items))) if items else 1
    init_args = (cfg.to_dict(), face_model, max(1, cores // n_workers), 1 if n_workers > 1 else 0, os.getpid())
    from tqdm import tqdm

    with tqdm(total=len(items), desc="prepare", unit="video", disable=not progress or not items,
              file=sys.stderr, dynamic_ncols=True) as bar:
        if n_workers == 1:
            _init_worker(cfg.to_dict(), face_model, 0, -1)   # in-process: default threading
            for it in items:
                on_result(*_work(it))
                bar.update(1)
        else:
            _run_pool(items, n_workers, init_args, on_result, bar)
    flush()
    return {
        "out": str(out), "dataset": dataset, "records": len(records), "prepared": len(done) - skipped,
        "skipped": skipped, "failed": len(failures), "manifest_file": manifest_path.name,
        "failures_file": failures_path.name, "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "flags": _count_flags(done.values()),
    }


def _count_flags(records: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        for f in r.flags or []:
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))
