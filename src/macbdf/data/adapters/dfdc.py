"""``dfdc``: the DeepFake Detection Challenge dataset (train parts + labelled test sets).

Layout (any of these, combined)::

    ROOT/dfdc_train_part_<k>/metadata.json   {"<name>.mp4": {"label": "REAL"|"FAKE", "split": "train",
                                                              "original": "<src>.mp4"}}   + the videos
    ROOT/<test folder>/labels.csv            filename,label   (0/1)                    + the videos
    ROOT/<test folder>/metadata.json         {"<name>.mp4": {"is_fake": 0|1, ...}}     + the videos

Metadata files are looked for in ROOT and up to two folder levels below it. Split: the entry's
``split`` when present, else ``test`` for labels.csv and for folders not named like a train part.
video_id = the file name key (DFDC names are unique across the release). Identity = the source
video (``original``; a real video is its own source): fakes of one actor share it, which is what
identity-disjoint splits need; DFDC has no subject ids.

Per-modality labels: DFDC labels are per video only, and some fakes have swapped audio, so the
labels cannot say which track is fake. ``modality_labels`` chooses what to record for fakes:
``"unknown"`` (default; video_label = audio_label = None, category None), ``"visual"``
(video_label = 1, audio_label = None: the usual reading, every DFDC fake has a swapped face) or
``"compare"`` (decode each fake and its original and compare the tracks; slow, needs the
originals on disk; falls back to None where a comparison is impossible). Real videos are 0/0.

Example:
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp()); p = d / "dfdc_train_part_0"; p.mkdir()
    >>> _ = (p / "metadata.json").write_text(json.dumps({
    ...     "a.mp4": {"label": "REAL", "split": "train", "original": None},
    ...     "b.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"}}))
    >>> [(r.video_id, r.label, r.video_label, r.identity) for r in load_dfdc(d, missing="keep")]
    [('a.mp4', 0, 0, 'a.mp4'), ('b.mp4', 1, None, 'a.mp4')]
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import (UNASSIGNED, check_root, open_text, handle_missing, iter_video_files, load_json, optional_str, parse_label,
                    parse_split, register)

_TRAIN_PART = re.compile(r"^dfdc_train_part_\d+$", re.I)


def _metadata_files(root: Path) -> Iterator[Path]:
    """metadata.json / labels.csv in ROOT and up to two folder levels below, in a stable order."""
    levels = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    more = []
    for d in levels[1:]:
        more += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    for d in levels + more:
        for name in ("metadata.json", "labels.csv"):
            if (d / name).is_file():
                yield d / name


class _Locator:
    """The video of a key in a metadata folder: next to it, else a unique match below it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._index: dict[str, list[Path]] | None = None

    def find(self, key: str) -> str:
        direct = os.path.join(self.folder, key)
        if os.path.isfile(direct):  # os.path: ~3x cheaper than pathlib over 100k+ entries
            return direct
        if self._index is None:
            self._index = {}
            for f in iter_video_files(self.folder):
                self._index.setdefault(f.name, []).append(f)
        hits = self._index.get(os.path.basename(key), [])
        return str(hits[0]) if len(hits) == 1 else direct


@register("dfdc")
def load_dfdc(root: Path, *, modality_labels: str = "unknown", missing: str = "skip") -> list[SampleRecord]:
    """DFDC: ROOT holds ``dfdc_train_part_*/metadata.json`` and/or test ``labels.csv`` / metadata.

    Options: ``modality_labels`` (unknown | visual | compare: what fakes' video/audio labels say),
    ``missing`` (skip | keep | error).
    """
    if modality_labels not in MODALITY_MODES:
        raise ValueError(f"modality_labels must be one of {', '.join(MODALITY_MODES)}, got {modality_labels!r}")
    root = check_root(root, dataset="dfdc")
    files = list(_metadata_files(root)) if root.is_dir() else [root]
    if not files:
        raise ManifestError(f"{root}: no DFDC metadata found (expected dfdc_train_part_*/metadata.json "
                            f"or a test folder with labels.csv / metadata.json)")
    records: list[SampleRecord] = []
    for f in files:
        loc = _Locator(f.parent)
        entries = _read_labels_csv(f) if f.suffix == ".csv" else _read_metadata(f)
        default_split = "train" if _TRAIN_PART.match(f.parent.name) else "test"
        for where, key, lab, split, original, extra in entries:
            records.append(_record(key, lab, split or default_split, original, extra, loc=loc))
    records = handle_missing(records, missing=missing, dataset="dfdc", source=root)
    MODALITY_MODES[modality_labels](records)
    return records


def _assume_visual(records: list[SampleRecord]) -> None:
    for r in records:
        if r.label == 1:
            r.video_label = 1


def _compare(records: list[SampleRecord]) -> None:
    from .dfdc_compare import derive_modality_labels  # decodes media: imported only when asked for

    derive_modality_labels(records)


#: What a fake's per-modality labels become (see the module docstring).
MODALITY_MODES: dict[str, Callable[[list[SampleRecord]], None]] = {
    "unknown": lambda records: None, "visual": _assume_visual, "compare": _compare,
}


def _record(key: str, label: int, split: str, original: str | None, extra: dict[str, Any], *,
            loc: _Locator) -> SampleRecord:
    real = label == 0
    return SampleRecord(
        video_id=key, path=loc.find(key), label=label,
        video_label=0 if real else None, audio_label=0 if real else None,
        category="RVRA" if real else None, method="real" if real else "dfdc",
        split=split, identity=original or key, dataset="dfdc",
        extra={**extra, **({"original": original} if original else {})},
    )


Entry = tuple[str, str, int, str, "str | None", dict[str, Any]]


def _key(value: Any, *, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: missing or empty file name")
    if "/" not in value and "\\" not in value and value.strip() not in (".", ".."):
        return value.strip()  # the usual bare DFDC name
    p = PurePosixPath(value.strip().replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise ManifestError(f"{where}: file name must be relative, got {value!r}")
    return p.as_posix()


def _read_metadata(path: Path) -> list[Entry]:
    data = load_json(path)
    if isinstance(data, list):
        # Some re-packagings store a list of {"filename": ..., ...} objects instead of a mapping.
        items = []
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise ManifestError(f"{path}: record {i}: expected a JSON object, got {type(obj).__name__}")
            items.append((f"{path}: record {i}", obj.get("filename") or obj.get("file"), obj))
    elif isinstance(data, dict):
        items = [(f"{path}: entry {k!r}", k, v) for k, v in data.items()]
    else:
        raise ManifestError(f"{path}: expected a JSON object mapping file names to labels")
    out: list[Entry] = []
    for where, key, obj in items:
        key = _key(key, where=where)
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if "label" in obj:
            lab = parse_label(obj["label"], where=where, field="label")
        elif "is_fake" in obj:
            lab = parse_label(obj["is_fake"], where=where, field="is_fake")
        else:
            raise ManifestError(f"{where}: no 'label' or 'is_fake' field")
        if lab is None:
            raise ManifestError(f"{where}: empty label")
        split = parse_split(obj.get("split"), where=where) if obj.get("split") is not None else UNASSIGNED
        original = optional_str(obj.get("original"), where=where, field="original")
        extra = {k: obj[k] for k in ("set", "augmentations", "source") if k in obj}
        out.append((where, key, lab, split, original if lab == 1 else None, extra))
    return out


def _read_labels_csv(path: Path) -> list[Entry]:
    out: list[Entry] = []
    with open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in (next(reader, None) or [])]
            if not header:
                raise ManifestError(f"{path}:1: empty file (expected header filename,label)")
            for col in ("filename", "label"):
                if col not in header:
                    raise ManifestError(f"{path}:1: missing column {col!r} (header: {','.join(header)})")
            fi, li = header.index("filename"), header.index("label")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not any(c.strip() for c in row):
                    continue
                if len(row) <= max(fi, li):
                    raise ManifestError(f"{where}: {len(row)} values, expected {len(header)}")
                lab = parse_label(row[li], where=where, field="label")
                if lab is None:
                    raise ManifestError(f"{where}: empty label")
                out.append((where, _key(row[fi], where=where), lab, "test", None, {}))
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise ManifestError(f"{path}:{reader.line_num}: bad CSV ({e})") from None
    return out
