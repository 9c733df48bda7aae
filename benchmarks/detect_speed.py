"""Detection speed and memory: how much does `macbdf detect` cost on top of decoding the video?

On a generated 10 s, 25 fps clip (640x360, H.264 + AAC, a drawn talking head), measured side by
side in one run with interleaved repeats (median):

* decode alone: PyAV decodes every video and audio frame (threaded, no pixel conversion): the
  floor any tool reading the file pays;
* preparation: `macbdf.media.prepare_file` (decode, face detection/tracking, crops, log-mel);
* detect: `Detector(path)`, the whole thing (preparation in windows + model + merging).

The figure is detect / decode (wall time; CPU-time ratios are printed beside it). Then the peak resident memory (``ru_maxrss`` of a fresh subprocess)
while detecting generated 1-minute and 10-minute videos (320x180): flat memory means the two peaks
are about equal (target < 1.5 GB).

The model is randomly initialised (speed does not depend on the weights) unless --checkpoint is
given. Prints the results; ``--write-results FILE`` also puts them into FILE's ``## detect_speed`` section.

Usage:
    python benchmarks/detect_speed.py [--model small] [--checkpoint DIR] [--repeats 3]
        [--long-minutes 10] [--device cpu] [--write-results FILE]
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

import numpy as np

from _results import add_results_flag, write_section

SECTION = "## detect_speed"


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


def _rss_mb() -> float | None:
    """Current resident set size (VmRSS) in MB, Linux only."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
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
    base_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    r = det(args.child)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"error": r.error, "frames": len(r.frame_scores["video"]), "wall_s": wall,
                      "base_mb": base_rss, "base_peak_mb": base_peak_kb / 1024, "peak_mb": peak_kb / 1024,
                      "end_mb": _rss_mb(), "timings": r.timings}))


def measure_memory(args: argparse.Namespace, video: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", str(video), "--model", args.model, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- results file
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="small", help="named config when no --checkpoint (default small)")
    ap.add_argument("--checkpoint", default=None, help="use this checkpoint instead of a random model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice; 1 is faster on a busy shared CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    add_results_flag(ap, SECTION)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(args)
        return

    import torch

    from macbdf.media.prepare import prepare_file

    with tempfile.TemporaryDirectory(prefix="detect_speed-") as tmp:
        tmp_p = Path(tmp)
        t = time.perf_counter()
        clip = write_video(tmp_p / "clip10s.mp4", 10.0)
        print(f"generated 10 s clip in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        det = build_detector(args)
        cfg = det.preprocess
        first = det(clip)                         # warm-up (first forward allocates, loads cascades)
        assert first.error is None, first.error
        times: dict[str, list[float]] = {"decode": [], "prepare": [], "detect": []}
        # CPU seconds of the process (all its threads): less sensitive than wall time to the other
        # jobs on a shared machine.
        cpu: dict[str, list[float]] = {"decode": [], "prepare": [], "detect": []}
        detect_timings = []

        def timed(name: str, fn, *a):
            t, c = time.perf_counter(), time.process_time()
            out = fn(*a)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            return out

        for _ in range(args.repeats):             # interleaved so load changes hit all three alike
            n_frames = timed("decode", decode_only, clip)
            prepared = timed("prepare", prepare_file, clip, cfg)
            r = timed("detect", det, clip)
            detect_timings.append(r.timings)
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        model_s = statistics.median(x["model_s"] for x in detect_timings)
        print(f"{n_frames} source frames, {prepared.num_frames} prepared frames", file=sys.stderr)

        mem = {}
        for minutes in (1.0, args.long_minutes):
            t = time.perf_counter()
            v = write_video(tmp_p / f"long{minutes:g}min.mp4", minutes * 60, size=(320, 180))
            print(f"generated {minutes:g} min video in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            mem[minutes] = measure_memory(args, v)
            print(f"{minutes:g} min: {mem[minutes]}", file=sys.stderr)
            v.unlink()

    ratio = med["detect"] / med["decode"]
    mcfg = det.model.config
    rows = [
        ("decode alone (PyAV, all frames)", "decode"),
        ("preparation (prepare_file)", "prepare"),
        ("detect (whole)", "detect"),
    ]
    m1, m10 = mem[1.0], mem[args.long_minutes]
    lines = [
        SECTION,
        "",
        f"`python benchmarks/detect_speed.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}, load average at the end "
        f"{os.getloadavg()[0]:.1f} (shared machine: other jobs ran at the same time).",
        f"Model: {'checkpoint ' + args.checkpoint if args.checkpoint else repr(args.model) + ' (random init)'}, "
        f"window {mcfg.num_frames} frames, face {cfg.face_size}px, batch_windows {det.batch_windows}. "
        f"Median of {args.repeats} interleaved repeats on a generated 10 s 25 fps 640x360 H.264+AAC clip.",
        "",
        "| step | wall s | x decode (wall) | CPU s | x decode (CPU) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {name} | {med[k]:.3f} | {med[k] / med['decode']:.2f} | {med_cpu[k]:.3f} | "
          f"{med_cpu[k] / med_cpu['decode']:.2f} |" for name, k in rows],
        f"| (of which model forward) | {model_s:.3f} | {model_s / med['decode']:.2f} | | |",
        "",
        "Resident memory of a fresh process detecting a generated 320x180 video: RSS after imports + "
        "model (before the video), RSS when done, and the process's peak (ru_maxrss, which includes "
        "the import-time peak):",
        "",
        "| video | frames scored | wall s | RSS after load MB | RSS at end MB | peak MB |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {label} | {m['frames']} | {m['wall_s']:.1f} | {m['base_mb']:.0f} | {m['end_mb']:.0f} | {m['peak_mb']:.0f} |"
          for label, m in (("1 min", m1), (f"{args.long_minutes:g} min", m10))],
        "",
        f"Peak memory {args.long_minutes:g} min / 1 min: {m10['peak_mb'] / m1['peak_mb']:.3f} "
        f"(target: flat, < 1536 MB).",
        "",
        f"detect_over_decode_ratio: {ratio:.2f}",
        "",
    ]
    text = "\n".join(lines)
    print("\n".join(lines[:-3]))
    if args.write_results:
        write_section(args.write_results, SECTION, text)
    print(f"detect_over_decode_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
