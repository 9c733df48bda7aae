"""``avdeepfake1m``: AV-Deepfake1M (``train_metadata.json``, ``val_metadata.json``).

Layout::

    ROOT/train_metadata.json   ROOT/train/<file>
    ROOT/val_metadata.json     ROOT/val/<file>

Record fields used: ``file`` (relative to the split folder), ``modify_type`` (``real``,
``visual_modified``, ``audio_modified``, ``both_modified``; ``both-modified`` accepted),
``fake_segments``, ``visual_fake_segments``, ``audio_fake_segments`` ([[start_s, end_s]]),
``original``, ``audio_model``. The test labels are not public, so by default (``val_as_test``)
the official val set becomes our test set and ``load_dataset`` carves a validation part out of
train; ``val_as_test=False`` keeps it as val. video_id = ``<split folder>/<file>``. Identity = the
VoxCeleb2 speaker id that heads ``file`` (``idXXXXX/...``), else the source video.

Example:
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "val_metadata.json").write_text(json.dumps([{"file": "id00001/abc/00001/fake.mp4",
    ...     "original": "id00001/abc/00001/real.mp4", "modify_type": "both-modified",
    ...     "fake_segments": [[0.5, 1.0]], "visual_fake_segments": [[0.5, 1.0]],
    ...     "audio_fake_segments": [[0.5, 0.9]]}]))
    >>> r = load_avdeepfake1m(d, missing="keep")[0]
    >>> r.video_id, r.split, r.category, r.identity, r.audio_fake_periods
    ('val/id00001/abc/00001/fake.mp4', 'test', 'FVFA', 'id00001', [[0.5, 0.9]])
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import check_root, handle_missing, load_json, optional_str, parse_periods, register
from .lavdf import number, rel_file

MODIFY_TYPES = {
    "real": (0, 0), "visual_modified": (1, 0), "audio_modified": (0, 1), "both_modified": (1, 1),
}
_SPEAKER = re.compile(r"^id\d+$")


def modify_type_labels(value: Any, *, where: str) -> tuple[str, int, int]:
    """(canonical modify_type, video_label, audio_label); accepts ``-``/space for ``_``."""
    if not isinstance(value, str):
        raise ManifestError(f"{where}: missing or non-text modify_type {value!r}")
    key = re.sub(r"[-\s]+", "_", value.strip().lower())
    if key not in MODIFY_TYPES:
        raise ManifestError(f"{where}: bad modify_type {value!r} (expected one of {', '.join(MODIFY_TYPES)})")
    return (key, *MODIFY_TYPES[key])


@register("avdeepfake1m")
def load_avdeepfake1m(root: Path, *, val_as_test: bool = True, missing: str = "skip") -> list[SampleRecord]:
    """AV-Deepfake1M: ROOT holds ``{train,val}_metadata.json`` and the ``train/``, ``val/`` folders.

    Options: ``val_as_test`` (official val -> our test, default True: the test labels are not
    public), ``missing`` (skip | keep | error).
    """
    root = check_root(root, dataset="avdeepfake1m")
    metas = [(s, root / f"{s}_metadata.json") for s in ("train", "val") if (root / f"{s}_metadata.json").is_file()]
    if not metas:
        raise ManifestError(f"{root}: no AV-Deepfake1M metadata found (expected train_metadata.json "
                            f"and/or val_metadata.json)")
    records = []
    for split, meta in metas:
        data = load_json(meta)
        if not isinstance(data, list):
            raise ManifestError(f"{meta}: expected a JSON list of records, got {type(data).__name__}")
        ours = "test" if (split == "val" and val_as_test) else split
        for i, obj in enumerate(data):
            where = f"{meta}: record {i}"
            if not isinstance(obj, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            records.append(_record(obj, where=where, root=root, folder=split, split=ours))
    return handle_missing(records, missing=missing, dataset="avdeepfake1m", source=root)


def _record(obj: dict[str, Any], *, where: str, root: Path, folder: str, split: str) -> SampleRecord:
    file = rel_file(obj.get("file"), where=where)
    mtype, vl, al = modify_type_labels(obj.get("modify_type"), where=where)
    periods = parse_periods(obj.get("fake_segments"), where=where, field="fake_segments")
    vp = parse_periods(obj.get("visual_fake_segments"), where=where, field="visual_fake_segments")
    ap = parse_periods(obj.get("audio_fake_segments"), where=where, field="audio_fake_segments")
    if not vl and vp:
        raise ManifestError(f"{where}: visual_fake_segments on a {mtype} record")
    if not al and ap:
        raise ManifestError(f"{where}: audio_fake_segments on a {mtype} record")
    if not periods:
        periods = sorted(vp + ap)
    # Per-modality periods: the dataset's own when given; else the shared ones for each modified
    # track (what SampleRecord.periods_for derives from None).
    has_own = "visual_fake_segments" in obj or "audio_fake_segments" in obj
    original = optional_str(obj.get("original"), where=where, field="original")
    head = file.split("/", 1)[0]
    identity = head if _SPEAKER.match(head) else (original or file)
    path = root / folder / file
    if not path.exists() and (root / file).exists():
        path = root / file
    extra: dict[str, Any] = {"modify_type": mtype}
    if original:
        extra["original"] = original
    am = optional_str(obj.get("audio_model"), where=where, field="audio_model")
    if am:
        extra["audio_model"] = am
    for k in ("video_frames", "audio_frames"):
        v = number(obj.get(k), where=where, field=k, integer=True)
        if v is not None:
            extra[k] = v
    return SampleRecord(
        video_id=f"{folder}/{file}", path=str(path), label=int(bool(vl or al)), video_label=vl, audio_label=al,
        fake_periods=periods, video_fake_periods=vp if has_own else None,
        audio_fake_periods=ap if has_own else None, category=("FV" if vl else "RV") + ("FA" if al else "RA"),
        method=mtype, split=split, identity=identity, dataset="avdeepfake1m", extra=extra,
    )
