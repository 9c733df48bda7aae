"""Decode-only vs. full `prepare` time on the same clips, in one run.

Decode-only = demux + decode every video and audio frame with PyAV (same threading as prepare),
no conversion at all: the least any pipeline must pay. Full prepare = ``prepare_file`` (timestamp
resampling, face detection + tracking, crops, audio resampling, log-mel) + writing the sample file
to a cache, i.e. what ``macbdf prepare`` does per video. Clips alternate decode/prepare so that
load changes on a shared machine hit both sides alike. The headline is the ratio (target <= 1.5).

Clips: the real clips in ../shared/media when present (``--clips DIR`` to choose), else generated
ones. With ``--baseline-src DIR`` (another checkout's ``src``) every pass runs in a fresh process per
code tree, alternating, and both trees' ratios are printed side by side. Nothing is written to
benchmarks/RESULTS.md: results are copied there by hand.

The cost of following the speaking face in multi-face footage (``--speaker-clip``, default the corpus's
split-screen interview when ../shared/realcorpus is present): prepare of that clip with the speaker choice
(``macbdf.media.prepare.SPEAKER_CHOICE``) on and off, alternating, CPU seconds and their ratio.

Usage:
    python benchmarks/prepare_speed.py [--clips DIR] [--repeat N] [--baseline-src DIR] [--speaker-clip FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from _results import StealMeter

import av
import numpy as np

from macbdf.config import PreprocessConfig
from macbdf.data.manifest import SampleRecord
from macbdf.data.cache import write_sample
from macbdf.media.decode import probe
from macbdf.media.prepare import default_face_detector, prepare_file

REPO = Path(__file__).resolve().parents[1]
_INTERVIEW = REPO.parent / "shared" / "realcorpus" / "clips" / "real_VisualVoice_interview.mp4"
SPEAKER_CLIP = _INTERVIEW if _INTERVIEW.is_file() else None
SHARED_MEDIA = REPO.parent / "shared" / "media"


def decode_only(path: Path) -> int:
    """Decode every frame of every audio/video stream; returns the number of video frames."""
    n = 0
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("video", "audio")]
        for s in streams:
            s.thread_type = "AUTO"
        for frame in c.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                n += 1
    return n


def generated_clips(d: Path, n: int = 6) -> list[Path]:
    """Talking-head-sized clips (moving shapes, a tone) when no real clips are available."""
    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = d / f"gen_{i}.mp4"
        c = av.open(str(p), "w")
        vs = c.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 640, 480, "yuv420p"
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for k in range(125):
            img = np.full((480, 640, 3), 60, np.uint8)
            x = 200 + int(40 * np.sin(k / 10 + i))
            img[120:360, x:x + 200] = rng.integers(120, 220, 3)
            for pk in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
        t = np.arange(5 * 16000) / 16000
        sig = (0.2 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32)
        for s in range(0, sig.size, 1024):
            af = av.AudioFrame.from_ndarray(sig[None, s:s + 1024].copy(), format="fltp", layout="mono")
            af.sample_rate, af.pts = 16000, s
            for pk in a.encode(af):
                c.mux(pk)
        for pk in a.encode():
            c.mux(pk)
        c.close()
        out.append(p)
    return out


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 1024.0 / 1024.0


_STEAL = StealMeter()     # from the script's start: the share of CPU time the VM's host took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=Path, default=None, help="folder of .mp4 clips (default ../shared/media)")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the clips (times are summed)")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)   # kept for old command lines
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a baseline checkout's src folder, measured side by side (a fresh process per pass and tree)")
    ap.add_argument("--child-json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--speaker-clip", type=Path, default=SPEAKER_CLIP,
                    help="a multi-face clip for the speaker-choice cost (default: the corpus's interview, if present)")
    args = ap.parse_args()
    if args.baseline_src is not None:
        side_by_side(args)
        return

    tmp = Path(tempfile.mkdtemp(prefix="prepare_speed_"))
    src = args.clips or SHARED_MEDIA
    clips = sorted(src.glob("*.mp4")) if src.is_dir() else []
    source = f"real clips ({src.name}/)" if clips else "generated clips (no real clips found)"
    if not clips:
        clips = generated_clips(tmp)
    cfg = PreprocessConfig()
    default_face_detector()                      # cascade load is a one-off, not per video
    video_s = sum((probe(p).duration or 0.0) for p in clips)

    t_dec = t_prep = 0.0
    c_dec = c_prep = 0.0        # process CPU time (all threads): steadier than wall time on a busy machine
    frames_out = 0
    per_clip = []
    rss0 = peak_rss_mb()
    for rep in range(args.repeat):
        for i, p in enumerate(clips):
            order = ("dec", "prep") if (i + rep) % 2 == 0 else ("prep", "dec")
            td = tp = 0.0
            for what in order:
                t0, c0 = time.perf_counter(), time.process_time()
                if what == "dec":
                    decode_only(p)
                    td = time.perf_counter() - t0
                    c_dec += time.process_time() - c0
                else:
                    clip = prepare_file(p, cfg)
                    write_sample(tmp / "cache", SampleRecord(video_id=p.name, path=str(p)), clip)
                    tp = time.perf_counter() - t0
                    c_prep += time.process_time() - c0
                    frames_out += clip.num_frames
            t_dec += td
            t_prep += tp
            if rep == 0:
                per_clip.append((p.name, td, tp))
    ratio = t_prep / t_dec
    n = len(clips) * args.repeat
    lines = [
        "`python benchmarks/prepare_speed.py`: decode-only (PyAV demux + decode of every audio/video frame, "
        "no conversion) vs. full `prepare_file` + cache write on the same clips, alternating per clip.",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores (shared; load average {os.getloadavg()[0]:.1f} at the end; {_STEAL.line()}); "
        f"PyAV {av.__version__}; one process",
        f"- clips: {len(clips)} {source}, {video_s:.1f} s of video, x{args.repeat} pass(es); "
        f"config: {cfg.fps:g} fps, face {cfg.face_size}px, {cfg.n_mels} mels, detect every {cfg.detect_every} "
        f"frames at <= {cfg.detect_max_side}px",
        f"- decode only: {t_dec:.2f} s; full prepare (+ cache write): {t_prep:.2f} s (wall ratio {ratio:.2f})",
        f"- CPU time (all threads): decode only {c_dec:.2f} s; prepare {c_prep:.2f} s (CPU ratio {c_prep / c_dec:.2f})",
        f"- prepare: {n / t_prep:.2f} clips/s, {video_s * args.repeat / t_prep:.2f} s of video per s, "
        f"{frames_out / t_prep:.0f} output frames/s",
        f"- peak RSS: {peak_rss_mb():.0f} MB (at start {rss0:.0f} MB)",
        "",
        "| clip | decode s | prepare s | ratio |",
        "|---|---|---|---|",
        *[f"| {name} | {td:.2f} | {tp:.2f} | {tp / td:.2f} |" for name, td, tp in per_clip],
        "",
        f"prepare_over_decode_ratio: {ratio:.2f}",
    ]
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    if args.child_json:
        print(json.dumps({"t_dec": t_dec, "t_prep": t_prep, "c_dec": c_dec, "c_prep": c_prep,
                          "per_clip": per_clip}))
        return
    print("\n".join(lines[:-1]))
    if args.speaker_clip is not None and Path(args.speaker_clip).is_file():
        print(speaker_choice_cost(Path(args.speaker_clip), cfg))
    print(f"prepare_over_decode_ratio: {ratio:.2f}")


def speaker_choice_cost(clip: Path, cfg: PreprocessConfig, repeat: int = 2) -> str:
    """CPU seconds of prepare on a multi-face clip with the speaker choice on and off (alternating)."""
    import macbdf.media.prepare as prep

    cpu = {True: 0.0, False: 0.0}
    flags: dict[bool, list[str]] = {}
    try:
        for rep in range(repeat):
            for on in ((True, False) if rep % 2 == 0 else (False, True)):
                prep.SPEAKER_CHOICE = on
                c0 = time.process_time()
                flags[on] = prepare_file(clip, cfg).flags
                cpu[on] += time.process_time() - c0
    finally:
        prep.SPEAKER_CHOICE = True
    return (f"- speaker choice on {clip.name}: prepare {cpu[True] / repeat:.2f} CPU s with it, "
            f"{cpu[False] / repeat:.2f} without (ratio {cpu[True] / max(cpu[False], 1e-9):.2f}); flags with it: "
            f"{flags[True]}, without: {flags[False]}")


def side_by_side(args: argparse.Namespace) -> None:
    """Each pass over the clips in a fresh process per code tree (alternating order); ratios per tree."""
    src = Path(__file__).resolve().parents[1] / "src"
    trees = [("current", src), ("baseline", args.baseline_src.resolve())]
    res: dict[str, list[dict]] = {n: [] for n, _ in trees}
    for rep in range(args.repeat):
        for name, tree in (trees if rep % 2 == 0 else trees[::-1]):
            cmd = [sys.executable, __file__, "--child-json"] + (["--clips", str(args.clips)] if args.clips else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(tree)))
            res[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = res[name][-1]
            print(f"pass {rep} {name}: decode {r['t_dec']:.2f} s, prepare {r['t_prep']:.2f} s, ratio "
                  f"{r['t_prep'] / r['t_dec']:.2f} (CPU {r['c_prep'] / r['c_dec']:.2f})", file=sys.stderr, flush=True)
    print(f"`python benchmarks/prepare_speed.py --repeat {args.repeat} --baseline-src {args.baseline_src}` — "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average at the end "
          f"{os.getloadavg()[0]:.1f}; {_STEAL.line()}; one fresh process per pass and tree, alternating")
    print("| tree | passes | wall ratio per pass | median wall ratio | median CPU ratio | decode s (median) | prepare s (median) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    med = {}
    for name, _ in trees:
        rs = res[name]
        wr = [r["t_prep"] / r["t_dec"] for r in rs]
        cr = [r["c_prep"] / r["c_dec"] for r in rs]
        med[name] = statistics.median(wr)
        print(f"| {name} | {len(rs)} | {', '.join(f'{x:.2f}' for x in wr)} | {med[name]:.2f} | "
              f"{statistics.median(cr):.2f} | {statistics.median(r['t_dec'] for r in rs):.2f} | "
              f"{statistics.median(r['t_prep'] for r in rs):.2f} |")
    print(f"prepare_over_decode_ratio: {med['current']:.2f}")


if __name__ == "__main__":
    main()
