"""Metadata writers that reproduce the shipped layouts of FakeAVCeleb v1.2 and LAV-DF.

FakeAVCeleb: `meta_data.csv` with the header `source,target1,target2,method,category,type,race,
gender,path,` (the 10th column is unnamed and holds the folder, starting with `FakeAVCeleb/`), and
-- like the real file -- one duplicated row. LAV-DF: `metadata.json` (with `timestamps` and
`transcript`) and `metadata.min.json` (without them). Both get `synth_info.json` with the seed,
families, identity splits and every clip's ground truth.

Example:
    >>> import tempfile
    >>> from macbdf.synth.plan import make_plan
    >>> plan = make_plan("fakeavceleb", 4, seed=0)
    >>> out = Path(tempfile.mkdtemp())
    >>> write_fakeavceleb(out, plan, plan.clips)
    >>> (out / "meta_data.csv").read_text().splitlines()[0]
    'source,target1,target2,method,category,type,race,gender,path,'
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from macbdf.filemode import atomic_write, atomic_write_text

from macbdf.synth.identity import make_identity
from macbdf.synth.plan import FAKEAVCELEB_TYPES, LAVDF_SPLITS, SAMPLE_RATE, ClipSpec, Plan

FAKEAVCELEB_HEADER = "source,target1,target2,method,category,type,race,gender,path,"


def check_output_dir(out: Path, info_name: str, generator: str, settings: dict[str, Any], error: type[Exception],
                     tool: str) -> None:
    """Refuse to write into a folder that is neither empty nor ``tool``'s own output with the same
    ``settings`` (a resumable run); nothing a user made is overwritten."""
    if out.exists() and not out.is_dir():
        raise error(f"{out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    info_path = out / info_name
    if not info_path.is_file():
        raise error(f"{out} is not empty and is not a macbdf {tool} output; refusing to write into it "
                    "(choose a new or empty folder)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise error(f"{info_path}: unreadable ({e}); refusing to write into {out}") from None
    if not isinstance(info, dict) or info.get("generator") != generator:
        raise error(f"{info_path} was not written by {generator}; refusing to write into {out}")
    old = info.get("settings", {})
    diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
    if diff:
        raise error(f"{out} holds a {tool} output made with other settings (differs in: {', '.join(diff)}); "
                    "rerun with the same settings to resume, or choose an empty folder")


def fakeavceleb_row(spec: ClipSpec, seed: int) -> list[str]:
    ident = make_identity(seed, spec.identity)
    letter, folder = FAKEAVCELEB_TYPES[spec.category]
    target1 = "-"
    if spec.donor is not None:
        target1 = make_identity(seed, spec.donor).name
    elif spec.other is not None:
        target1 = make_identity(seed, spec.other).name
    directory, name = spec.file.rsplit("/", 1)
    return [ident.name, target1, "-", spec.method, letter, folder, ident.ethnicity, ident.gender, name,
            f"FakeAVCeleb/{directory}"]


def write_fakeavceleb_rows(out: Path, rows: list[list[str]], *, repeat_first_fake: bool = False) -> None:
    """Write ``meta_data.csv`` (header + ``rows`` as produced by :func:`fakeavceleb_row`) atomically.

    ``repeat_first_fake`` duplicates the first fake row, as the shipped file does (readers must cope).
    Shared by ``macbdf synth`` and ``macbdf forge``.
    """
    buf = io.StringIO()
    buf.write(FAKEAVCELEB_HEADER + "\n")
    w = csv.writer(buf, lineterminator="\n")
    rows = list(rows)
    fakes = [r for r in rows if r[3] != "real"]
    if repeat_first_fake and fakes:
        rows.insert(rows.index(fakes[0]) + 1, list(fakes[0]))
    w.writerows(rows)
    atomic_write_text(out / "meta_data.csv", buf.getvalue())


def write_fakeavceleb(out: Path, plan: Plan, done: list[ClipSpec]) -> None:
    seed = plan.settings["seed"]
    # The shipped meta_data.csv repeats some rows; readers must cope, so we repeat one too.
    write_fakeavceleb_rows(out, [fakeavceleb_row(c, seed) for c in done], repeat_first_fake=True)


def lavdf_record(spec: ClipSpec, seed: int, full: bool) -> dict[str, Any]:
    periods = spec.fake_periods
    rec: dict[str, Any] = {
        "file": spec.file,
        "n_fakes": len(periods),
        "fake_periods": periods,
        "duration": round(spec.duration, 3),
        "original": spec.original,
        "modify_video": spec.video_family is not None,
        "modify_audio": spec.audio_family is not None,
        "split": LAVDF_SPLITS[spec.split],
        "video_frames": spec.num_frames,
        "audio_channels": 1,
        "audio_frames": spec.num_frames * SAMPLE_RATE // 25,
    }
    if full:
        from macbdf.synth.clip import spoken_content  # local: pulls in the renderer

        words = spoken_content(spec, seed)
        rec["timestamps"] = [[w, a, b] for w, a, b in words]
        rec["transcript"] = " ".join(w for w, _, _ in words)
    return rec


def write_lavdf_records(out: Path, full: list[dict[str, Any]], full_only: tuple[str, ...] = ("timestamps", "transcript")) -> None:
    """Write LAV-DF's ``metadata.json`` (``full`` records) and ``metadata.min.json`` (without the
    ``full_only`` keys) atomically. Shared by ``macbdf synth`` and ``macbdf forge``."""
    mini = [{k: v for k, v in r.items() if k not in full_only} for r in full]
    atomic_write_text(out / "metadata.json", json.dumps(full, indent=1))
    atomic_write_text(out / "metadata.min.json", json.dumps(mini))


def write_lavdf(out: Path, plan: Plan, done: list[ClipSpec]) -> None:
    seed = plan.settings["seed"]
    write_lavdf_records(out, [lavdf_record(c, seed, True) for c in done])


WRITERS = {"fakeavceleb": write_fakeavceleb, "lavdf": write_lavdf}
