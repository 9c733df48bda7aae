"""The prepared-sample cache (format fixed in docs/architecture.md); the only reader and writer of its files.

Everything that opens a cache goes through here: the manifests (:func:`read_cache_manifest`, merged
or not), ``cache_config.json`` (:func:`load_cache_config`) and the sample files (:func:`read_sample`
for a whole sample, :func:`read_window` for a memory-mapped slice). ``macbdf prepare`` writes with
:func:`write_sample`, :func:`write_cache_config` and :func:`write_jsonl`.

Layout of ``CACHE_DIR``::

    cache_config.json                 PreprocessConfig.to_dict() the samples were made with
    manifest.jsonl                    one SampleRecord per prepared sample (+ file, num_frames, fps, duration, flags)
    failures.jsonl                    {"path", "video_id", "reason"} per file that could not be prepared
    manifest-K-of-N.jsonl             the same, written by ``prepare --shard K/N`` (merged by ``prepare --merge``;
    failures-K-of-N.jsonl             :func:`read_cache_manifest` also reads them directly)
    shards/NNN/<safe id>-<hash>.safetensors   one sample per file

A sample file holds ``frames`` uint8 (T, S, S, 3), ``logmel`` float16 (T * mel_per_frame, n_mels),
``frame_label_video`` / ``frame_label_audio`` uint8 (T,), and the JSON of its manifest record in the
safetensors metadata under ``record``. Every file is written to a temporary name in the same folder
and renamed into place, so an interrupted run never leaves a half-written sample or manifest: a
sample file that exists is complete, and ``prepare`` skips it when resuming.

Example:
    >>> rel = sample_relpath("FakeAVCeleb/id00001/00001.mp4")
    >>> rel.startswith("shards/") and rel.endswith(".safetensors")
    True
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from macbdf.config import PreprocessConfig
from macbdf.data.manifest import ManifestError, SampleRecord, iter_jsonl, write_manifest
from macbdf.filemode import atomic_write

__all__ = ["CacheError", "id_bytes", "tensor_checksum", "verify_sample", "clean_stale_temp_files", "sample_relpath", "frame_labels", "write_sample", "read_sample", "read_sample_record",
           "load_cache_config", "write_cache_config", "check_cache_config", "read_cache_manifest",
           "read_failures", "manifest_name", "failures_name", "merge_shards", "rebuild_manifest",
           "write_jsonl", "SHARD_BUCKETS", "manifest_files", "read_window", "SampleWindow"]

SHARD_BUCKETS = 1000          # shards/000 .. shards/999: keeps folders small on 100k-sample datasets
CACHE_FORMAT_VERSION = "1"
_SHARD_FILE = re.compile(r"^(manifest|failures)-(\d+)-of-(\d+)\.jsonl$")


class CacheError(RuntimeError):
    """A cache that cannot be used as asked (different preprocessing config, unreadable file)."""


def id_bytes(text: str) -> bytes:
    """UTF-8 bytes of an id or path for hashing; a file name that is not valid UTF-8 (held by Python
    as surrogate escapes) hashes as its original bytes instead of raising.

    Example:
        >>> import os
        >>> id_bytes(os.fsdecode(b"caf\\xe9.mp4"))   # how Python holds a Latin-1 file name
        b'caf\\xe9.mp4'
    """
    return text.encode("utf-8", "surrogateescape")


def _digest(video_id: str) -> str:
    return hashlib.sha1(id_bytes(video_id)).hexdigest()


def sample_relpath(video_id: str) -> str:
    """Path of a sample file relative to the cache dir; stable for a given ``video_id``.

    The file name keeps a readable, file-system-safe form of the id plus 10 hex digits of its SHA-1
    (ids that differ only in unsafe characters cannot collide).
    """
    h = _digest(video_id)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._")[:80] or "sample"
    bucket = int(h[:8], 16) % SHARD_BUCKETS
    return f"shards/{bucket:03d}/{safe}-{h[:10]}.safetensors"


def frame_labels(record: SampleRecord, num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame labels (video, audio), uint8 (T,) each.

    From ``record.periods_for(modality)`` as LAV-DF/BA-TFD do
    (``label[int(begin * fps):int(end * fps)] = 1``); without periods, the modality's sample label
    on every frame (unknown labels give 0).
    """
    out = []
    for modality, lab in (("video", record.video_label), ("audio", record.audio_label)):
        fl = np.zeros(num_frames, np.uint8)
        periods = record.periods_for(modality)
        if periods:
            for p in periods:
                b, e = float(p[0]), float(p[1])
                fl[max(0, int(b * fps)): max(0, int(e * fps))] = 1
        elif lab:
            fl[:] = 1
        out.append(fl)
    return out[0], out[1]


def _atomic_write_bytes(path: Path, writer: Any) -> None:
    with atomic_write(path) as tmp:   # a shared cache follows the umask, not mkstemp's (or safetensors') 0600
        writer(str(tmp))


def write_sample(cache_dir: str | os.PathLike, record: SampleRecord, clip: Any) -> SampleRecord:
    """Write one prepared clip atomically; returns the record with the cache fields filled in.

    Args:
        cache_dir: the cache root.
        record: the manifest record of the sample (not modified).
        clip: a :class:`macbdf.media.prepare.PreparedClip`.
    """
    rel = sample_relpath(record.video_id)
    d = record.to_dict()
    n = int(clip.frames.shape[0])
    d.update(file=rel, num_frames=n, fps=float(clip.fps), duration=round(float(clip.duration), 4),
             flags=sorted(set(d.get("flags") or []) | set(clip.flags)))
    extra = dict(d.get("extra") or {})
    info = clip.info or {}
    # (+ what `macbdf audit` reads: silence at both ends and loudness of the cached audio, the cut of
    # `prepare --trim-leading-silence`)
    extra["media"] = {k: info[k] for k in ("src_fps", "width", "height", "rotation", "video_codec", "bit_rate",
                                           "audio_rate", "audio_channels", "face_coverage", "leading_silence_s",
                                           "trailing_silence_s", "loudness_db", "trimmed_leading_s", "trimmed_audio_s")
                      if k in info}
    cut = float(info.get("trimmed_leading_s") or 0.0)
    if cut > 0:
        # the first `cut` seconds were dropped: the fake periods move with the frames
        shift = lambda ps: [[max(0.0, a - cut), b - cut] for a, b in ps if b - cut > 0]  # noqa: E731
        d["fake_periods"] = shift(d.get("fake_periods") or [])
        for key in ("video_fake_periods", "audio_fake_periods"):
            if d.get(key) is not None:
                d[key] = shift(d[key])
    d["extra"] = extra
    out = SampleRecord.from_dict(d)
    flv, fla = frame_labels(out, n, float(clip.fps))
    tensors = {
        "frames": np.ascontiguousarray(clip.frames, dtype=np.uint8),
        "logmel": np.ascontiguousarray(np.clip(clip.logmel, -65000, 65000).astype(np.float16)),
        "frame_label_video": flv,
        "frame_label_audio": fla,
    }
    # ASCII JSON: a file name that is not valid UTF-8 stays representable (escaped surrogates).
    meta = {"record": json.dumps(out.to_dict(), ensure_ascii=True), "format_version": CACHE_FORMAT_VERSION,
            CHECKSUM_KEY: tensor_checksum(tensors)}
    _atomic_write_bytes(Path(cache_dir) / rel, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return out


CHECKSUM_KEY = "sha256"   # safetensors metadata key: tensor_checksum() of the sample's tensors
_LEGACY_WARNED: set[str] = set()


def tensor_checksum(tensors: dict[str, Any]) -> str:
    """SHA-256 over the tensors in name order (name, dtype, shape and bytes of each), hex.

    Stored in every sample's metadata by `write_sample` and checked by `read_sample` /
    `verify_sample`: a sample whose header is intact but whose bytes were damaged is refused.

    Example:
        >>> import numpy as np
        >>> a = tensor_checksum({"x": np.zeros(3, np.uint8)}); b = tensor_checksum({"x": np.ones(3, np.uint8)})
        >>> len(a), a == b
        (64, False)
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(np.asarray(tensors[name]))
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B") if arr.size else b"")
    return h.hexdigest()


def _check(path: Path, tensors: dict[str, Any], meta: dict[str, str]) -> bool:
    """Checksum and finiteness of a sample's tensors; True verified, False old sample without checksum."""
    want = meta.get(CHECKSUM_KEY)
    if want is not None and tensor_checksum(tensors) != want:
        raise CacheError(f"sample file {path} is damaged (checksum mismatch); delete it and run prepare again")
    for k, v in tensors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise CacheError(f"sample file {path} holds non-finite values in {k!r}")
    if want is None:
        key = str(path.parent.parent.parent)
        if key not in _LEGACY_WARNED:
            _LEGACY_WARNED.add(key)
            import warnings

            warnings.warn(f"samples in {key} have no checksum (prepared by an older macbdf): "
                          "loaded without verification", stacklevel=3)
        return False
    return True


def _sample_path(cache_dir: str | os.PathLike, record: SampleRecord | dict[str, Any] | str) -> Path:
    if isinstance(record, str):
        rel = record
    else:
        rec = record if isinstance(record, dict) else record.to_dict()
        rel = rec.get("file") or sample_relpath(rec["video_id"])
    return Path(cache_dir) / rel


def read_sample(cache_dir: str | os.PathLike, record: SampleRecord | dict[str, Any] | str) -> dict[str, np.ndarray]:
    """All tensors of one sample (memory-mapped read via safetensors).

    ``record`` may be a SampleRecord, its dict, or the relative file path.

    Example:
        >>> s = read_sample("cache", records[0])          # doctest: +SKIP
        >>> s["frames"].shape, s["logmel"].dtype           # doctest: +SKIP
        ((250, 96, 96, 3), dtype('float16'))
    """
    path = _sample_path(cache_dir, record)
    tensors, meta = _read_all(path)
    _check(path, tensors, meta)
    return tensors


@contextmanager
def _open(path: Path) -> Iterator[Any]:
    """``safe_open`` of a sample file whose errors are one-line `CacheError`s naming the file."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            yield f
    except FileNotFoundError:
        raise CacheError(f"sample file missing: {path}") from None
    except CacheError:
        raise
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CacheError(f"unreadable sample file {path}: {' '.join(str(e).split())[:200]}") from None


def _read_all(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with _open(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def verify_sample(path: str | os.PathLike) -> bool:
    """Read a whole sample file and check it: readable, checksum (when it has one), finite values.

    Returns True when verified, False for an old sample without a checksum (loaded unverified, with
    a warning once per cache). Raises `CacheError` (one line naming the file) otherwise.

    Example:
        >>> verify_sample("cache/shards/123/clip-0a1b2c3d4e.safetensors")   # doctest: +SKIP
        True
    """
    p = Path(path)
    tensors, meta = _read_all(p)
    return _check(p, tensors, meta)


@dataclass
class SampleWindow:
    """Frames ``start:start + length`` of one sample (numpy arrays: only these bytes were read)."""

    num_frames: int              # frames of the whole sample
    start: int                   # first frame of the window
    frames: np.ndarray           # uint8   (t, S, S, 3)
    logmel: np.ndarray           # float16 (t * mel_per_frame, n_mels) (shorter if the audio is)
    frame_label_video: np.ndarray  # uint8 (t,)
    frame_label_audio: np.ndarray  # uint8 (t,)


def read_window(path: str | os.PathLike, length: int, mel_per_frame: int,
                start: Callable[[int], int] = lambda n: 0) -> SampleWindow:
    """Read ``length`` frames of a sample file, from ``start(num_frames)``, without reading the rest.

    Only the window's bytes are read (safetensors slices). No checksum: `verify_sample` checks a
    whole file. Raises `CacheError` (one line naming the file) for a missing or unreadable file.

    Example:
        >>> w = read_window("cache/shards/123/clip-0a1b2c3d4e.safetensors", 16, 4)   # doctest: +SKIP
        >>> w.frames.shape, w.logmel.shape                                            # doctest: +SKIP
        ((16, 96, 96, 3), (64, 64))
    """
    p = Path(path)
    with _open(p) as f:
        n = int(f.get_slice("frames").get_shape()[0])
        s = int(start(n))
        e = min(n, s + int(length))
        return SampleWindow(num_frames=n, start=s, frames=f.get_slice("frames")[s:e],
                            logmel=f.get_slice("logmel")[s * mel_per_frame: e * mel_per_frame],
                            frame_label_video=f.get_slice("frame_label_video")[s:e],
                            frame_label_audio=f.get_slice("frame_label_audio")[s:e])


# Temporary names of the atomic writers (cache samples/configs, manifests): ".NAME.XXXXXXXX.tmp".
_TMP_NAME = re.compile(r"^\..+\.tmp$")


def clean_stale_temp_files(cache_dir: str | os.PathLike, older_than_s: float = 0.0) -> int:
    """Remove temporary files left by a killed run (``.NAME.*.tmp`` in the cache root and shards/*/).

    Only files not modified for ``older_than_s`` seconds go (a concurrent shard job on a shared
    file system may be writing the newest ones). Returns how many were removed.

    Example:
        >>> clean_stale_temp_files("cache", older_than_s=600)     # doctest: +SKIP
        1
    """
    import time

    d = Path(cache_dir)
    now = time.time()
    n = 0
    for p in [*d.glob(".*.tmp"), *d.glob("shards/*/.*.tmp")]:
        try:
            if _TMP_NAME.match(p.name) and p.is_file() and now - p.stat().st_mtime >= older_than_s:
                p.unlink()
                n += 1
        except OSError:
            continue   # removed by someone else meanwhile, or not ours to remove
    return n


def read_sample_record(path: str | os.PathLike) -> SampleRecord:
    """The manifest record stored in a sample file's metadata (reads only the header)."""
    with _open(Path(path)) as f:
        meta = f.metadata() or {}
    if "record" not in meta:
        raise CacheError(f"sample file without a record: {path}")
    return SampleRecord.from_dict(json.loads(meta["record"]))


# ---- config ------------------------------------------------------------------------------------
def load_cache_config(cache_dir: str | os.PathLike) -> PreprocessConfig | None:
    """The PreprocessConfig a cache was made with (None for a new cache)."""
    p = Path(cache_dir) / "cache_config.json"
    if not p.exists():
        return None
    try:
        return PreprocessConfig.from_dict(json.loads(p.read_text(encoding="utf-8"))).validate()
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as e:
        raise CacheError(f"{p}: invalid cache config ({e})") from None


def write_cache_config(cache_dir: str | os.PathLike, cfg: PreprocessConfig) -> None:
    p = Path(cache_dir) / "cache_config.json"
    text = json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n"
    _atomic_write_bytes(p, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def check_cache_config(cache_dir: str | os.PathLike, cfg: PreprocessConfig) -> None:
    """Write the config of a new cache; refuse to mix samples made with different settings."""
    old = load_cache_config(cache_dir)
    if old is None:
        write_cache_config(cache_dir, cfg)
        return
    if old.to_dict() != cfg.to_dict():
        diff = {k: (v, cfg.to_dict()[k]) for k, v in old.to_dict().items() if cfg.to_dict().get(k) != v}
        detail = ", ".join(f"{k}: cache {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise CacheError(f"{cache_dir} was prepared with other settings ({detail}); use another --out")


# ---- manifests -----------------------------------------------------------------------------------
def manifest_name(shard: tuple[int, int] | None = None) -> str:
    """``manifest.jsonl``, or ``manifest-K-of-N.jsonl`` for shard K of N."""
    return "manifest.jsonl" if shard is None else f"manifest-{shard[0]}-of-{shard[1]}.jsonl"


def failures_name(shard: tuple[int, int] | None = None) -> str:
    return "failures.jsonl" if shard is None else f"failures-{shard[0]}-of-{shard[1]}.jsonl"


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> None:
    """Atomic JSONL write (temp file + os.replace)."""
    write_manifest(rows, path)


def _shard_files(cache_dir: Path, kind: str) -> list[Path]:
    out = []
    for p in sorted(cache_dir.glob(f"{kind}-*-of-*.jsonl")):
        m = _SHARD_FILE.match(p.name)
        if m and m.group(1) == kind:
            out.append(p)
    return out


def manifest_files(cache_dir: str | os.PathLike) -> list[Path]:
    """The manifests of a cache: ``manifest.jsonl`` (when merged) and any ``manifest-K-of-N.jsonl``.

    An empty list means the folder is not a prepared cache.
    """
    d = Path(cache_dir)
    return ([d / "manifest.jsonl"] if (d / "manifest.jsonl").is_file() else []) + _shard_files(d, "manifest")


def read_cache_manifest(cache_dir: str | os.PathLike) -> list[SampleRecord]:
    """Every prepared sample of a cache: ``manifest.jsonl`` plus any unmerged shard manifests.

    Records are de-duplicated by ``video_id`` (first occurrence wins). Training, evaluation, the
    audit and the model card all read a cache's records here, so an unmerged ``prepare --shard``
    cache works everywhere.

    Raises:
        CacheError: no manifest at all.
        ManifestError: a malformed line (names file and line).
    """
    d = Path(cache_dir)
    files = manifest_files(d)
    if not files:
        raise CacheError(f"no manifest.jsonl in {d} (run `macbdf prepare --out {d}` first)")
    seen: set[str] = set()
    out: list[SampleRecord] = []
    for f in files:
        for lineno, obj in iter_jsonl(f):
            try:
                r = SampleRecord.from_dict(obj)
            except TypeError as e:
                raise ManifestError(f"{f}:{lineno}: not a sample record ({e})") from None
            if r.video_id not in seen:
                seen.add(r.video_id)
                out.append(r)
    return out


def read_failures(cache_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of ``failures.jsonl`` and the shard failure files."""
    d = Path(cache_dir)
    files = ([d / "failures.jsonl"] if (d / "failures.jsonl").exists() else []) + _shard_files(d, "failures")
    return [obj for f in files for _, obj in iter_jsonl(f)]


def rebuild_manifest(cache_dir: str | os.PathLike) -> list[SampleRecord]:
    """Records of every sample file under ``shards/`` (from their metadata), sorted by video_id.

    Recovers a cache whose manifest was lost (e.g. a run killed before it wrote the manifest).
    """
    out = []
    for p in sorted(Path(cache_dir).glob("shards/*/*.safetensors")):
        try:
            out.append(read_sample_record(p))
        except CacheError:
            continue
    return sorted(out, key=lambda r: r.video_id)


def merge_shards(cache_dir: str | os.PathLike, *, rescan: bool = False) -> tuple[int, int]:
    """Merge ``manifest-K-of-N.jsonl`` / ``failures-K-of-N.jsonl`` into ``manifest.jsonl`` / ``failures.jsonl``.

    With ``rescan`` the manifest is rebuilt from the sample files themselves. Failures of files that
    were prepared in the end (e.g. by a later retry) are dropped. Shard files are left in place
    (reading them again is harmless: records are de-duplicated). Returns (samples, failures).

    Example:
        >>> merge_shards("cache")     # after `prepare --shard 0/4` ... `--shard 3/4`   # doctest: +SKIP
        (1000, 3)
    """
    d = Path(cache_dir)
    records = rebuild_manifest(d) if rescan else read_cache_manifest(d)
    records = sorted(records, key=lambda r: r.video_id)
    write_manifest(records, d / "manifest.jsonl")
    done = {r.video_id for r in records}
    fails: dict[str, dict[str, Any]] = {}
    for row in read_failures(d):
        key = str(row.get("video_id") or row.get("path"))
        if key not in done:
            fails[key] = row
    write_jsonl(list(fails.values()), d / "failures.jsonl")
    return len(records), len(fails)
