"""One manifest format for every dataset: `SampleRecord`, read/written as JSON lines.

Example:
    >>> r = SampleRecord(video_id="a", path="a.mp4", label=1, video_label=1, audio_label=0,
    ...                  category="FVRA", method="faceswap", split="train", dataset="manifest")
    >>> SampleRecord.from_dict(r.to_dict()) == r
    True
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Iterator

CATEGORIES = ("RVRA", "RVFA", "FVRA", "FVFA")


class ManifestError(ValueError):
    """Malformed metadata; the message names the file and line."""


def category_of(video_label: int | None, audio_label: int | None) -> str | None:
    """RVRA/RVFA/FVRA/FVFA from per-modality labels (None when either is unknown)."""
    if video_label is None or audio_label is None:
        return None
    return ("FV" if video_label else "RV") + ("FA" if audio_label else "RA")


@dataclass
class SampleRecord:
    video_id: str
    path: str
    label: int | None = None
    video_label: int | None = None
    audio_label: int | None = None
    fake_periods: list[list[float]] = field(default_factory=list)
    video_fake_periods: list[list[float]] | None = None
    audio_fake_periods: list[list[float]] | None = None
    category: str | None = None
    method: str | None = None
    split: str = "train"
    identity: str | None = None
    dataset: str = "manifest"
    extra: dict[str, Any] = field(default_factory=dict)
    # Filled in by `prepare` (cache side).
    file: str | None = None
    num_frames: int | None = None
    fps: float | None = None
    duration: float | None = None
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleRecord":
        known = {f.name for f in fields(cls)}
        extra = dict(d.get("extra") or {})
        kw = {}
        for k, v in d.items():
            if k in known:
                kw[k] = v
            else:
                extra[k] = v
        kw["extra"] = extra
        return cls(**kw)

    def periods_for(self, modality: str) -> list[list[float]]:
        """Fake periods of one modality ("video" or "audio"); [] when that track is real."""
        own = self.video_fake_periods if modality == "video" else self.audio_fake_periods
        if own is not None:
            return own
        lab = self.video_label if modality == "video" else self.audio_label
        return list(self.fake_periods) if lab else []


def read_manifest(path: str | os.PathLike) -> list[SampleRecord]:
    """Read a JSONL manifest; a bad line raises ManifestError naming file and line."""
    out = []
    for lineno, obj in iter_jsonl(path):
        try:
            out.append(SampleRecord.from_dict(obj))
        except TypeError as e:
            raise ManifestError(f"{path}:{lineno}: not a sample record ({e})") from None
    return out


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ManifestError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def write_manifest(records: Iterable[SampleRecord | dict[str, Any]], path: str | os.PathLike) -> None:
    """Write JSONL atomically (temp file + os.replace)."""
    from macbdf.filemode import atomic_write

    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            d = r.to_dict() if isinstance(r, SampleRecord) else r
            line = json.dumps(d, ensure_ascii=False)
            if not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:
                    # a file name that is not valid UTF-8 (surrogate escapes): escaped JSON instead
                    line = json.dumps(d, ensure_ascii=True)
            f.write(line + "\n")
