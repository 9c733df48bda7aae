"""Dataset adapters: read each dataset's layout as shipped into one list of ``SampleRecord``.

One module per dataset registers a reader under its name (see :func:`register`);
:func:`load_dataset` runs it, drops exact duplicates, checks that ids are unique and assigns splits
(the dataset's own where it has one, else the paper's seeded 80:20 stratified split, plus a
validation part carved from train; see :mod:`macbdf.data.splits`).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "clips").mkdir(); (d / "clips" / "a.mp4").write_bytes(b"")
    0
    >>> [(r.video_id, r.label, r.split) for r in load_dataset("folder", d)]
    [('clips/a.mp4', None, 'test')]
    >>> list_datasets()[:3]
    ['fakeavceleb', 'dfdc', 'lavdf']
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from macbdf.data.manifest import ManifestError, SampleRecord
from macbdf.data.splits import assign_splits

from ._base import REGISTRY, UNASSIGNED, VIDEO_EXTENSIONS, Adapter, register

# Import order = the order list_datasets() reports. Each import registers its adapter.
from . import fakeavceleb as _fakeavceleb  # noqa: F401,E402
from . import dfdc as _dfdc  # noqa: F401,E402
from . import lavdf as _lavdf  # noqa: F401,E402
from . import avdeepfake1m as _avdeepfake1m  # noqa: F401,E402
from . import defakeavmit as _defakeavmit  # noqa: F401,E402
from . import manifest as _manifest  # noqa: F401,E402
from . import folder as _folder  # noqa: F401,E402

__all__ = ["load_dataset", "list_datasets", "get_adapter", "register", "Adapter", "REGISTRY",
           "UNASSIGNED", "VIDEO_EXTENSIONS", "ManifestError"]

log = logging.getLogger("macbdf.data.adapters")


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (and ``macbdf prepare --dataset``).

    Example:
        >>> "folder" in list_datasets()
        True
    """
    return list(REGISTRY)


def get_adapter(name: str) -> Adapter:
    """The registered adapter of a dataset name; an unknown name is a ValueError listing the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(REGISTRY)}") from None


def load_dataset(name: str, root: str | Path, *, split_seed: int = 0, identity_disjoint: bool = False,
                 val_fraction: float = 0.1, test_fraction: float = 0.2, own_split: bool = True,
                 stratify_by: str = "category", **opts: Any) -> list[SampleRecord]:
    """Read dataset ``name`` at ``root`` into sample records with splits assigned.

    Args:
        name: one of :func:`list_datasets`.
        root: the dataset folder as shipped (for ``manifest`` also the manifest file itself).
        split_seed: seed of the 80:20 split and of the validation carve-out.
        identity_disjoint: keep every identity (subject, or source video) inside one split.
        val_fraction: share of train moved to val when the dataset has no val split of its own.
        test_fraction: test share of the seeded split (0.2 = the paper's 80:20).
        own_split: False ignores the dataset's own split and uses the seeded one (the paper's
            protocol on DFDC, whose official split the paper does not use).
        stratify_by: "category" (falls back to label) or "label".
        **opts: adapter options (e.g. ``missing="keep"``; see each adapter's docstring).

    Raises:
        ManifestError: malformed or missing metadata (the message names the file and line).
        ValueError: unknown dataset name or option.

    Example:
        >>> load_dataset("nope", ".")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'nope'; choose one of: fakeavceleb, dfdc, lavdf, avdeepfake1m, defakeavmit, manifest, folder
    """
    adapter = get_adapter(name)
    try:
        records = adapter.fn(Path(root), **opts)
    except TypeError as e:
        # An unknown keyword is a usage error; say which adapter rejected it instead of a traceback.
        if "unexpected keyword argument" in str(e):
            raise ValueError(f"dataset {name!r}: {e}") from None
        raise
    records = _dedupe(records, name=name, root=Path(root))
    assign_splits(records, seed=split_seed, test_fraction=test_fraction, val_fraction=val_fraction,
                  identity_disjoint=identity_disjoint, stratify_by=stratify_by, keep_own=own_split)
    return records


def _dedupe(records: list[SampleRecord], *, name: str, root: Path) -> list[SampleRecord]:
    """Drop repeated records of the same file; two different files under one id is an error."""
    seen: dict[str, SampleRecord] = {}
    out: list[SampleRecord] = []
    dropped = 0
    for r in records:
        prev = seen.get(r.video_id)
        if prev is None:
            seen[r.video_id] = r
            out.append(r)
        elif prev.path == r.path:
            if (prev.label, prev.video_label, prev.audio_label) != (r.label, r.video_label, r.audio_label):
                raise ManifestError(f"{root}: {name}: {r.video_id!r} is listed twice with different labels")
            dropped += 1
        else:
            raise ManifestError(f"{root}: {name}: video_id {r.video_id!r} names two files: "
                                f"{prev.path} and {r.path}")
    if dropped:
        log.info("%s: dropped %d repeated record(s)", name, dropped)
    return out
