"""Shared machinery of the dataset adapters: the registry and the value parsers.

Every adapter is a function ``(root: Path, **opts) -> list[SampleRecord]`` registered under a dataset
name with :func:`register`. An adapter reads the layout exactly as the dataset ships it and fills
``split`` only where the dataset has its own split; records it leaves at :data:`UNASSIGNED` get the
seeded stratified split of :mod:`macbdf.data.splits` inside :func:`macbdf.data.adapters.load_dataset`.

Example:
    >>> from macbdf.data.adapters._base import parse_label
    >>> parse_label("FAKE", where="meta.json:3"), parse_label(0, where="x")
    (1, 0)
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from macbdf.data.manifest import CATEGORIES, ManifestError, SampleRecord

log = logging.getLogger("macbdf.data.adapters")

#: Split value an adapter leaves on records whose dataset has no split of its own.
UNASSIGNED = ""

#: Container extensions the ``folder`` adapter (and path resolution) treat as video files.
VIDEO_EXTENSIONS = (
    ".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv",
)

AdapterFn = Callable[..., "list[SampleRecord]"]


@dataclass(frozen=True)
class Adapter:
    """A registered dataset reader."""

    name: str
    fn: AdapterFn
    description: str


REGISTRY: dict[str, Adapter] = {}


def register(name: str) -> Callable[[AdapterFn], AdapterFn]:
    """Decorator adding an adapter function to the registry under ``name``.

    Example:
        >>> @register("doc_example")
        ... def _load(root, **opts):
        ...     return []
        >>> "doc_example" in REGISTRY
        True
        >>> _ = REGISTRY.pop("doc_example")
    """

    def deco(fn: AdapterFn) -> AdapterFn:
        if name in REGISTRY:
            raise ValueError(f"dataset adapter {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Adapter(name=name, fn=fn, description=doc[0] if doc else "")
        return fn

    return deco


# ----------------------------------------------------------------------------------------------
# Value parsers. Each takes ``where`` ("file:line" or "file: record N") so that a bad value gives a
# one-line error that points at the offending metadata entry.

_TRUE = {"1", "fake", "true", "yes", "y", "spoof", "manipulated", "modified"}
_FALSE = {"0", "real", "false", "no", "n", "original", "pristine", "bonafide", "bona-fide", "genuine"}


def parse_label(value: Any, *, where: str, field: str = "label") -> int | None:
    """0/1 from the spellings datasets use (0/1, "REAL"/"FAKE", booleans); None for empty/null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value in (0, 1):
            return int(value)
        raise ManifestError(f"{where}: bad {field} value {value!r} (expected 0 or 1)")
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("", "none", "null", "nan", "na", "n/a", "unknown", "?"):
            return None
        if v in _TRUE:
            return 1
        if v in _FALSE:
            return 0
        try:
            num = float(v)
        except ValueError:
            num = None
        if num in (0.0, 1.0):
            return int(num)
    raise ManifestError(f"{where}: bad {field} value {value!r} (expected 0/1, real/fake or true/false)")


def parse_bool(value: Any, *, where: str, field: str) -> bool:
    """A required yes/no flag (e.g. LAV-DF ``modify_video``); None is an error here."""
    lab = parse_label(value, where=where, field=field)
    if lab is None:
        raise ManifestError(f"{where}: missing {field} (expected true/false)")
    return bool(lab)


def parse_periods(value: Any, *, where: str, field: str = "fake_periods") -> list[list[float]]:
    """``[[start_s, end_s], ...]`` from a list or its JSON text; validates numbers and order."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: {field} is not valid JSON ({e.msg})") from None
    if not isinstance(value, (list, tuple)):
        raise ManifestError(f"{where}: {field} must be a list of [start, end] pairs, got {type(value).__name__}")
    out: list[list[float]] = []
    for p in value:
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)):
            raise ManifestError(f"{where}: {field} entry {p!r} is not a [start, end] pair of numbers")
        s, e = float(p[0]), float(p[1])
        if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e < s:
            raise ManifestError(f"{where}: {field} entry {p!r} is not a valid period (0 <= start <= end)")
        out.append([s, e])
    return out


_SPLIT_ALIASES = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "development": "val",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}


def parse_split(value: Any, *, where: str) -> str:
    """train/val/test from the dataset's spelling (``dev`` -> ``val``); empty -> UNASSIGNED."""
    if value is None:
        return UNASSIGNED
    if not isinstance(value, str):
        raise ManifestError(f"{where}: bad split value {value!r} (expected train, val or test)")
    v = value.strip().lower()
    if not v:
        return UNASSIGNED
    if v not in _SPLIT_ALIASES:
        raise ManifestError(f"{where}: bad split value {value!r} (expected train, val/dev or test)")
    return _SPLIT_ALIASES[v]


def parse_category(value: Any, *, where: str) -> str | None:
    """RVRA/RVFA/FVRA/FVFA (case-insensitive); empty -> None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{where}: bad category {value!r} (expected one of {', '.join(CATEGORIES)})")
    v = value.strip().upper()
    if not v:
        return None
    if v not in CATEGORIES:
        raise ManifestError(f"{where}: bad category {value!r} (expected one of {', '.join(CATEGORIES)})")
    return v


def optional_str(value: Any, *, where: str, field: str) -> str | None:
    """A free-text field: str (stripped, empty -> None), numbers are turned into text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ManifestError(f"{where}: {field} must be text, got {type(value).__name__}")
    s = str(value).strip()
    return s or None


def labels_of_category(category: str) -> tuple[int, int]:
    """(video_label, audio_label) of a category name."""
    return int(category.startswith("FV")), int(category.endswith("FA"))


# ----------------------------------------------------------------------------------------------
# Files.

def check_root(root: str | os.PathLike, *, dataset: str) -> Path:
    """The dataset root as an absolute Path; a missing root is a one-line ManifestError."""
    p = Path(root).expanduser()
    if not p.exists():
        raise ManifestError(f"{p}: {dataset} root does not exist")
    return p.resolve()


def open_text(path: Path) -> IO[str]:
    """Open a metadata text/CSV file (utf-8-sig: spreadsheets write a BOM); ManifestError if unreadable."""
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror or e})") from None


def load_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{e.lineno}: invalid JSON ({e.msg}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e.strerror or e})") from None


def iter_video_files(root: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> Iterator[Path]:
    """Video files under ``root``, recursively, in a stable (sorted) order.

    Hidden files and folders (".x", and macOS "._x" resource forks, which carry a video extension but
    are not videos) are skipped; symlinked folders are followed once (a loop is not re-entered).
    """
    exts = {e.lower() for e in extensions}
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in exts:
                yield Path(dirpath) / name


def handle_missing(records: list[SampleRecord], *, missing: str, dataset: str, source: Path) -> list[SampleRecord]:
    """Apply the ``missing`` option to records whose media file does not exist.

    ``"skip"`` drops them with one warning (a partial download is the usual cause), ``"keep"`` keeps
    them with ``extra["missing"] = True`` (``prepare`` then lists them in failures.jsonl),
    ``"error"`` raises a ManifestError naming the first one.
    """
    if missing not in ("skip", "keep", "error"):
        raise ManifestError(f"missing must be 'skip', 'keep' or 'error', got {missing!r}")
    gone = [r for r in records if not os.path.exists(r.path)]
    if not gone:
        return records
    if missing == "error":
        r = gone[0]
        raise ManifestError(f"{source}: {len(gone)} listed file(s) not found, e.g. {r.path} ({r.video_id})")
    if missing == "keep":
        for r in gone:
            r.extra["missing"] = True
        log.warning("%s: %d of %d listed files not found (kept, flagged missing)", dataset, len(gone), len(records))
        return records
    log.warning("%s: %d of %d listed files not found under %s (skipped; pass missing='keep' to keep them)",
                dataset, len(gone), len(records), source)
    gone_ids = {id(r) for r in gone}
    return [r for r in records if id(r) not in gone_ids]
