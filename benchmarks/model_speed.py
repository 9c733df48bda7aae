"""Model cost per named config on CPU: parameters, FLOPs, forward and forward+backward time, peak memory.

Workload (issue 3): one 20.5 s clip = 512 frames at 25 fps of 96x96 faces plus its log-mel, batch 1,
fp32, random weights, cut into windows of the config's ``num_frames`` and run window by window
(forward: ``model.eval()`` under ``torch.inference_mode``; forward+backward: train mode, the full
`MACBCriterion` total and ``backward()``). Each config runs in a fresh subprocess so that its peak
resident memory (``resource.getrusage(...).ru_maxrss``; tracemalloc cannot see torch's allocations)
is its own. The process baseline (Python + torch + the model + the clip) is reported separately.

Targets on 2 cores: ``small`` <= 0.05 s forward per second of video with peak <= 1 GiB; ``base`` no
slower per video-second than the public BA-TFD+ (0.29 s, measured on this machine kind by issue 3).

``--baseline-src DIR`` (another checkout's ``src``) measures that code too, in the same run, config by
config and interleaved with this one (before/after under the same load). Nothing is written to
benchmarks/RESULTS.md: results are copied there by hand.

Usage:
    python benchmarks/model_speed.py                    # tiny, small, base
    python benchmarks/model_speed.py --configs small --repeats 5 --baseline-src /tmp/base/src --json

The last line printed is ``small_forward_s_per_video_s: X``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _results import StealMeter

CLIP_FRAMES = 512          # 20.48 s at 25 fps
FACE = 96
FPS = 25.0
BATFD_PLUS_S_PER_VIDEO_S = 0.29   # issue 3 anchor (2 cores, fp32, batch 1, random weights)
SMALL_TARGET_S = 0.05
SMALL_TARGET_MIB = 1024.0
SECTION = "## model_speed"


def _rss_mib() -> float:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(name: str, threads: int, repeats: int, train_windows: int, window_batch: int = 1) -> dict:
    """Measure one config in this (fresh) process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from macbdf.models.losses import MACBCriterion
    from macbdf.models.registry import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    steal = StealMeter()
    model = create_model(name)
    crit = MACBCriterion(model.config)
    cfg = model.config
    t = cfg.num_frames
    mpf, n_mels = cfg.preprocess.mel_per_frame, cfg.preprocess.n_mels
    video = torch.rand(CLIP_FRAMES, 3, FACE, FACE)
    audio = torch.randn(CLIP_FRAMES * mpf, n_mels) - 5.0
    n_win = -(-CLIP_FRAMES // t)

    def window(i: int) -> dict:
        s, e = i * t, min((i + 1) * t, CLIP_FRAMES)
        v = torch.zeros(1, t, 3, FACE, FACE)
        v[0, : e - s] = video[s:e]
        a = torch.zeros(1, t * mpf, n_mels)
        a[0, : (e - s) * mpf] = audio[s * mpf: e * mpf]
        mask = torch.zeros(1, t, dtype=torch.bool)
        mask[0, : e - s] = True
        z = torch.zeros(1)
        return {"video": v, "audio": a, "frame_mask": mask, "label": z, "video_label": z, "audio_label": z,
                "frame_label_video": torch.zeros(1, t), "frame_label_audio": torch.zeros(1, t),
                "method_id": torch.zeros(1, dtype=torch.long)}

    def stack(ws: list[dict]) -> dict:
        return {k: torch.cat([w[k] for w in ws]) for k in ws[0]}

    # the windows of the one clip, `window_batch` at a time (1 = strictly one window per forward)
    windows = [stack([window(j) for j in range(i, min(i + window_batch, n_win))])
               for i in range(0, n_win, window_batch)]
    params = sum(p.numel() for p in model.parameters())
    baseline_mib = _rss_mib()

    model.eval()
    # FlopCounterMode's module tracker hooks into autograd: count with grad mode on, time under inference_mode
    flop_counter = FlopCounterMode(display=False)
    with flop_counter:
        model(windows[0])
    flops_window = flop_counter.get_total_flops() / windows[0]["video"].shape[0]
    with torch.inference_mode():
        model(windows[0])  # warm-up (oneDNN primitive creation)
        fwd, fwd_cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for w in windows:
                model(w)
            fwd.append(time.perf_counter() - t0)
            fwd_cpu.append(time.process_time() - c0)
    peak_fwd = _rss_mib()

    model.train()
    crit.train()
    # warm-up one step, then `train_windows` windows (the cost per window does not depend on its position)
    crit.total(crit(model(windows[0]), windows[0])).backward()
    sub = windows[: max(1, -(-min(train_windows, n_win) // window_batch))]
    train, train_cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for w in sub:
            model.zero_grad(set_to_none=True)
            crit.total(crit(model(w), w)).backward()
        train.append(time.perf_counter() - t0)
        train_cpu.append(time.process_time() - c0)
    peak_train = _rss_mib()
    dur = CLIP_FRAMES / FPS
    sub_dur = sum(w["video"].shape[0] for w in sub) * t / FPS
    return {
        "config": name, "params": params, "num_frames": t, "windows": n_win, "threads": threads,
        "window_batch": window_batch,
        "gflops_per_video_s": flops_window * n_win / dur / 1e9,
        "forward_s": min(fwd), "forward_s_per_video_s": min(fwd) / dur,
        "forward_cpu_s_per_video_s": min(fwd_cpu) / dur,
        "train_s_per_video_s": min(train) / sub_dur, "train_cpu_s_per_video_s": min(train_cpu) / sub_dur,
        "baseline_rss_mib": baseline_mib, "peak_rss_forward_mib": peak_fwd, "peak_rss_train_mib": peak_train,
        "steal_share": steal.share(),
    }


def run_config(name: str, threads: int, repeats: int, train_windows: int, window_batch: int,
               omp_wait_policy: str, src: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--threads", str(threads), "--repeats", str(repeats),
           "--train-windows", str(train_windows), "--window-batch", str(window_batch)]
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    # must be in the environment before torch (libgomp) loads, hence the fresh process
    if omp_wait_policy == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"config": name, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["omp_wait_policy"] = omp_wait_policy
    row["tree"] = "baseline" if src else "current"
    return row


def table(rows: list[dict]) -> str:
    head = ("| tree | config | threads | OMP_WAIT_POLICY | windows / forward | params | T | GFLOPs / video-s | fwd wall s / video-s | fwd CPU s / video-s | "
            "fwd+bwd wall s / video-s | fwd+bwd CPU s / video-s | peak RSS fwd (MiB) | peak RSS fwd+bwd (MiB) | "
            "baseline RSS (MiB) | CPU stolen by the host |")
    lines = [head, "|" + "---|" * 16]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('tree', 'current')} | {r['config']} | error: {r['error']} |" + " |" * 13)
            continue
        lines.append(f"| {r.get('tree', 'current')} | {r['config']} | {r['threads']} | {r['omp_wait_policy']} | {r['window_batch']} | {r['params'] / 1e6:.2f} M | {r['num_frames']} | "
                     f"{r['gflops_per_video_s']:.2f} | {r['forward_s_per_video_s']:.4f} | "
                     f"{r['forward_cpu_s_per_video_s']:.4f} | {r['train_s_per_video_s']:.4f} | "
                     f"{r['train_cpu_s_per_video_s']:.4f} | {r['peak_rss_forward_mib']:.0f} | "
                     f"{r['peak_rss_train_mib']:.0f} | {r['baseline_rss_mib']:.0f} | "
                     f"{'?' if r.get('steal_share') is None else format(100 * r['steal_share'], '.1f') + ' %'} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    """Target checks on the rows of the first thread count measured."""
    ok = [r for r in rows if "error" not in r and r.get("tree", "current") == "current"]
    if not ok:
        return []
    first = (ok[0]["threads"], ok[0]["window_batch"], ok[0].get("omp_wait_policy"))
    by = {r["config"]: r for r in ok if (r["threads"], r["window_batch"], r.get("omp_wait_policy")) == first}
    out = []
    if "small" in by:
        s = by["small"]
        out.append(f"small: {s['forward_s_per_video_s']:.4f} s per video-second (target <= {SMALL_TARGET_S}, "
                   f"ratio target/measured {SMALL_TARGET_S / s['forward_s_per_video_s']:.2f}x), peak "
                   f"{s['peak_rss_forward_mib']:.0f} MiB (target <= {SMALL_TARGET_MIB:.0f})")
    if "base" in by:
        b = by["base"]
        out.append(f"base: {b['forward_s_per_video_s']:.4f} s per video-second vs BA-TFD+ {BATFD_PLUS_S_PER_VIDEO_S} "
                   f"(BA-TFD+/base = {BATFD_PLUS_S_PER_VIDEO_S / b['forward_s_per_video_s']:.2f}x)")
    alt = next((r for r in ok if r["config"] == "small" and r.get("omp_wait_policy") == "default"
                and r is not by.get("small")), None)
    if "small" in by and alt is not None:
        out.append(f"small with the default OpenMP wait policy (same run): {alt['forward_s_per_video_s']:.4f} s per "
                   f"video-second = {alt['forward_s_per_video_s'] / by['small']['forward_s_per_video_s']:.1f}x the "
                   f"{by['small']['omp_wait_policy']} figure")
    if "small" in by and "base" in by:
        out.append(f"base/small forward time ratio (same run): "
                   f"{by['base']['forward_s_per_video_s'] / by['small']['forward_s_per_video_s']:.1f}x")
    return out


def side_by_side(rows: list[dict], threads: int, window_batch: int) -> list[str]:
    """Median forward time per config and tree over the rounds, and current / baseline ratios."""
    out = []
    names = sorted({r["config"] for r in rows if "error" not in r})
    for name in names:
        per = {}
        for tree in ("current", "baseline"):
            vals = [r for r in rows if "error" not in r and r["config"] == name and r.get("tree") == tree
                    and r["threads"] == threads and r["window_batch"] == window_batch
                    and r.get("omp_wait_policy") != "default"]
            if vals:
                per[tree] = {k: statistics.median(v[k] for v in vals) for k in
                             ("forward_s_per_video_s", "forward_cpu_s_per_video_s", "train_s_per_video_s")}
                per[tree]["n"] = len(vals)
        tag = f"{threads} thread(s), {window_batch} window(s) per forward"
        for tree, m in per.items():
            out.append(f"{name} {tree} ({tag}): forward {m['forward_s_per_video_s']:.4f} s per video-second (CPU "
                       f"{m['forward_cpu_s_per_video_s']:.4f}), fwd+bwd {m['train_s_per_video_s']:.4f}; median of {m['n']}")
        if len(per) == 2:
            c, b = per["current"], per["baseline"]
            out.append(f"{name} ({tag}): baseline / current forward = {b['forward_s_per_video_s'] / c['forward_s_per_video_s']:.2f}x "
                       f"wall, {b['forward_cpu_s_per_video_s'] / c['forward_cpu_s_per_video_s']:.2f}x CPU; "
                       f"fwd+bwd {b['train_s_per_video_s'] / c['train_s_per_video_s']:.2f}x")
            # the i-th current and baseline rows ran back to back in round i: on a machine whose speed drifts,
            # the paired count says more than medians over rounds that ran minutes apart
            cur, base = ([r["forward_s_per_video_s"] for r in rows if "error" not in r and r["config"] == name
                          and r.get("tree") == tree and r["threads"] == threads and r["window_batch"] == window_batch
                          and r.get("omp_wait_policy") != "default"] for tree in ("current", "baseline"))
            pairs = list(zip(cur, base))
            out.append(f"{name} ({tag}): current faster in {sum(x < y for x, y in pairs)} of {len(pairs)} paired rounds")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["tiny", "small", "base"])
    ap.add_argument("--threads", type=int, nargs="+", default=[2],
                    help="torch intra-op thread counts to measure (the target machine has 2 cores); the first "
                         "one gives the headline")
    ap.add_argument("--repeats", type=int, default=2, help="clip passes per measurement; the fastest is kept")
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY for the measuring processes (PASSIVE | ACTIVE | default = leave unset). "
                         "PASSIVE: idle OpenMP threads sleep instead of spinning; on a 2-core machine shared with "
                         "other jobs spinning threads make 2-thread runs many times slower")
    ap.add_argument("--no-policy-comparison", action="store_true",
                    help="skip the extra small-model row measured with the default OpenMP wait policy")
    ap.add_argument("--window-batch", type=int, nargs="+", default=[1],
                    help="windows of the clip stacked per forward (1 = one window at a time, the headline)")
    ap.add_argument("--train-windows", type=int, default=4,
                    help="windows timed for forward+backward (scaled to per video-second)")
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)   # kept for old command lines
    ap.add_argument("--baseline-src", default=None,
                    help="a baseline checkout's src folder, measured side by side (interleaved) with this one")
    ap.add_argument("--json", action="store_true", help="also print the raw rows as JSON")
    ap.add_argument("--rounds", type=int, default=1,
                    help="fresh processes per config and tree (interleaved); the summary takes their median")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads[0], args.repeats, args.train_windows, args.window_batch[0])))
        return 0

    rows = []
    steal = StealMeter()
    for threads in args.threads:
        for wb in args.window_batch:
            for name in args.configs:
                print(f"measuring {name}: {threads} thread(s), {wb} window(s) per forward ...", file=sys.stderr,
                      flush=True)
                pair = [None, args.baseline_src] if args.baseline_src else [None]
                for rnd in range(args.rounds):
                    for src in (pair if rnd % 2 == 0 else pair[::-1]):
                        rows.append(run_config(name, threads, args.repeats, args.train_windows, wb,
                                               args.omp_wait_policy, src))
    if "small" in args.configs and args.omp_wait_policy != "default" and not args.no_policy_comparison:
        print("measuring small with the default OpenMP wait policy (side by side) ...", file=sys.stderr, flush=True)
        rows.append(run_config("small", args.threads[0], args.repeats, args.train_windows, args.window_batch[0],
                               "default"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    tab = table(rows)
    notes = verdicts(rows)
    print(tab)
    for n in notes:
        print(n)
    if args.json:
        print(json.dumps(rows, indent=2))
    print(f"1-min load average at the end: {load:.1f}")
    print(steal.line())
    for threads in args.threads:
        for wb in args.window_batch:
            for line in side_by_side(rows, threads, wb):
                print(line)
    small = [r["forward_s_per_video_s"] for r in rows if r.get("config") == "small" and "error" not in r
             and r.get("tree") == "current" and r["threads"] == args.threads[0]
             and r["window_batch"] == args.window_batch[0] and r.get("omp_wait_policy") == args.omp_wait_policy]
    print(f"small_forward_s_per_video_s: {statistics.median(small):.4f}" if small
          else "small_forward_s_per_video_s: nan")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
