"""Speed of `macbdf synth`: the same clips generated with 1 worker and with N workers in one run.

Prints clips/s, seconds of audio-visual content generated per wall-clock second, the scaling
ratio, the time a 300-clip benchmark would take at that speed, and where the time of one clip
goes (render vs. encode). Last line: `synth_clips_per_s: <clips/s with N workers>`.

Usage: python benchmarks/synth_speed.py [--clips 24] [--workers 2] [--size 160] [--layout lavdf]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from macbdf.synth import synthesize
from macbdf.synth.clip import render_clip
from macbdf.synth.encode import write_mp4
from macbdf.synth.plan import make_plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--layout", default="lavdf", choices=["lavdf", "fakeavceleb"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="synth_bench_"))
    try:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"cpu cores: {os.cpu_count()}, load average (1 min) at start: {load:.2f}")
        plan = make_plan(args.layout, args.clips, args.seed, size=args.size)
        content_s = sum(c.duration for c in plan.clips)
        print(f"{args.clips} clips, {content_s:.1f} s of content, {args.size}x{args.size}, layout {args.layout}")

        # Where one clip's time goes (in-process, first 4 clips).
        t_render = t_encode = 0.0
        for spec in plan.clips[:4]:
            t0 = time.perf_counter()
            clip = render_clip(spec, args.seed, args.size)
            t1 = time.perf_counter()
            write_mp4(tmp / "probe.mp4", clip.frames, clip.audio, crf=clip.crf)
            t_render += t1 - t0
            t_encode += time.perf_counter() - t1
        n = min(4, len(plan.clips))
        print(f"per clip: render {t_render / n:.3f} s, encode {t_encode / n:.3f} s")

        def cpu() -> float:  # user+sys of this process and of finished worker processes
            a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

        results = {}
        for w in sorted({1, args.workers}):
            out = tmp / f"w{w}"
            c0 = cpu()
            rep = synthesize(out, args.layout, args.clips, args.seed, size=args.size, workers=w, progress=False)
            cpu_per_clip = (cpu() - c0) / args.clips
            assert not rep.failed, rep.failed
            results[w] = rep
            print(f"workers={w}: {rep.seconds:.1f} s, {rep.clips_per_s:.2f} clips/s, "
                  f"{content_s / rep.seconds:.2f} s of content per s, {cpu_per_clip:.3f} CPU s per clip "
                  f"(=> {w / cpu_per_clip:.2f} clips/s on {w} idle core(s))")
        base, best = results[1], results[max(results)]
        if len(results) > 1:
            print(f"speed-up {max(results)} workers vs 1: {base.seconds / best.seconds:.2f}x")
        print(f"estimated time for 300 clips: {300 / best.clips_per_s / 60:.1f} min")
        print(f"synth_clips_per_s: {best.clips_per_s:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
