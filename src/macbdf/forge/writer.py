"""Metadata of a forged dataset: file names, the LAV-DF / FakeAVCeleb layouts, ``forge_info.json``
and ``failures.jsonl``.

* LAV-DF (default; it carries splits and periods): ``{train,dev,test}/<clip_id>.mp4`` and
  ``metadata.json`` / ``metadata.min.json`` records with LAV-DF's fields plus ``identity``,
  ``method`` (``real`` or ``forge_<families>``) and per-modality ``visual_fake_periods`` /
  ``audio_fake_periods`` (``fake_periods`` is their union).
* FakeAVCeleb: ``<Category folder>/unknown/unknown/<identity>/<clip_id>.mp4`` and ``meta_data.csv``
  (category A/B/C/D from the per-modality labels, ``method`` as above, ``target1`` = donor
  identity); the split comes from ``forge_info.json``'s ``identity_splits``, which the
  ``fakeavceleb`` adapter reads.

Example:
    >>> from macbdf.forge.plan import ClipPlan
    >>> c = ClipPlan("0a1b2c3d4e5f", "x.mp4", 0, 0, 100, "ann", "val", video_family="self_blend",
    ...              video_periods=[[0.0, 4.0]], real_clip_id="ffffffffffff")
    >>> clip_file(c, "lavdf"), clip_file(c, "fakeavceleb")
    ('dev/0a1b2c3d4e5f.mp4', 'FakeVideo-RealAudio/unknown/unknown/ann/0a1b2c3d4e5f.mp4')
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from macbdf.forge.audio_fakes import RECORDED_AUDIO_FAMILIES
from macbdf.forge.plan import ClipPlan
from macbdf.forge.sources import FPS, SAMPLE_RATE
from macbdf.filemode import atomic_write_text
from macbdf.synth.layouts import write_fakeavceleb_rows, write_lavdf_records
from macbdf.synth.plan import FAKEAVCELEB_TYPES, LAVDF_SPLITS

LAYOUTS = ("lavdf", "fakeavceleb")
INFO_NAME = "forge_info.json"
FAILURES_NAME = "failures.jsonl"
GENERATOR = "macbdf.forge"


def category(c: ClipPlan) -> str:
    return ("FV" if c.video_family else "RV") + ("FA" if c.audio_family else "RA")


def _safe(name: str) -> str:
    # Folder-safe identity (FakeAVCeleb keeps identities in folder names).
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "unknown"


def clip_file(c: ClipPlan, layout: str) -> str:
    """The clip's path inside the output folder (POSIX)."""
    if layout == "lavdf":
        return f"{LAVDF_SPLITS[c.split]}/{c.clip_id}.mp4"
    _, folder = FAKEAVCELEB_TYPES[category(c)]
    return f"{folder}/unknown/unknown/{_safe(c.identity)}/{c.clip_id}.mp4"


def lavdf_record(c: ClipPlan, files: dict[str, str]) -> dict[str, Any]:
    """LAV-DF record of one clip (``files``: clip_id -> file, for ``original``)."""
    periods = c.fake_periods
    return {
        "file": files[c.clip_id],
        "n_fakes": len(periods),
        "fake_periods": periods,
        "visual_fake_periods": c.video_periods,
        "audio_fake_periods": c.audio_periods,
        "duration": round(c.duration, 3),
        "original": files.get(c.real_clip_id) if c.real_clip_id else None,
        "modify_video": c.video_family is not None,
        "modify_audio": c.audio_family is not None,
        "audio_recorded": c.audio_family in RECORDED_AUDIO_FAMILIES,
        "split": LAVDF_SPLITS[c.split],
        "identity": c.identity,
        "method": c.method,
        "video_frames": c.n_frames,
        "audio_channels": 1 if c.has_audio else 0,
        "audio_frames": c.n_frames * SAMPLE_RATE // FPS if c.has_audio else 0,
    }


def fakeavceleb_row(c: ClipPlan, files: dict[str, str]) -> list[str]:
    letter, folder = FAKEAVCELEB_TYPES[category(c)]
    donor = (c.video_donor or c.audio_donor or {}).get("identity", "-")
    directory, name = files[c.clip_id].rsplit("/", 1)
    return [c.identity, donor, "-", c.method, letter, folder, "unknown", "unknown", name, f"FakeAVCeleb/{directory}"]


def write_layout(out: Path, layout: str, done: list[ClipPlan]) -> None:
    """The layout's metadata for the clips on disk (``done``, in plan order)."""
    files = {c.clip_id: clip_file(c, layout) for c in done}
    if layout == "lavdf":
        write_lavdf_records(out, [lavdf_record(c, files) for c in done])
    else:
        write_fakeavceleb_rows(out, [fakeavceleb_row(c, files) for c in done])


def write_failures(out: Path, failures: list[dict[str, Any]]) -> None:
    atomic_write_text(out / FAILURES_NAME, "".join(json.dumps(f, sort_keys=True) + "\n" for f in failures))


def forge_info(settings: dict[str, Any], splits: dict[str, str], clips: list[ClipPlan], layout: str,
               failures: list[dict[str, Any]], complete: bool, version: str) -> dict[str, Any]:
    """``forge_info.json``: settings, identity -> split, and every clip's ground truth."""
    counts: dict[str, dict[str, int]] = {"method": {}, "split": {}, "category": {}, "has_audio": {}}
    for c in clips:
        for key, val in (("method", c.method), ("split", c.split), ("category", category(c)),
                         ("has_audio", str(c.has_audio).lower())):
            counts[key][val] = counts[key].get(val, 0) + 1
    return {
        "generator": GENERATOR,
        "version": version,
        "settings": settings,
        "seed": settings["seed"],
        "layout": layout,
        "complete": complete,
        "identity_splits": splits,
        "counts": counts,
        "clips": [c.to_dict() | {"file": clip_file(c, layout)} for c in clips],
        "failures": failures,
    }


def write_info(out: Path, info: dict[str, Any]) -> None:
    atomic_write_text(out / INFO_NAME, json.dumps(info, indent=1))
