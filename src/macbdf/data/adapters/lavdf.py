"""``lavdf``: LAV-DF (``metadata.json`` or ``metadata.min.json``, a list of records).

Record fields used: ``file`` (e.g. ``test/000001.mp4``, relative to ROOT; also the video_id),
``split`` (train/dev/test -> train/val/test), ``modify_video``, ``modify_audio``, ``n_fakes``,
``fake_periods`` ([[start_s, end_s]]), ``original`` (source video of a fake, null for reals),
``duration``. Fake periods apply to the modalities whose ``modify_*`` flag is true (as in BA-TFD),
so per-modality periods are left to ``SampleRecord.periods_for``. Method = the modified
modalities (``real``, ``visual_modified``, ``audio_modified``, ``both_modified``; LAV-DF has one
content-driven generator). Identity = the source video (``original``, or the file itself for a
real video): LAV-DF has no subject ids, and a fake shares its person with its original.

Optional keys (written by ``macbdf forge``, absent from LAV-DF itself): ``identity`` (the person,
used instead of the source video), ``method`` (the manipulation, instead of the modified
modalities), and per-modality periods ``visual_fake_periods`` / ``audio_fake_periods`` (also
spelled ``*_fake_segments`` as in AV-Deepfake1M), used instead of applying ``fake_periods`` to
every modified modality; ``audio_recorded`` (the fake audio is an unedited recording, fake only in
its pairing with the face: kept as ``extra["audio_recorded"]``, see ``data/dataset.py``).

Example:
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "metadata.min.json").write_text(json.dumps([{"file": "dev/000002.mp4", "n_fakes": 1,
    ...     "fake_periods": [[1.0, 1.4]], "modify_video": False, "modify_audio": True, "split": "dev",
    ...     "duration": 3.2, "original": "dev/000001.mp4"}]))
    >>> r = load_lavdf(d, missing="keep")[0]
    >>> r.video_id, r.split, r.category, r.periods_for("video"), r.periods_for("audio")
    ('dev/000002.mp4', 'val', 'RVFA', [], [[1.0, 1.4]])
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import (check_root, handle_missing, load_json, optional_str, parse_bool, parse_periods, parse_split,
                    register)

METADATA_NAMES = ("metadata.json", "metadata.min.json")
METHOD_OF = {(0, 0): "real", (1, 0): "visual_modified", (0, 1): "audio_modified", (1, 1): "both_modified"}


def find_metadata(root: Path, names: tuple[str, ...], dataset: str, option: str | None) -> Path:
    """The metadata file: ``option`` (name in ROOT or a path) or the first of ``names`` present."""
    if option is not None:
        p = Path(option) if os.path.isabs(option) else root / option
        if not p.is_file():
            raise ManifestError(f"{p}: {dataset} metadata not found")
        return p
    if root.is_file():
        return root
    for n in names:
        if (root / n).is_file():
            return root / n
    raise ManifestError(f"{root}: no {dataset} metadata found (looked for {', '.join(names)})")


def rel_file(value: Any, *, where: str) -> str:
    """A dataset-relative file name (POSIX), refusing absolute paths and ``..`` (ids must be stable)."""
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{where}: missing or empty 'file'")
    p = PurePosixPath(value.strip().replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise ManifestError(f"{where}: 'file' must be relative to the dataset folder, got {value!r}")
    return p.as_posix()


def number(value: Any, *, where: str, field: str, integer: bool = False) -> float | int | None:
    """A JSON number field (None stays None); text, booleans and fractions-for-counts are errors."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"{where}: {field} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ManifestError(f"{where}: {field} must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


@register("lavdf")
def load_lavdf(root: Path, *, metadata: str | None = None, missing: str = "skip") -> list[SampleRecord]:
    """LAV-DF: ROOT holds ``metadata.json`` (or ``metadata.min.json``) and the train/dev/test folders.

    Options: ``metadata`` (file name or path of the metadata), ``missing`` (skip | keep | error).
    """
    root = check_root(root, dataset="lavdf")
    meta = find_metadata(root, METADATA_NAMES, "lavdf", metadata)
    base = meta.parent
    data = load_json(meta)
    if not isinstance(data, list):
        raise ManifestError(f"{meta}: expected a JSON list of records, got {type(data).__name__}")
    records = []
    for i, obj in enumerate(data):
        where = f"{meta}: record {i}"
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        records.append(_record(obj, where=where, base=base))
    return handle_missing(records, missing=missing, dataset="lavdf", source=meta)


def _record(obj: dict[str, Any], *, where: str, base: Path) -> SampleRecord:
    file = rel_file(obj.get("file"), where=where)
    for k in ("modify_video", "modify_audio", "split"):
        if k not in obj:
            raise ManifestError(f"{where}: missing field {k!r}")
    vl = int(parse_bool(obj["modify_video"], where=where, field="modify_video"))
    al = int(parse_bool(obj["modify_audio"], where=where, field="modify_audio"))
    split = parse_split(obj["split"], where=where)
    periods = parse_periods(obj.get("fake_periods"), where=where)
    n_fakes = number(obj.get("n_fakes"), where=where, field="n_fakes", integer=True)
    label = int(bool(vl or al))
    if label == 0 and (periods or (n_fakes or 0) > 0):
        raise ManifestError(f"{where}: fake periods / n_fakes on a record with modify_video and "
                            f"modify_audio both false")
    if n_fakes is not None and periods and n_fakes != len(periods):
        raise ManifestError(f"{where}: n_fakes={n_fakes} but {len(periods)} fake_periods")
    original = optional_str(obj.get("original"), where=where, field="original")
    identity = optional_str(obj.get("identity"), where=where, field="identity")
    method = optional_str(obj.get("method"), where=where, field="method")
    own: dict[str, list[list[float]] | None] = {}
    for mod, flag in (("visual", vl), ("audio", al)):
        key = next((f"{mod}_fake_{k}" for k in ("periods", "segments") if f"{mod}_fake_{k}" in obj), None)
        own[mod] = None if key is None else parse_periods(obj[key], where=where, field=key)
        if own[mod] and not flag:
            raise ManifestError(f"{where}: {key} on a record whose modify_{'video' if mod == 'visual' else 'audio'} is false")
    extra: dict[str, Any] = {}
    if original:
        extra["original"] = original
    if obj.get("audio_recorded") is not None and parse_bool(obj["audio_recorded"], where=where, field="audio_recorded"):
        if not al:
            raise ManifestError(f"{where}: audio_recorded on a record whose modify_audio is false")
        extra["audio_recorded"] = True
    for k in ("duration", "video_frames", "audio_frames", "audio_channels", "n_fakes"):
        v = number(obj.get(k), where=where, field=k)
        if v is not None:
            extra[k] = int(v) if k != "duration" else v
    return SampleRecord(
        video_id=file, path=str(base / file), label=label, video_label=vl, audio_label=al,
        fake_periods=periods, video_fake_periods=own["visual"], audio_fake_periods=own["audio"],
        category=("FV" if vl else "RV") + ("FA" if al else "RA"),
        method=method or METHOD_OF[(vl, al)], split=split, identity=identity or original or file, dataset="lavdf",
        extra=extra,
    )
