"""Generate a synthetic benchmark folder: plan, render in worker processes, write the layout.

Safety: an existing OUT_DIR is only written into when it is empty or holds a synth output made
with the same settings (then the run resumes: clips already on disk are kept, since every MP4 is
renamed into place only when complete). Anything else is refused.

Example:
    >>> import tempfile
    >>> out = generate(tempfile.mkdtemp() + "/bench", "lavdf", num_clips=12, seed=0,
    ...                duration_range=(0.8, 0.8), size=64, progress=False)
    >>> sorted(p.name for p in out.iterdir())
    ['dev', 'metadata.json', 'metadata.min.json', 'synth_info.json', 'test', 'train']
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from macbdf import __version__
from macbdf.parallel import pool_map
from macbdf.filemode import atomic_write_text
from macbdf.synth.layouts import WRITERS, check_output_dir
from macbdf.synth.plan import AUDIO_FAMILIES, VIDEO_FAMILIES, ClipSpec, Plan, PlanError, make_plan

INFO_NAME = "synth_info.json"
GENERATOR = "macbdf.synth"


class SynthError(RuntimeError):
    """The benchmark cannot be written (bad settings or an output folder we must not touch)."""


@dataclass
class SynthReport:
    out_dir: Path
    layout: str
    total: int
    written: int = 0
    resumed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def clips_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "layout": self.layout, "total": self.total, "written": self.written,
            "resumed": self.resumed, "failed": self.failed, "seconds": round(self.seconds, 2),
            "clips_per_s": round(self.clips_per_s, 3), "counts": self.counts,
        }


def _check_out_dir(out: Path, plan: Plan) -> None:
    check_output_dir(out, INFO_NAME, GENERATOR, plan.settings, SynthError, "synth")


def _info(plan: Plan, done: list[ClipSpec], complete: bool, failed: list[dict[str, str]]) -> dict[str, Any]:
    from macbdf.synth.identity import make_identity

    seed = plan.settings["seed"]
    return {
        "generator": GENERATOR,
        "version": __version__,
        "settings": plan.settings,
        "seed": seed,
        "layout": plan.settings["layout"],
        "num_clips": plan.settings["num_clips"],
        "complete": complete,
        "families": {"video": list(VIDEO_FAMILIES), "audio": list(AUDIO_FAMILIES)},
        "holdout_families": plan.settings["holdout_families"],
        "holdout_note": "held-out families appear only in the test split" if plan.settings["holdout_families"] else "",
        "splits": {s: [make_identity(seed, i).name for i in ids] for s, ids in plan.identities.items()},
        "clips": [c.to_dict() | {"identity_name": make_identity(seed, c.identity).name} for c in done],
        "failed": failed,
    }


def _render_job(spec: ClipSpec, seed: int, size: int, out_dir: str) -> tuple[int, str | None]:
    """Worker entry: render and write one clip; returns (index, error or None)."""
    from macbdf.synth.clip import render_clip
    from macbdf.synth.encode import write_mp4

    try:
        clip = render_clip(spec, seed, size)
        path = Path(out_dir) / spec.file
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, clip.frames, clip.audio, crf=clip.crf, audio_bitrate=clip.audio_bitrate)
        return spec.index, None
    except Exception as e:  # noqa: BLE001 - one bad clip must not abort the batch; reported instead
        return spec.index, f"{type(e).__name__}: {e}"


def _remove_stale_partials(out: Path) -> None:
    # Temp names written by macbdf.synth.encode.write_mp4 of an interrupted run.
    for p in out.rglob(".*.partial.mp4"):
        try:
            p.unlink()
        except OSError:
            pass


def synthesize(
    out_dir: str | os.PathLike,
    layout: str,
    num_clips: int,
    seed: int,
    *,
    duration_range: tuple[float, float] = (2.0, 4.0),
    size: int = 160,
    workers: int = 1,
    holdout_families: list[str] | str | None = None,
    partial_ratio: float | None = None,
    num_identities: int | None = None,
    progress: bool = True,
) -> SynthReport:
    """Like `generate` but returns a report (written/resumed/failed clips, speed) instead of raising
    on failed clips. Raises SynthError for bad settings or a folder it must not write into."""
    try:
        plan = make_plan(layout, num_clips, seed, duration_range=duration_range, holdout_families=holdout_families,
                         partial_ratio=partial_ratio, num_identities=num_identities, size=size)
    except PlanError as e:
        raise SynthError(str(e)) from None
    out = Path(out_dir)
    _check_out_dir(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    report = SynthReport(out_dir=out, layout=layout, total=len(plan.clips))
    todo = [c for c in plan.clips if not (out / c.file).is_file()]
    report.resumed = len(plan.clips) - len(todo)
    atomic_write_text(out / INFO_NAME, json.dumps(_info(plan, [], False, []), indent=1))

    t0 = time.perf_counter()
    results = pool_map(_render_job, [(spec, seed, size, str(out)) for spec in todo], workers=workers,
                       desc=f"synth {layout}", unit="clip", progress=progress)
    errors: dict[int, str] = {idx: err for idx, err in results if err}
    report.seconds = time.perf_counter() - t0
    report.written = len(todo) - len(errors)
    report.failed = [{"file": plan.clips[i].file, "reason": r} for i, r in sorted(errors.items())]

    done = [c for c in plan.clips if (out / c.file).is_file()]
    WRITERS[layout](out, plan, done)
    atomic_write_text(out / INFO_NAME, json.dumps(_info(plan, done, not errors, report.failed), indent=1))
    counts: dict[str, dict[str, int]] = {"category": {}, "split": {}, "method": {}}
    for c in done:
        for key, val in (("category", c.category), ("split", c.split), ("method", c.method)):
            counts[key][val] = counts[key].get(val, 0) + 1
    report.counts = counts
    return report


def generate(out_dir: str | os.PathLike, layout: str, num_clips: int, seed: int, **opts: Any) -> Path:
    """Write a synthetic audio-visual deepfake benchmark in the `layout` ("fakeavceleb" or
    "lavdf") of `num_clips` clips to `out_dir` and return its path.

    Options: duration_range=(2.0, 4.0), size=160, workers=1, holdout_families=None (e.g.
    "faceswap,tts": kept out of train/val, only in test), partial_ratio=None (layout default),
    num_identities=None (>= 60), progress=True. Raises SynthError if any clip failed.
    Workers are spawned (never forked: forking a process with live thread pools can deadlock),
    so a script that calls this with workers > 1 needs the usual `if __name__ == "__main__":` guard.

    Example:
        >>> import tempfile
        >>> out = generate(tempfile.mkdtemp(), "fakeavceleb", num_clips=4, seed=1,
        ...                duration_range=(1.0, 1.2), size=96, progress=False)
        >>> (out / "meta_data.csv").is_file()
        True
    """
    report = synthesize(out_dir, layout, num_clips, seed, **opts)
    if report.failed:
        first = report.failed[0]
        raise SynthError(f"{len(report.failed)} clip(s) failed, e.g. {first['file']}: {first['reason']}")
    return report.out_dir
