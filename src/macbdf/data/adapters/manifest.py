"""``manifest``: a generic CSV or JSONL list of samples in the fields of ``SampleRecord``.

Use it for any dataset without an adapter of its own (DefakeAVMiT with per-modality labels, in-house
collections). Columns / fields:

* ``path`` (required): media file, absolute or relative to the manifest's folder (or ``media_root``).
* ``label`` (0/1, real/fake, true/false) and/or ``video_label`` / ``audio_label``; or ``category``
  (RVRA/RVFA/FVRA/FVFA). Missing parts are derived where they follow (label = video OR audio;
  a real sample has real tracks; a category fixes both tracks); contradictions are errors.
* optional: ``video_id`` (default: the path as written, relative, POSIX form), ``split``
  (train/val/dev/test; empty = assigned by the seeded split), ``fake_periods``,
  ``video_fake_periods``, ``audio_fake_periods`` (in CSV as JSON text, e.g. ``"[[0.5, 1.2]]"``),
  ``identity``, ``method``, ``dataset``, ``extra`` (object; JSON text in CSV).
  Any other column is kept under ``extra``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "m.csv").write_text("path,label,fake_periods\\na.mp4,fake,\\"[[0.5, 1.0]]\\"\\n")
    >>> r = load_manifest(d / "m.csv", missing="keep")[0]
    >>> r.video_id, r.label, r.fake_periods
    ('a.mp4', 1, [[0.5, 1.0]])
"""
from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterator

from macbdf.data.manifest import ManifestError, SampleRecord, iter_jsonl

from ._base import (UNASSIGNED, check_root, open_text, handle_missing, labels_of_category, load_json, optional_str,
                    parse_category, parse_label, parse_periods, parse_split, register)

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv", "manifest.json", "metadata.csv", "metadata.jsonl")


@register("manifest")
def load_manifest(root: Path, *, manifest: str | None = None, media_root: str | Path | None = None,
                  missing: str = "skip") -> list[SampleRecord]:
    """A CSV / JSONL (or JSON list) manifest: ROOT is the file, or a folder holding one.

    Options: ``manifest`` (file name inside ROOT when ROOT is a folder; default: the first of
    manifest.jsonl, manifest.csv, manifest.json, metadata.csv, metadata.jsonl), ``media_root``
    (base of relative paths; default the manifest's folder), ``missing`` (skip | keep | error:
    what to do with listed files that do not exist).
    """
    root = check_root(root, dataset="manifest")
    path = _find_manifest(root, manifest)
    base = Path(media_root).expanduser().resolve() if media_root is not None else path.parent
    suffix = path.suffix.lower()
    if suffix == ".csv" or suffix == ".tsv":
        rows = _iter_csv(path, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl":
        rows = ((f"{path}:{n}", obj) for n, obj in iter_jsonl(path))
    elif suffix == ".json":
        rows = _iter_json_list(path)
    else:
        raise ManifestError(f"{path}: unknown manifest type {suffix!r} (use .csv, .tsv, .jsonl or .json)")
    records = [_record(obj, where=where, base=base) for where, obj in rows]
    return handle_missing(records, missing=missing, dataset="manifest", source=path)


def _find_manifest(root: Path, name: str | None) -> Path:
    if root.is_file():
        return root
    if name is not None:
        p = root / name
        if not p.is_file():
            raise ManifestError(f"{p}: manifest file not found")
        return p
    for n in MANIFEST_NAMES:
        if (root / n).is_file():
            return root / n
    raise ManifestError(f"{root}: no manifest file found (looked for {', '.join(MANIFEST_NAMES)})")


def _iter_csv(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise ManifestError(f"{path}:1: empty manifest (no header line)")
            header = [h.strip() for h in header]
            if "path" not in header:
                raise ManifestError(f"{path}:{reader.line_num}: missing required column 'path' "
                                    f"(columns: {', '.join(h for h in header if h) or 'none'})")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not any(c.strip() for c in row):
                    continue
                if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
                    raise ManifestError(f"{where}: {len(row)} values but the header has {len(header)} columns")
                obj = {h: (row[i] if i < len(row) else "") for i, h in enumerate(header) if h}
                yield where, obj
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise ManifestError(f"{path}:{reader.line_num}: bad CSV ({e})") from None


def _iter_json_list(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    data = load_json(path)
    if isinstance(data, dict) and isinstance(data.get("samples"), list):
        data = data["samples"]
    if not isinstance(data, list):
        raise ManifestError(f"{path}: expected a JSON list of sample objects")
    for i, obj in enumerate(data):
        where = f"{path}: record {i}"
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield where, obj


def _json_field(value: Any, *, where: str, field: str, kind: type) -> Any:
    """A structured field that CSV carries as JSON text."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: {field} is not valid JSON ({e.msg})") from None
    if value is not None and not isinstance(value, kind):
        raise ManifestError(f"{where}: {field} must be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _record(obj: dict[str, Any], *, where: str, base: Path) -> SampleRecord:
    raw_path = obj.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise ManifestError(f"{where}: missing or empty 'path'")
    raw_path = raw_path.strip()
    # Windows-written manifests use backslashes; treat them as separators unless the file exists as is.
    p = Path(raw_path).expanduser()
    if "\\" in raw_path and not (base / p).exists() and not p.exists():
        p = Path(PureWindowsPath(raw_path).as_posix())
    full = p if p.is_absolute() else base / p

    vid = optional_str(obj.get("video_id"), where=where, field="video_id")
    if vid is None:
        if p.is_absolute():
            try:
                vid = full.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                raise ManifestError(f"{where}: absolute path outside the manifest folder needs a video_id "
                                    f"(ids are never made from absolute paths)") from None
        else:
            vid = PurePosixPath(p.as_posix()).as_posix().removeprefix("./")

    label = parse_label(obj.get("label"), where=where, field="label")
    vl = parse_label(obj.get("video_label"), where=where, field="video_label")
    al = parse_label(obj.get("audio_label"), where=where, field="audio_label")
    cat = parse_category(obj.get("category"), where=where)
    if cat is not None:
        cv, ca = labels_of_category(cat)
        if (vl is not None and vl != cv) or (al is not None and al != ca):
            raise ManifestError(f"{where}: category {cat} contradicts video_label={vl}, audio_label={al}")
        vl, al = cv, ca
    if label == 0:
        if vl == 1 or al == 1:
            raise ManifestError(f"{where}: label 0 (real) but a track is labelled fake")
        vl, al = 0, 0
    if vl is not None and al is not None:
        derived = int(bool(vl or al))
        if label is not None and label != derived:
            raise ManifestError(f"{where}: label {label} contradicts video_label={vl}, audio_label={al}")
        label = derived
        cat = ("FV" if vl else "RV") + ("FA" if al else "RA")
    elif label is None and (vl == 1 or al == 1):
        label = 1

    periods = parse_periods(obj.get("fake_periods"), where=where)
    vp = obj.get("video_fake_periods")
    ap = obj.get("audio_fake_periods")
    vp = None if vp in (None, "") else parse_periods(vp, where=where, field="video_fake_periods")
    ap = None if ap in (None, "") else parse_periods(ap, where=where, field="audio_fake_periods")
    if not periods and (vp or ap):
        periods = sorted((vp or []) + (ap or []))

    extra = _json_field(obj.get("extra"), where=where, field="extra", kind=dict) or {}
    known = {"path", "video_id", "label", "video_label", "audio_label", "category", "fake_periods",
             "video_fake_periods", "audio_fake_periods", "split", "identity", "method", "dataset", "extra",
             "duration"}
    for k, v in obj.items():
        if k not in known and v not in (None, ""):
            extra[k] = v
    duration = obj.get("duration")
    if duration not in (None, ""):
        try:
            extra["duration"] = float(duration)
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: bad duration {duration!r} (expected seconds)") from None

    return SampleRecord(
        video_id=vid,
        path=str(full),
        label=label,
        video_label=vl,
        audio_label=al,
        fake_periods=periods,
        video_fake_periods=vp,
        audio_fake_periods=ap,
        category=cat,
        method=optional_str(obj.get("method"), where=where, field="method") or ("real" if label == 0 else None),
        split=parse_split(obj.get("split"), where=where) if obj.get("split") is not None else UNASSIGNED,
        identity=optional_str(obj.get("identity"), where=where, field="identity"),
        dataset=optional_str(obj.get("dataset"), where=where, field="dataset") or "manifest",
        extra=extra,
    )
