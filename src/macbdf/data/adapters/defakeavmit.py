"""``defakeavmit``: DefakeAVMiT-style four-class folders (or any collection laid out the same way).

Layout::

    ROOT/<class folder>/[<method>/...]/<clip>.<video ext>

with one folder per class, spelled any reasonable way: ``V_R A_R``, ``V_R-A_R``, ``VRAR``,
``vr_ar``, ``RealVideo-RealAudio``, ``RVRA``, ``FakeVideo_RealAudio``, ``A_F V_R`` (audio first) ...
A class folder may sit one level down (e.g. ``ROOT/DefakeAVMiT/V_F A_R``). The first sub-folder
below a fake class folder names the manipulation method when present (else the method is the class
name); real samples get method ``real``. video_id = the path relative to ROOT (the dataset is
defined by this layout; it ships no metadata). No official split: the seeded 80:20 stratified split
is applied by ``load_dataset``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "V_F A_R" / "wav2lip").mkdir(parents=True); _ = (d / "V_F A_R" / "wav2lip" / "x.mp4").write_bytes(b"")
    >>> r = load_defakeavmit(d)[0]
    >>> r.video_id, r.category, r.method
    ('V_F A_R/wav2lip/x.mp4', 'FVRA', 'wav2lip')
"""
from __future__ import annotations

import re
from pathlib import Path

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import UNASSIGNED, check_root, iter_video_files, labels_of_category, register

_WORD = {"real": "r", "fake": "f", "r": "r", "f": "f", "genuine": "r", "forged": "f"}


def class_of_folder(name: str) -> str | None:
    """RVRA/RVFA/FVRA/FVFA from a class-folder name, or None when it is not one.

    Example:
        >>> [class_of_folder(n) for n in ("V_R A_R", "VFAR", "V_R-A_F", "RealVideo-FakeAudio",
        ...                               "A_F V_F", "fvra", "videos")]
        ['RVRA', 'FVRA', 'RVFA', 'RVFA', 'FVFA', 'FVRA', None]
    """
    s = re.sub(r"[^a-z]", "", name.lower())
    # "realvideofakeaudio", "videorealaudiofake" word forms -> letter form "vr af".
    m = re.fullmatch(r"(real|fake)video(real|fake)audio", s)
    if m:
        return _cat(_WORD[m.group(1)], _WORD[m.group(2)])
    m = re.fullmatch(r"(real|fake)audio(real|fake)video", s)
    if m:
        return _cat(_WORD[m.group(2)], _WORD[m.group(1)])
    m = re.fullmatch(r"v(r|f)a(r|f)", s)  # V_R A_F, VRAF, v_r-a_f
    if m:
        return _cat(m.group(1), m.group(2))
    m = re.fullmatch(r"a(r|f)v(r|f)", s)  # A_F V_R (audio first)
    if m:
        return _cat(m.group(2), m.group(1))
    m = re.fullmatch(r"(r|f)v(r|f)a", s)  # RVFA (our category names)
    if m:
        return _cat(m.group(1), m.group(2))
    return None


def _cat(v: str, a: str) -> str:
    return ("FV" if v == "f" else "RV") + ("FA" if a == "f" else "RA")


def _class_dirs(root: Path) -> list[tuple[Path, str]]:
    """Class folders at ROOT or one level below (the first level where any is found)."""
    for level in (root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))):
        found = [(p, c) for p in sorted(level.iterdir())
                 if p.is_dir() and not p.name.startswith(".") and (c := class_of_folder(p.name))]
        if found:
            return found
    return []


@register("defakeavmit")
def load_defakeavmit(root: Path) -> list[SampleRecord]:
    """DefakeAVMiT four-class folders (V_R A_R, V_F A_R, V_R A_F, V_F A_F; spellings vary)."""
    root = check_root(root, dataset="defakeavmit")
    if not root.is_dir():
        raise ManifestError(f"{root}: defakeavmit root must be a folder")
    classes = _class_dirs(root)
    if not classes:
        raise ManifestError(f"{root}: no class folders found (expected V_R A_R, V_F A_R, V_R A_F, V_F A_F "
                            f"or similar spellings)")
    seen: dict[str, Path] = {}
    for d, cat in classes:
        if cat in seen:
            raise ManifestError(f"{root}: two folders for class {cat}: '{seen[cat].name}' and '{d.name}'")
        seen[cat] = d
    records = []
    for d, cat in classes:
        vl, al = labels_of_category(cat)
        for f in iter_video_files(d):
            rel = f.relative_to(d)
            if cat == "RVRA":
                method = "real"
            else:
                method = rel.parts[0] if len(rel.parts) > 1 else cat
            records.append(SampleRecord(
                video_id=f.relative_to(root).as_posix(), path=str(f), label=int(bool(vl or al)),
                video_label=vl, audio_label=al, category=cat, method=method, split=UNASSIGNED,
                dataset="defakeavmit", extra={"class_folder": d.name},
            ))
    return records
