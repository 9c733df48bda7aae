"""``fakeavceleb``: FakeAVCeleb v1.2 as shipped (``meta_data.csv`` + four category folders).

Layout::

    ROOT/meta_data.csv
    ROOT/RealVideo-RealAudio/<ethnicity>/<men|women>/idXXXXX/*.mp4   (ethnicity e.g. "Asian (East)")
    ROOT/RealVideo-FakeAudio/...  ROOT/FakeVideo-RealAudio/...  ROOT/FakeVideo-FakeAudio/...

``meta_data.csv`` header: ``source,target1,target2,method,category,type,race,gender,path,`` - the
``path`` column holds the file name and the unnamed 10th column the directory, which starts with
``FakeAVCeleb/`` rather than the name of the folder the user unpacked (``FakeAVCeleb_v1.2``). Some
rows are repeated (sometimes with a different ``method`` for the same file); the first is kept and
the other methods are listed in ``extra["alt_methods"]``. Category A=RVRA, B=RVFA, C=FVRA, D=FVFA.
No official split; identity = ``source`` (for identity-disjoint splits).

The synthetic benchmark (``macbdf synth --layout fakeavceleb``) writes the same layout plus
``synth_info.json``, which says which identities belong to which split (identity-disjoint, with
held-out manipulation families only in test); when that file is present its split is used as the
dataset's own (``synth_info=False`` ignores it). ``macbdf forge --layout fakeavceleb`` writes
``forge_info.json`` with the same kind of table (``identity_splits``), read the same way.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> clip = d / "RealVideo-RealAudio" / "Asian (East)" / "men" / "id00001"
    >>> clip.mkdir(parents=True); _ = (clip / "00001.mp4").write_bytes(b"")
    >>> _ = (d / "meta_data.csv").write_text(
    ...     "source,target1,target2,method,category,type,race,gender,path,\\n"
    ...     "id00001,-,-,real,A,RealVideo-RealAudio,Asian (East),men,00001.mp4,"
    ...     "FakeAVCeleb/RealVideo-RealAudio/Asian (East)/men/id00001\\n")
    >>> r = load_fakeavceleb(d)[0]
    >>> r.video_id, r.category, r.method, r.identity
    ('RealVideo-RealAudio/Asian (East)/men/id00001/00001.mp4', 'RVRA', 'real', 'id00001')
"""
from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import (UNASSIGNED, check_root, open_text, handle_missing, iter_video_files, labels_of_category, load_json,
                    parse_split, register)

log = logging.getLogger("macbdf.data.adapters")

CATEGORY_LETTERS = {"A": "RVRA", "B": "RVFA", "C": "FVRA", "D": "FVFA"}
TYPE_FOLDERS = {
    "realvideo-realaudio": "RVRA", "realvideo-fakeaudio": "RVFA",
    "fakevideo-realaudio": "FVRA", "fakevideo-fakeaudio": "FVFA",
}
FOLDER_NAME = {"RVRA": "RealVideo-RealAudio", "RVFA": "RealVideo-FakeAudio",
               "FVRA": "FakeVideo-RealAudio", "FVFA": "FakeVideo-FakeAudio"}
_REQUIRED = ("source", "method", "category", "path")


def _norm_type(value: str) -> str | None:
    return TYPE_FOLDERS.get(value.strip().lower().replace("_", "-").replace(" ", ""))


class _Resolver:
    """Finds the real file of a metadata row; tolerant of how the archive was unpacked."""

    def __init__(self, root: Path):
        self.root = root
        self._index: dict[tuple[str, str], list[Path]] | None = None

    def candidates(self, parts: list[str], fname: str, row: dict[str, str]) -> Iterator[str]:
        """Likely locations, most likely first (plain strings: pathlib costs ~3x over 20k rows)."""
        root = str(self.root)
        if parts:
            # "FakeAVCeleb/<type>/..." -> ROOT/<type>/...; whatever the first component is called.
            start = next((i for i, p in enumerate(parts) if _norm_type(p)), 1 if len(parts) > 1 else 0)
            yield os.path.join(root, *parts[start:], fname)
            yield os.path.join(root, *parts, fname)
            yield os.path.join(os.path.dirname(root), *parts, fname)
        typ, race, gender, src = (row.get(k, "").strip() for k in ("type", "race", "gender", "source"))
        if typ and race and gender and src:
            yield os.path.join(root, typ, race, gender, src, fname)

    def find(self, parts: list[str], fname: str, row: dict[str, str], category: str) -> tuple[str, bool]:
        first = None
        for c in self.candidates(parts, fname, row):
            first = first or c
            if os.path.isfile(c):
                return c, True
        # Last resort: a unique file of that name in a folder of that identity, inside the right
        # category folder (covers renamed ethnicity folders, extra nesting levels, case changes).
        if self._index is None:
            self._index = {}
            for f in iter_video_files(self.root):
                self._index.setdefault((f.parent.name.lower(), f.name.lower()), []).append(f)
        parent = parts[-1] if parts else row.get("source", "")
        hits = [f for f in self._index.get((parent.lower(), fname.lower()), [])
                if any(_norm_type(p) == category for p in f.relative_to(self.root).parts)]
        if len(hits) == 1:
            return str(hits[0]), True
        return first or os.path.join(str(self.root), fname), False


@register("fakeavceleb")
def load_fakeavceleb(root: Path, *, metadata: str = "meta_data.csv", missing: str = "skip",
                     synth_info: bool = True) -> list[SampleRecord]:
    """FakeAVCeleb v1.2: ROOT holds ``meta_data.csv`` and the four category folders.

    Options: ``metadata`` (file name of the CSV inside ROOT, or a path), ``missing``
    (skip | keep | error: rows whose file cannot be found), ``synth_info`` (use the identity
    splits of a synthetic benchmark's ``synth_info.json`` when present).
    """
    root = check_root(root, dataset="fakeavceleb")
    if root.is_file():  # ROOT given as the CSV itself
        root, metadata = root.parent, str(root)
    meta = Path(metadata) if os.path.isabs(metadata) else root / metadata
    if not meta.is_file():
        raise ManifestError(f"{meta}: FakeAVCeleb metadata not found (expected meta_data.csv in the dataset folder)")
    resolver = _Resolver(root)
    records: list[SampleRecord] = []
    by_id: dict[str, SampleRecord] = {}
    conflicts = 0
    with open_text(meta) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise ManifestError(f"{meta}:1: empty file (no header line)")
            header = [h.strip().lower() for h in header]
            missing_cols = [c for c in _REQUIRED if c not in header]
            if missing_cols:
                raise ManifestError(f"{meta}:1: missing column(s) {', '.join(missing_cols)} "
                                    f"(header: {','.join(header)})")
            col = {h: i for i, h in enumerate(header) if h}
            # The directory sits in the column right after `path`: unnamed in the original file,
            # "Unnamed: 9" once the CSV went through pandas.
            dir_idx = col["path"] + 1
            for row in reader:
                line = reader.line_num
                where = f"{meta}:{line}"
                if not any(c.strip() for c in row):
                    continue
                if len(row) < len(col):
                    raise ManifestError(f"{where}: {len(row)} values, expected at least {len(col)} "
                                        f"({','.join(header)})")
                vals: dict[str, Any] = {h: row[i].strip() for h, i in col.items() if i < len(row)}
                dir_col = row[dir_idx].strip() if dir_idx < len(row) else ""
                rec, conflict = _record(vals, dir_col, where=where, root=root, resolver=resolver)
                conflicts += conflict
                prev = by_id.get(rec.video_id)
                if prev is not None:
                    if (prev.video_label, prev.audio_label) != (rec.video_label, rec.audio_label):
                        raise ManifestError(f"{where}: {rec.video_id} listed again with category "
                                            f"{rec.category} (first listed as {prev.category})")
                    if rec.method != prev.method and rec.method not in prev.extra.setdefault("alt_methods", []):
                        prev.extra["alt_methods"].append(rec.method)
                    continue
                by_id[rec.video_id] = rec
                records.append(rec)
        except UnicodeDecodeError as e:
            raise ManifestError(f"{meta}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise ManifestError(f"{meta}:{reader.line_num}: bad CSV ({e})") from None
    if conflicts:
        log.warning("fakeavceleb: %d row(s) whose category letter disagrees with their folder; "
                    "the folder (type) was used", conflicts)
    info = next((root / n for n in (SYNTH_INFO, FORGE_INFO) if (root / n).is_file()), None)
    if synth_info and info is not None:
        splits = identity_splits(info)
        for r in records:
            r.split = splits.get(r.identity or "", UNASSIGNED)
    return handle_missing(records, missing=missing, dataset="fakeavceleb", source=root)


SYNTH_INFO = "synth_info.json"
FORGE_INFO = "forge_info.json"   # ``macbdf forge`` output: same identity_splits table


def _identity_name(value: Any, *, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ManifestError(f"{where}: identity must be a name or an index, got {value!r}")
    # The synthetic benchmark names identity k "id%05d" (FakeAVCeleb's own style).
    return value if isinstance(value, str) else f"id{value:05d}"


def identity_splits(path: Path) -> dict[str, str]:
    """identity -> split from a ``synth_info.json`` ({} when it holds no split table).

    Accepts ``{"identities": {"train": [...], "val": [...], "test": [...]}}`` (names, or indices
    meaning ``id%05d``) or ``{"identities": {"id00001": "train", ...}}``; the key may also be
    ``identity_splits`` or ``splits``; ``dev`` means val.

    Example:
        >>> import tempfile, json, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "synth_info.json"
        >>> _ = p.write_text(json.dumps({"seed": 0, "identities": {"train": [0, 1], "dev": ["id00002"]}}))
        >>> identity_splits(p)
        {'id00000': 'train', 'id00001': 'train', 'id00002': 'val'}
    """
    data = load_json(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object")
    for key in ("identities", "identity_splits", "splits"):
        table = data.get(key)
        if not isinstance(table, dict) or not table:
            continue
        where = f"{path}: {key}"
        out: dict[str, str] = {}
        if all(isinstance(v, list) for v in table.values()):
            for split, names in table.items():
                s = parse_split(split, where=where)
                for n in names:
                    out[_identity_name(n, where=where)] = s
            return out
        if all(isinstance(v, str) for v in table.values()):
            return {str(k): parse_split(v, where=f"{where}.{k}") for k, v in table.items()}
    # Not a table we know: the file is informative only, so fall back to the seeded split.
    log.warning("%s: no identity split table found (identities / identity_splits / splits); "
                "using the seeded split", path)
    return {}


def _record(vals: dict[str, Any], dir_col: str, *, where: str, root: Path,
            resolver: _Resolver) -> tuple[SampleRecord, bool]:
    fname = vals.get("path", "")
    if not fname:
        raise ManifestError(f"{where}: empty 'path' (file name)")
    letter = vals.get("category", "").upper()
    cat_letter = CATEGORY_LETTERS.get(letter)
    # The folder the file sits in decides (the directory column, else the `type` column); the
    # letter is only a code for it and is used when neither names a category folder.
    cat_type = next((c for c in map(_norm_type, dir_col.replace("\\", "/").split("/")) if c), None)
    if cat_type is None and vals.get("type"):
        cat_type = _norm_type(vals["type"])
    if cat_letter is None and cat_type is None:
        raise ManifestError(f"{where}: bad category {vals.get('category')!r} (expected A, B, C or D)")
    conflict = cat_letter is not None and cat_type is not None and cat_letter != cat_type
    category = cat_type or cat_letter
    assert category is not None
    vl, al = labels_of_category(category)
    source = vals.get("source") or None
    parts = [p for p in dir_col.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    path, _found = resolver.find(parts, fname, vals, category)

    # The id comes from the metadata (directory without its "FakeAVCeleb/" head, + file name), not
    # from where the file happened to be found, so it is the same on every machine.
    start = next((i for i, p in enumerate(parts) if _norm_type(p)), None)
    if start is not None:
        rel_dir = "/".join(parts[start:])
    else:
        rel_dir = "/".join(x for x in (FOLDER_NAME[category], vals.get("race", ""), vals.get("gender", ""), source or "") if x)
    video_id = f"{rel_dir}/{fname}" if rel_dir else fname

    method = (vals.get("method") or "").lower() or None
    if category == "RVRA":
        method = "real"
    extra = {k: vals[k] for k in ("target1", "target2", "race", "gender", "type") if vals.get(k) not in (None, "", "-")}
    if conflict:
        extra["category_letter"] = letter
    return SampleRecord(
        video_id=video_id, path=path, label=int(bool(vl or al)), video_label=vl, audio_label=al,
        category=category, method=method, split=UNASSIGNED, identity=source, dataset="fakeavceleb",
        extra=extra,
    ), conflict
