"""``forge()``: real talking-face clips -> a labelled audio-visual deepfake dataset.

Three passes, each resumable:
  1. *extract* (parallel per source): decode each real clip once, crop the tracked face, cut
     segments, landmarks per frame, audio; cached under ``OUT/.forge_cache`` (a hidden folder, so
     dataset readers never list it);
  2. *plan*: identity splits, families, donors, parameters -- seeded, from the extraction summaries;
  3. *render* (parallel per segment): real copy + fakes of each segment, written atomically; clips
     already on disk are kept. Then the layout's metadata, ``forge_info.json``, ``failures.jsonl``.

Workers are spawned, never forked (live OpenCV/OpenMP thread pools deadlock forked children), so a
script calling :func:`forge` with ``workers > 1`` needs the usual ``if __name__ == "__main__":``.

Example:
    >>> from macbdf.forge import forge                                               # doctest: +SKIP
    >>> rep = forge("realcorpus", "forged", manifest="realcorpus/MANIFEST.csv", workers=2)  # doctest: +SKIP
    >>> rep.written, rep.counts["method"]["real"], rep.identity_splits["barack_obama"]    # doctest: +SKIP
    (236, 59, 'train')
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from macbdf import __version__
from macbdf.parallel import pool_map
from macbdf.forge.plan import FAMILIES, ClipPlan, make_plan
from macbdf.forge.render import render_group
from macbdf.synth.layouts import check_output_dir
from macbdf.forge.sources import (ForgeInputError, assign_splits, cache_key, extract_source, list_sources,
                                  read_split_file, select_identities)
from macbdf.forge.writer import (GENERATOR, INFO_NAME, LAYOUTS, clip_file, forge_info, write_failures, write_info,
                                 write_layout)

CACHE_NAME = ".forge_cache"


class ForgeError(RuntimeError):
    """Forge cannot run (bad settings or an output folder it must not write into); one line."""


@dataclass
class ForgeReport:
    """What a forge run did. ``counts``: clips by method / split / category / has_audio."""

    out_dir: Path
    layout: str
    sources: int = 0
    segments: int = 0
    total: int = 0
    written: int = 0
    resumed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    identity_splits: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "layout": self.layout, "sources": self.sources,
                "segments": self.segments, "total": self.total, "written": self.written, "resumed": self.resumed,
                "failures": self.failures, "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2),
                "counts": self.counts, "identity_splits": self.identity_splits}


def _check_out_dir(out: Path, settings: dict[str, Any]) -> None:
    check_output_dir(out, INFO_NAME, GENERATOR, settings, ForgeError, "forge")


def _parse_list(v: Iterable[str] | str | None) -> list[str] | None:
    if v is None:
        return None
    items = [x.strip() for x in (v.split(",") if isinstance(v, str) else v)]
    return [x for x in items if x] or None


def forge(root: str | os.PathLike, out_dir: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
          layout: str = "lavdf", seed: int = 0, identities: Iterable[str] | str | None = None,
          exclude_identities: Iterable[str] | str | None = None, split_file: str | os.PathLike | None = None,
          split_ratios: tuple[float, float, float] = (0.6, 0.15, 0.25), segment_s: float = 4.0,
          min_segment_s: float = 1.5, max_segments_per_clip: int | None = None, fakes_per_segment: int = 3,
          families: Iterable[str] | str | None = None, silent_fraction: float = 0.2, crop_size: int = 160,
          crop_scale: float = 1.8, crf: int = 23, audio_bitrate: int = 48000, min_face: float = 0.6,
          workers: int = 1, keep_cache: bool = False, progress: bool = True) -> ForgeReport:
    """Forge a labelled dataset from real clips into ``out_dir`` (see ``macbdf forge --help``).

    Returns a :class:`ForgeReport`; sources or segments that cannot be used are in
    ``report.failures`` (and ``OUT/failures.jsonl``). Raises :class:`ForgeError` for bad settings
    or an output folder that is neither empty nor a forge output of the same settings.

    Example:
        >>> rep = forge("clips/", "forged/", layout="lavdf", seed=0, workers=2)   # doctest: +SKIP
        >>> rep.to_dict()["counts"]["split"]                                      # doctest: +SKIP
        {'test': 16, 'train': 40, 'val': 8}
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if layout not in LAYOUTS:
        raise ForgeError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    fams = tuple(_parse_list(families) or FAMILIES)
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        raise ForgeError(f"unknown family {bad[0]!r} (choose from {', '.join(FAMILIES)})")
    if segment_s <= 0 or min_segment_s <= 0 or min_segment_s > segment_s:
        raise ForgeError("need 0 < --min-segment-s <= --segment-s")
    if not 0 <= silent_fraction <= 1:
        raise ForgeError("--silent-fraction must be in [0, 1]")
    if fakes_per_segment < 0:
        raise ForgeError("--fakes-per-segment must be >= 0")
    if crop_size < 32 or crop_size % 2:
        raise ForgeError("--crop-size must be an even number >= 32")
    if max_segments_per_clip is not None and max_segments_per_clip < 1:
        raise ForgeError("--max-segments-per-clip must be >= 1")
    try:
        sources = list_sources(root, manifest)
        sources = select_identities(sources, _parse_list(identities), _parse_list(exclude_identities))
    except ForgeInputError as e:
        raise ForgeError(str(e)) from None
    if not sources:
        raise ForgeError(f"no real video files found under {root}")
    src_sha = hashlib.sha1("\n".join(f"{s.src_id}|{s.identity}|{s.speech}" for s in sources).encode()).hexdigest()[:16]
    split_table = None
    if split_file is not None:
        try:
            split_table = read_split_file(split_file, [s.identity for s in sources])
        except ForgeInputError as e:
            raise ForgeError(str(e)) from None
    settings: dict[str, Any] = {
        "seed": int(seed), "layout": layout, "families": list(fams), "segment_s": float(segment_s),
        "min_segment_s": float(min_segment_s), "max_segments": max_segments_per_clip,
        "fakes_per_segment": int(fakes_per_segment), "silent_fraction": float(silent_fraction),
        "crop_size": int(crop_size), "crop_scale": float(crop_scale), "crf": int(crf),
        "audio_bitrate": int(audio_bitrate), "min_face": float(min_face),
        "split_ratios": [float(r) for r in split_ratios], "split_table": split_table, "sources_sha": src_sha,
        "fps": 25, "sample_rate": 16000,
    }
    out = Path(out_dir)
    _check_out_dir(out, settings)
    cache = out / CACHE_NAME
    cache.mkdir(parents=True, exist_ok=True)
    for p in out.rglob(".*.partial.mp4"):    # temp files of an interrupted run
        p.unlink(missing_ok=True)
    write_info(out, {"generator": GENERATOR, "version": __version__, "settings": settings, "complete": False})

    # 1. extract (sources without a summary yet)
    summaries: dict[str, dict[str, Any]] = {}
    todo = []
    for s in sources:
        p = cache / f"{cache_key(s.src_id)}.json"
        if p.is_file():
            summaries[s.src_id] = json.loads(p.read_text(encoding="utf-8"))
        else:
            todo.append(s)
    for s, summ in zip(todo, pool_map(extract_source, [(s.to_dict(), settings, str(cache)) for s in todo],
                                      workers=workers, desc="forge: decode", progress=progress)):
        summaries[s.src_id] = summ

    # 2. splits and plan
    if split_table is None:
        speaking = {s.identity for s in sources if summaries[s.src_id].get("speech")}
        splits = assign_splits([s.identity for s in sources], tuple(split_ratios), seed,
                               groups={s.identity: "speech" if s.identity in speaking else "silent" for s in sources})
    else:
        splits = split_table
    for s in sources:
        s.split = splits[s.identity]
    clips, failures = make_plan(sources, summaries, seed=seed, fakes_per_segment=fakes_per_segment, families=fams,
                                silent_fraction=silent_fraction, min_face=min_face)

    # 3. render (segments with a clip not yet on disk); re-extract evicted caches they need
    report = ForgeReport(out_dir=out, layout=layout, sources=len(sources), total=len(clips),
                         identity_splits=splits)
    groups: dict[tuple[str, int], list[ClipPlan]] = {}
    for c in clips:
        groups.setdefault((c.src_id, c.segment), []).append(c)
    report.segments = len(groups)
    pending = {k: g for k, g in groups.items() if any(not (out / clip_file(c, layout)).is_file() for c in g)}
    report.resumed = sum(1 for c in clips if (out / clip_file(c, layout)).is_file())
    need = set()
    for g in pending.values():
        for c in g:
            need.add(c.src_id)
            for d in (c.video_donor, c.audio_donor):
                if d:
                    need.add(d["src_id"])
    by_id = {s.src_id: s for s in sources}
    missing = [by_id[i] for i in sorted(need) if not (cache / f"{cache_key(i)}.npz").is_file()]
    pool_map(extract_source, [(s.to_dict(), settings, str(cache)) for s in missing], workers=workers,
             desc="forge: decode (resume)", progress=progress)
    jobs = [([c.to_dict() | {"file": clip_file(c, layout)} for c in g], settings, str(out), str(cache))
            for g in pending.values()]
    errors: dict[str, str] = {}
    for res in pool_map(render_group, jobs, workers=workers, desc="forge: write", progress=progress):
        for cid, err in res:
            if err:
                errors[cid] = err
    for c in clips:
        if c.clip_id in errors:
            failures.append({"source": c.src_id, "identity": c.identity, "segment": c.segment, "clip": c.clip_id,
                             "method": c.method, "reason": errors[c.clip_id]})
    done = [c for c in clips if (out / clip_file(c, layout)).is_file()]
    report.written = len(done) - report.resumed

    write_layout(out, layout, done)
    write_failures(out, failures)
    info = forge_info(settings, splits, done, layout, failures, complete=not errors, version=__version__)
    info["sources"] = [s.to_dict() | {"path": None, "summary": {k: v for k, v in summaries[s.src_id].items()
                                                                 if k not in ("key",)}} for s in sources]
    write_info(out, info)
    if not keep_cache and not errors:
        # Arrays are large (face crops of every segment); the small JSON summaries stay so a rerun
        # plans without decoding again.
        for p in cache.glob("*.npz"):
            p.unlink()
    report.failures = failures
    report.counts = info["counts"]
    report.seconds = time.perf_counter() - t_start
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    report.cpu_seconds = time.process_time() - cpu_start + ch.ru_utime + ch.ru_stime
    return report


def remove_cache(out_dir: str | os.PathLike) -> None:
    """Delete ``OUT/.forge_cache`` entirely (a later rerun then decodes the sources again)."""
    shutil.rmtree(Path(out_dir) / CACHE_NAME, ignore_errors=True)
