"""``folder``: every video file under a folder, labels unknown (inference and smoke runs).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "b.MOV").write_bytes(b""); (d / "notes.txt").write_bytes(b"")
    0
    0
    >>> [(r.video_id, r.split) for r in load_folder(d)]
    [('b.MOV', 'test')]
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from macbdf.data.manifest import ManifestError, SampleRecord

from ._base import VIDEO_EXTENSIONS, check_root, iter_video_files, register


@register("folder")
def load_folder(root: Path, *, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[SampleRecord]:
    """Every video under ROOT (recursively, by extension); labels unknown, split "test".

    ``video_id`` is the path relative to ROOT in POSIX form (extension kept, so ``a.mp4`` and
    ``a.mov`` stay distinct): stable across machines and mount points. A single file as ROOT is
    accepted too (its id is its file name).
    """
    root = check_root(root, dataset="folder")
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if root.is_file():
        if root.suffix.lower() not in exts:
            raise ManifestError(f"{root}: not a video file (extensions: {' '.join(exts)})")
        files, base = [root], root.parent
    else:
        files, base = list(iter_video_files(root, exts)), root
    return [
        SampleRecord(video_id=f.relative_to(base).as_posix(), path=str(f), split="test", dataset="folder")
        for f in files
    ]
