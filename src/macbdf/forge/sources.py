"""Real source clips for ``macbdf forge``: listing, identity splits, and face-crop extraction.

* :func:`list_sources` -- the real clips: every ``label == real`` row of a manifest CSV (with its
  ``identity`` column), or every video file under a folder (each file its own identity, the stem).
* :func:`assign_splits` -- identity -> train/val/test: a JSON table, or a seeded identity-disjoint
  split (speech and silent identities split separately, so every split gets both kinds).
* :func:`extract_source` -- decodes one clip once: the tracked face cropped square (``crop_scale``
  x the face box) at ``crop_size``, 25 fps, 16 kHz mono audio aligned to the first frame, cut into
  segments, with 68-point landmarks per frame; arrays go to an ``.npz`` in the cache folder, a
  small JSON summary (face coverage, speech activity per segment) beside it.

Example:
    >>> assign_splits(["a", "b", "c", "d"], (0.5, 0.25, 0.25), seed=0)
    {'a': 'test', 'b': 'train', 'c': 'val', 'd': 'train'}
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from macbdf.data.adapters._base import iter_video_files
from macbdf.filemode import atomic_write
from macbdf.filemode import atomic_write_text

SPLITS = ("train", "val", "test")
FPS = 25
SAMPLE_RATE = 16000
SPEECH_ACTIVITY = 0.25     # a segment with less sounding audio than this is not used for audio fakes


class ForgeInputError(ValueError):
    """Bad forge input (manifest, split table, selection); the message is one line."""


@dataclass
class Source:
    """One real clip to forge from."""

    src_id: str            # path relative to the root (or manifest folder), POSIX: stable across machines
    path: str              # absolute path of the file
    identity: str
    speech: bool | None    # manifest says speech (True) / no speech (False); None: decide from the audio
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _truthy(v: str) -> bool:
    return v.strip().lower() in ("1", "true", "yes", "y", "t")


def list_sources(root: str | os.PathLike, manifest: str | os.PathLike | None = None) -> list[Source]:
    """The real clips, sorted by ``src_id``.

    With a manifest CSV (columns ``file``, ``label``, ``identity``; optional ``has_audio``,
    ``audio_content``): ``label == real`` rows; ``file`` is relative to the manifest's folder or to
    ``root``. Without one: every video file under ``root``, identity = the file stem.
    """
    root = Path(root)
    if manifest is None:
        if not root.is_dir():
            raise ForgeInputError(f"{root}: not a folder")
        out = [Source(src_id=p.relative_to(root).as_posix(), path=str(p.resolve()), identity=p.stem, speech=None)
               for p in iter_video_files(root)]
        ids = [s.identity for s in out]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            # Two files with one stem in different folders would silently merge two people.
            raise ForgeInputError(f"{root}: several files share the stem {dup[0]!r}; without a manifest every file "
                                  "is its own identity, so stems must be unique (or pass --manifest)")
        return out
    mpath = Path(manifest)
    try:
        text = mpath.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ForgeInputError(f"{mpath}: cannot read manifest ({e.strerror})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ForgeInputError(f"{mpath}: no rows")
    missing = [c for c in ("file", "label", "identity") if c not in rows[0]]
    if missing:
        raise ForgeInputError(f"{mpath}: missing column(s) {', '.join(missing)}")
    out = []
    for i, r in enumerate(rows, 2):
        if (r.get("label") or "").strip().lower() != "real":
            continue
        rel = (r.get("file") or "").strip().replace("\\", "/")
        ident = (r.get("identity") or "").strip()
        if not rel or not ident:
            raise ForgeInputError(f"{mpath}:{i}: empty file or identity")
        cand = [mpath.parent / rel, root / rel]
        path = next((p for p in cand if p.is_file()), None)
        if path is None:
            raise ForgeInputError(f"{mpath}:{i}: {rel} not found (looked in {mpath.parent} and {root})")
        speech: bool | None = None
        if "has_audio" in r or "audio_content" in r:
            speech = _truthy(r.get("has_audio", "true") or "true") and "speech" in (r.get("audio_content") or "speech").lower()
        out.append(Source(src_id=rel, path=str(path.resolve()), identity=ident, speech=speech))
    return sorted(out, key=lambda s: s.src_id)


def select_identities(sources: list[Source], include: list[str] | None, exclude: list[str] | None) -> list[Source]:
    """Keep sources of ``include`` identities (all when None), minus ``exclude``; unknown names are errors."""
    known = {s.identity for s in sources}
    for name in (include or []) + (exclude or []):
        if name not in known:
            raise ForgeInputError(f"unknown identity {name!r} (known: {', '.join(sorted(known)[:8])}"
                                  f"{', ...' if len(known) > 8 else ''})")
    keep = set(include) if include else known
    keep -= set(exclude or [])
    return [s for s in sources if s.identity in keep]


def assign_splits(identities: list[str], ratios: tuple[float, float, float], seed: int,
                  groups: dict[str, str] | None = None) -> dict[str, str]:
    """Seeded identity-disjoint split; ``groups`` (identity -> group name) splits each group alike.

    Every split with a positive ratio gets at least one identity of a group when the group has
    three or more.
    """
    tot = sum(ratios)
    if tot <= 0 or any(r < 0 for r in ratios):
        raise ForgeInputError(f"split ratios must be >= 0 and not all 0, got {ratios}")
    fr = [r / tot for r in ratios]
    groups = groups or {}
    by_group: dict[str, list[str]] = {}
    for ident in sorted(set(identities)):
        by_group.setdefault(groups.get(ident, ""), []).append(ident)
    out: dict[str, str] = {}
    for gi, (g, names) in enumerate(sorted(by_group.items())):
        rng = np.random.default_rng([seed, gi])
        order = [names[i] for i in rng.permutation(len(names))]
        n = len(order)
        n_val, n_test = int(round(n * fr[1])), int(round(n * fr[2]))
        if n >= 3:
            n_val = max(n_val, 1 if fr[1] > 0 else 0)
            n_test = max(n_test, 1 if fr[2] > 0 else 0)
        n_val = min(n_val, n)
        n_test = min(n_test, n - n_val)
        for k, ident in enumerate(order):
            out[ident] = "val" if k < n_val else "test" if k < n_val + n_test else "train"
    return dict(sorted(out.items()))


def read_split_file(path: str | os.PathLike, identities: list[str]) -> dict[str, str]:
    """``{identity: train|val|dev|test}`` from a JSON file; every identity must be listed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ForgeInputError(f"{path}: unreadable split file ({e})") from None
    if not isinstance(data, dict):
        raise ForgeInputError(f"{path}: expected a JSON object {{identity: split}}")
    out = {}
    for ident in sorted(set(identities)):
        v = data.get(ident)
        if v is None:
            raise ForgeInputError(f"{path}: identity {ident!r} has no split")
        v = {"dev": "val", "valid": "val", "validation": "val"}.get(str(v).lower(), str(v).lower())
        if v not in SPLITS:
            raise ForgeInputError(f"{path}: identity {ident!r}: split must be train, val or test, got {data[ident]!r}")
        out[ident] = v
    return out


def cache_key(src_id: str) -> str:
    return hashlib.sha1(src_id.encode("utf-8")).hexdigest()[:16]


def plan_segments(n_frames: int, seg_frames: int, min_frames: int, max_segments: int | None) -> list[tuple[int, int]]:
    """(start, length) of the segments of an ``n_frames`` clip: whole ``seg_frames`` pieces, spread
    evenly when there are more than ``max_segments``; a clip shorter than one segment but at
    least ``min_frames`` long is one segment of its own length.

    Example:
        >>> plan_segments(260, 100, 50, None), plan_segments(1000, 100, 50, 2), plan_segments(70, 100, 50, None)
        ([(0, 100), (100, 100)], [(200, 100), (700, 100)], [(0, 70)])
    """
    n_full = n_frames // seg_frames
    if n_full == 0:
        return [(0, n_frames)] if n_frames >= min_frames else []
    idx = list(range(n_full))
    if max_segments is not None and n_full > max_segments:
        idx = [int(math.floor((i + 0.5) * n_full / max_segments)) for i in range(max_segments)]
    return [(i * seg_frames, seg_frames) for i in idx]


def _smooth_landmarks(lm: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 over time: dlib's per-frame jitter would make blend masks shimmer."""
    if len(lm) < 3:
        return lm
    p = np.concatenate([lm[:1], lm, lm[-1:]])
    return ((p[:-2] + 2 * p[1:-1] + p[2:]) / 4).astype(np.float32)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


_HOG: Any = None


def _hog_detector() -> Any:
    global _HOG
    if _HOG is None:
        from macbdf.media.landmarks import DlibHogFaceDetector

        _HOG = DlibHogFaceDetector()
    return _HOG


def _crops(stream: Any) -> tuple[list[np.ndarray], list[bool]]:
    crops, found = [], []
    for _, c, ok in stream:
        crops.append(c)
        found.append(ok)
    return crops, found


def extract_source(source: dict[str, Any], settings: dict[str, Any], cache_dir: str) -> dict[str, Any]:
    """Decode one source clip into segments of face crops + landmarks + audio (cached).

    Returns the summary (also written as ``<cache>/<key>.json``): ``n_frames``, ``has_audio``,
    ``speech`` (clip-level), ``segments`` [{"j", "start", "n", "coverage", "speech"}], or
    ``error`` (one line) when the clip cannot be decoded.
    """
    from macbdf.config import PreprocessConfig
    from macbdf.media.decode import MediaError, decode_audio, probe
    from macbdf.media.landmarks import shared_landmark_detector
    from macbdf.media.prepare import FaceCropStream, default_face_detector

    from macbdf.forge.audio_fakes import speech_activity

    cache = Path(cache_dir)
    key = cache_key(source["src_id"])
    crop = int(settings["crop_size"])
    scale = float(settings["crop_scale"])
    seg_frames = int(round(settings["segment_s"] * FPS))
    min_frames = int(round(settings["min_segment_s"] * FPS))
    summary: dict[str, Any] = {"src_id": source["src_id"], "key": key}
    try:
        info = probe(source["path"])
        est = int(info.duration * FPS) if info.duration else None
        max_frames = None
        if est is not None and settings.get("max_segments"):
            segs = plan_segments(est, seg_frames, min_frames, settings["max_segments"])
            max_frames = (segs[-1][0] + segs[-1][1]) if segs else None
        cfg = PreprocessConfig(fps=FPS, sample_rate=SAMPLE_RATE, face_size=crop, face_margin=(scale - 1) / 2)
        stream = FaceCropStream(source["path"], cfg, default_face_detector(), max_frames)
        crops, found = _crops(stream)
        if not crops:
            raise MediaError("no decodable video frames")
        detector = "haar"
        if np.mean(found) < float(settings.get("min_face", 0.6)):
            # Haar misses faces that fill the frame and strong expressions; dlib's HOG detector (on the
            # same 320 px detection images) finds most of them. Only for clips Haar fails on: it costs
            # ~15 ms per key frame and every key frame is a full scan.
            hog = FaceCropStream(source["path"], cfg, _hog_detector(), max_frames)
            crops2, found2 = _crops(hog)
            if np.mean(found2) > np.mean(found):
                crops, found, stream, detector = crops2, found2, hog, "dlib_hog"
        audio, has_audio = decode_audio(source["path"], SAMPLE_RATE, t0=stream.stats.get("t0"))
    except (MediaError, OSError, ValueError, RuntimeError) as e:
        summary["error"] = f"undecodable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"[:200]
        atomic_write_text(cache / f"{key}.json", json.dumps(summary))
        return summary
    frames = np.stack(crops)
    found_a = np.asarray(found, bool)
    T = len(frames)
    n_samples = T * SAMPLE_RATE // FPS
    audio = np.asarray(audio, np.float32)[:n_samples]
    if has_audio and len(audio) < n_samples:
        audio = np.concatenate([audio, np.zeros(n_samples - len(audio), np.float32)])
    clip_speech = speech_activity(audio, SAMPLE_RATE) if has_audio and len(audio) else 0.0
    if source.get("speech") is None:     # no manifest: decide from the sound
        speech_ok = bool(has_audio and clip_speech >= SPEECH_ACTIVITY * 0.6)
    else:
        speech_ok = bool(source["speech"]) and bool(has_audio)
    segs = plan_segments(T, seg_frames, min_frames, settings.get("max_segments"))
    det = shared_landmark_detector()
    side = crop / scale
    o = (crop - side) / 2
    box = (o, o, o + side, o + side)
    arrays: dict[str, np.ndarray] = {"audio": audio if has_audio else np.zeros(0, np.float32)}
    seg_info = []
    for j, (s, n) in enumerate(segs):
        f = frames[s:s + n]
        lm = _smooth_landmarks(np.stack([det.detect(im, box) for im in f]))
        cov = float(found_a[s:s + n].mean())
        a = audio[s * SAMPLE_RATE // FPS:(s + n) * SAMPLE_RATE // FPS] if has_audio else np.zeros(0, np.float32)
        sp = speech_activity(a, SAMPLE_RATE) if len(a) else 0.0
        arrays[f"frames_{j}"] = f
        arrays[f"landmarks_{j}"] = lm
        seg_info.append({"j": j, "start": s, "n": n, "coverage": round(cov, 4), "speech_activity": round(sp, 4),
                         "speech": bool(speech_ok and sp >= SPEECH_ACTIVITY)})
    _atomic_savez(cache / f"{key}.npz", arrays)
    summary.update(face_detector=detector, n_frames=T, has_audio=bool(has_audio), speech=bool(speech_ok),
                   speech_activity=round(clip_speech, 4), face_coverage=round(float(found_a.mean()), 4),
                   segments=seg_info)
    atomic_write_text(cache / f"{key}.json", json.dumps(summary))
    return summary


class SegmentCache:
    """Reads cached segments (frames, landmarks) and whole-clip audio, memoised per process."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)
        self._open: dict[str, Any] = {}

    def _npz(self, src_id: str) -> Any:
        key = cache_key(src_id)
        if key not in self._open:
            self._open[key] = np.load(self.dir / f"{key}.npz")
        return self._open[key]

    def frames(self, src_id: str, j: int) -> np.ndarray:
        return self._npz(src_id)[f"frames_{j}"]

    def landmarks(self, src_id: str, j: int) -> np.ndarray:
        return self._npz(src_id)[f"landmarks_{j}"]

    def audio(self, src_id: str) -> np.ndarray:
        return self._npz(src_id)["audio"]

    def close(self) -> None:
        for z in self._open.values():
            z.close()
        self._open.clear()
