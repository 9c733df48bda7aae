"""Detection speed and memory: how much does `macbdf detect` cost on top of decoding the video?

On a generated 10 s, 25 fps clip (640x360, H.264 + AAC, a drawn talking head), measured side by
side in one run with interleaved repeats (median):

* decode alone: PyAV decodes every video and audio frame (threaded, no pixel conversion): the
  floor any tool reading the file pays;
* preparation: `macbdf.media.prepare_file` (decode, face detection/tracking, crops, log-mel);
* detect: `Detector(path)`, the whole thing (preparation in windows + model + merging), after a
  warm-up call; the warm-up itself is reported too ("cold": the first call of a fresh process).

The figure is detect / decode (wall time; CPU-time ratios are printed beside it). Each repeat runs
in a fresh process; with ``--baseline-src DIR`` (another checkout's ``src``, e.g. from
``git archive``) the same measurements of that code alternate with this one's in the same run, so
before/after ratios see the same machine load.

Memory: the peak resident memory (``VmHWM of a fresh subprocess, which includes torch and the
model) while detecting a generated 0.4 s 8192x8192 clip (target <= 1 GB); optionally
(``--long-minutes M``) generated 1-minute and M-minute 320x180 videos (flat memory: the two peaks
about equal).

The model is randomly initialised (speed does not depend on the weights) unless --checkpoint is
given. Nothing is written to benchmarks/RESULTS.md: results are copied there by hand.

Usage:
    python benchmarks/detect_speed.py [--model small] [--checkpoint DIR] [--repeats 5]
        [--baseline-src DIR] [--no-huge] [--long-minutes 10] [--device cpu]
Last line: ``detect_over_decode_ratio: X``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from _results import StealMeter

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------- test videos
def write_video(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (640, 360),
                sample_rate: int = 16000) -> Path:
    """A drawn talking head (moving, blinking mouth) with a modulated tone; H.264 + AAC."""
    import av
    import cv2

    w, h = size
    n = int(round(seconds * fps))
    rng = np.random.default_rng(0)
    noise = rng.integers(-4, 5, (h, w, 3)).astype(np.int16)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "28"}
        a = c.add_stream("aac", rate=sample_rate)
        a.layout = "mono"
        samples_per_frame = sample_rate // fps
        apts = 0
        for i in range(n):
            img = np.full((h, w, 3), (70, 80, 95), np.uint8)
            cx, cy = w // 2 + int(w * 0.05 * np.sin(i / 40)), h // 2 + int(h * 0.03 * np.sin(i / 23))
            cv2.ellipse(img, (cx, cy), (w // 9, h // 3), 0, 0, 360, (185, 155, 135), -1, cv2.LINE_AA)
            for dx in (-w // 24, w // 24):
                cv2.circle(img, (cx + dx, cy - h // 10), max(2, w // 90), (35, 30, 30), -1, cv2.LINE_AA)
            cv2.ellipse(img, (cx, cy + h // 7), (w // 28, 2 + int(5 * abs(np.sin(i / 3)))), 0, 0, 360,
                        (95, 40, 50), -1, cv2.LINE_AA)
            img = np.clip(img + np.roll(noise, i % 7, axis=1), 0, 255).astype(np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
            t = (np.arange(samples_per_frame) + apts) / sample_rate
            wave = (0.25 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))).astype(np.float32)
            fr = av.AudioFrame.from_ndarray(wave[None, :], format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = sample_rate, apts, Fraction(1, sample_rate)
            apts += samples_per_frame
            for p in a.encode(fr):
                c.mux(p)
        for s in (vs, a):
            for p in s.encode():
                c.mux(p)
    return path


# ---------------------------------------------------------------- measured steps
def decode_only(path: Path) -> int:
    """Decode every video and audio frame with PyAV (threaded); returns the video frame count."""
    import av

    n = 0
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        for f in c.decode(*c.streams.video, *c.streams.audio):
            if isinstance(f, av.VideoFrame):
                n += 1
    return n


def build_detector(args: argparse.Namespace):
    import torch

    from macbdf.detect import Detector

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        return Detector.from_pretrained(args.checkpoint, device=args.device)
    from macbdf import create_model

    torch.manual_seed(0)
    return Detector(create_model(args.model), device=args.device)


def _rss_mb(field: str = "VmRSS") -> float | None:
    """Current resident set size (VmRSS) or this process image's peak (VmHWM) in MB, Linux only.

    VmHWM starts afresh at exec; ru_maxrss does not (it keeps the parent's peak at fork)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child_memory(args: argparse.Namespace) -> None:
    """Run in a fresh process: detect one video, print RSS figures as JSON.

    ru_maxrss is the process's peak so far; importing torch and building the model already set a
    peak, so the current RSS after loading is reported too (what detection adds on top).
    """
    det = build_detector(args)
    base_peak = _rss_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    r = det(args.child)
    wall = time.perf_counter() - t0
    peak = _rss_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"error": r.error, "frames": len(r.frame_scores["video"]), "verdict": r.verdict,
                      "flags": r.flags, "wall_s": wall, "base_mb": base_rss, "base_peak_mb": base_peak,
                      "peak_mb": peak, "end_mb": _rss_mb(), "timings": r.timings}))


def write_huge_video(path: Path, side: int = 8192, seconds: float = 0.4, fps: int = 25) -> Path:
    """A ``side`` x ``side`` H.264 clip (no audio): a face-like ellipse moving over a flat background.

    Planes are written directly in yuv420p (no RGB conversion of 200 MB images)."""
    import av
    import cv2

    n = int(round(seconds * fps))
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width = vs.height = side
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "30"}
        y = np.full((side, side), 80, np.uint8)
        for i in range(n):
            yi = y.copy()
            cv2.ellipse(yi, (side // 2 + 40 * i, side // 2), (side // 9, side // 3), 0, 0, 360, 160, -1)
            f = av.VideoFrame(side, side, "yuv420p")
            for plane, arr in zip(f.planes, (yi, np.full((side // 2, side // 2), 120, np.uint8),
                                             np.full((side // 2, side // 2), 140, np.uint8))):
                buf = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                buf[: arr.shape[0], : arr.shape[1]] = arr
            f.pts = i
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    return path


def _child_cmd(args: argparse.Namespace, *extra: str) -> list[str]:
    cmd = [sys.executable, __file__, "--model", args.model, "--device", args.device, *extra]
    if args.prefetch_arm:
        cmd.append("--prefetch-arm")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    return cmd


def _run_child(cmd: list[str], src: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_times(args: argparse.Namespace) -> None:
    """Run in a fresh process: warm up, then one repeat of decode / prepare / detect; print JSON."""
    from macbdf.media.prepare import prepare_file

    clip = Path(args.child_times)
    det = build_detector(args)
    t = time.perf_counter()
    first = det(clip)                            # warm-up (first forward allocates, loads cascades)
    assert first.error is None, first.error
    # the first call of a fresh process (what one `macbdf detect` pays on top of the imports)
    out: dict = {"detect_cold": time.perf_counter() - t}
    for name, fn in (("decode", lambda: decode_only(clip)), ("prepare", lambda: prepare_file(clip, det.preprocess)),
                     ("detect", lambda: det(clip))):
        t, c = time.perf_counter(), time.process_time()
        r = fn()
        out[name] = time.perf_counter() - t
        out[name + "_cpu"] = time.process_time() - c
        if name == "detect":
            out["model_s"] = r.timings["model_s"]
            out["decode_prepare_s"] = r.timings["decode_prepare_s"]
    if args.prefetch_arm:
        # the same model with `Detector(prefetch=True)` (preparation in a thread, overlapping the
        # model) and one torch thread, so the two stages do not fight over the 2 cores
        import torch

        from macbdf.detect import Detector

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        det2 = Detector(det.model, prefetch=True)
        det2(clip)
        t, c = time.perf_counter(), time.process_time()
        det2(clip)
        out["detect_prefetch"] = time.perf_counter() - t
        out["detect_prefetch_cpu"] = time.process_time() - c
        torch.set_num_threads(before)
    print(json.dumps(out))


_STEAL = StealMeter()     # from the script's start: the share of CPU time the VM's host took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="small", help="named config when no --checkpoint (default small)")
    ap.add_argument("--checkpoint", default=None, help="use this checkpoint instead of a random model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice; 1 is faster on a busy shared CPU)")
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per code tree (interleaved)")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="a baseline checkout's src folder, measured side by side with this one")
    ap.add_argument("--no-huge", action="store_true", help="skip the 8192x8192 memory measurement")
    ap.add_argument("--prefetch-arm", action="store_true",
                    help="also time Detector(prefetch=True) with 1 torch thread (preparation overlapping the model)")
    ap.add_argument("--long-minutes", type=float, default=0.0,
                    help="also measure memory on 1-minute and this-long 320x180 videos (0 = skip)")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)   # kept for old command lines
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-times", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(args)
        return
    if args.child_times:
        child_times(args)
        return

    import torch

    trees = [("current", SRC)] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    mem: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="detect_speed-") as tmp:
        tmp_p = Path(tmp)
        t = time.perf_counter()
        clip = write_video(tmp_p / "clip10s.mp4", 10.0)
        print(f"generated 10 s clip in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        for i in range(args.repeats):            # interleaved so load changes hit every tree alike
            for name, src in (trees if i % 2 == 0 else trees[::-1]):
                runs[name].append(_run_child(_child_cmd(args, "--child-times", str(clip)), src))
                print(f"repeat {i} {name}: {runs[name][-1]}", file=sys.stderr)
        if not args.no_huge:
            t = time.perf_counter()
            huge = write_huge_video(tmp_p / "huge8192.mp4")
            print(f"generated 8192x8192 clip in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            for name, src in trees:
                mem[name] = _run_child(_child_cmd(args, "--child", str(huge)), src)
                print(f"8192x8192 {name}: {mem[name]}", file=sys.stderr)
        long_mem = {}
        if args.long_minutes > 0:
            for minutes in (1.0, args.long_minutes):
                v = write_video(tmp_p / f"long{minutes:g}min.mp4", minutes * 60, size=(320, 180))
                long_mem[minutes] = _run_child(_child_cmd(args, "--child", str(v)), SRC)
                v.unlink()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    # decode alone is the same PyAV loop in every tree: its median over all runs is the common floor
    dec = statistics.median(r["decode"] for rs in runs.values() for r in rs)
    dec_cpu = statistics.median(r["decode_cpu"] for rs in runs.values() for r in rs)

    print(f"`python benchmarks/detect_speed.py --repeats {args.repeats}"
          f"{' --baseline-src ' + str(args.baseline_src) if args.baseline_src else ''}` — "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"device {args.device}, torch threads {args.threads or 'default'}, load average at the end "
          f"{os.getloadavg()[0]:.1f}; {_STEAL.line()}. Model {args.checkpoint or repr(args.model) + ' (random init)'}; "
          f"medians of {args.repeats} fresh processes per tree, interleaved; 10 s 25 fps 640x360 clip.")
    print()
    print(f"Decode alone (all runs): {dec:.3f} s wall, {dec_cpu:.3f} s CPU; ratios below are over these.")
    print()
    print("| tree | prepare s (x decode) | detect s (x decode) | model s (x decode) | "
          "CPU: prepare x decode | CPU: detect x decode |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in trees:
        print(f"| {name} | {med(name, 'prepare'):.3f} ({med(name, 'prepare') / dec:.2f}) | "
              f"{med(name, 'detect'):.3f} ({med(name, 'detect') / dec:.2f}) | {med(name, 'model_s'):.3f} "
              f"({med(name, 'model_s') / dec:.2f}) | {med(name, 'prepare_cpu') / dec_cpu:.2f} | "
              f"{med(name, 'detect_cpu') / dec_cpu:.2f} |")
    for name, _ in trees:
        if args.prefetch_arm and all("detect_prefetch" in r for r in runs[name]):
            print(f"{name}: Detector(prefetch=True), 1 torch thread: {med(name, 'detect_prefetch'):.3f} s "
                  f"({med(name, 'detect_prefetch') / dec:.2f} x decode; CPU {med(name, 'detect_prefetch_cpu') / dec_cpu:.2f})")
    for name, _ in trees:
        print(f"{name}: first call in a fresh process (cold) {med(name, 'detect_cold'):.3f} s "
              f"({med(name, 'detect_cold') / dec:.2f} x decode)")
    # per-repeat ratios (each repeat's detect over its own decode), the spread under load
    for name, _ in trees:
        rs = sorted(r["detect"] / r["decode"] for r in runs[name])
        print(f"{name}: detect/decode per repeat {', '.join(f'{x:.2f}' for x in rs)}")
    if args.baseline_src:
        print(f"detect speed-up current vs baseline (median wall): {med('baseline', 'detect') / med('current', 'detect'):.2f}x; "
              f"model {med('baseline', 'model_s') / med('current', 'model_s'):.2f}x; "
              f"prepare {med('baseline', 'prepare') / med('current', 'prepare'):.2f}x")
    for name, m in mem.items():
        print(f"8192x8192 0.4 s clip, {name}: peak RSS {m['peak_mb']:.0f} MB (after imports + model "
              f"{m['base_peak_mb']:.0f} MB), wall {m['wall_s']:.1f} s, frames scored {m['frames']} (target <= 1024 MB)")
    for minutes, m in long_mem.items():
        print(f"{minutes:g} min 320x180: frames {m['frames']}, wall {m['wall_s']:.1f} s, peak {m['peak_mb']:.0f} MB")
    ratio = med("current", "detect") / dec
    print(f"detect_over_decode_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
