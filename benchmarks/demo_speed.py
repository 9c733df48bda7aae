"""`macbdf demo` end to end, timed the way a user runs it: a fresh process, a fresh output folder.

Prints the wall and CPU time of the whole command, each stage's seconds from its report, the test AUC, and the
load average before and after (this figure moves with the machine's load: issue 14's target is 5 minutes on a
quiet 2-core machine for the default preset). Nothing is written to benchmarks/RESULTS.md: results are copied
there by hand.

Usage:
    python benchmarks/demo_speed.py                       # the main job (preset synthetic), seed 0
    python benchmarks/demo_speed.py --preset compare      # the six-model comparison (~15 min)
    python benchmarks/demo_speed.py --quick --json        # a smoke run of the script itself

The last line printed is ``demo_wall_s: X``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import StealMeter

TARGET_S = {"synthetic": 300.0}   # issue 14 (quiet 2-core machine); the comparison has no time target


def run(preset: str, seed: int, quick: bool, keep: str | None) -> dict:
    out = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="demo_speed_")) / "demo"
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"error: {out} is not empty (the benchmark times a fresh run)")
    cmd = [sys.executable, "-m", "macbdf", "demo", "--out", str(out), "--preset", preset, "--seed", str(seed),
           "--json"] + (["--quick"] if quick else [])
    load0 = os.getloadavg()
    steal = StealMeter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"error: `{' '.join(cmd)}` exited with {proc.returncode}")
    rep = json.loads(proc.stdout)
    res = {
        "preset": preset, "seed": seed, "quick": quick, "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "stages_s": rep.get("timings_s", {}), "test_auc": {n: m.get("auc") for n, m in rep.get("models", {}).items()},
        "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(), "machine": platform.machine(),
        "steal_share": None if steal.share() is None else round(steal.share(), 3),
    }
    if not keep:
        shutil.rmtree(out.parent, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=("synthetic", "compare"), default="synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="the demo's --quick sizes (checks this script)")
    ap.add_argument("--keep", metavar="DIR", help="write the demo here and keep it (default: a temporary folder)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON before the last line")
    args = ap.parse_args()
    r = run(args.preset, args.seed, args.quick, args.keep)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"`macbdf demo --preset {r['preset']} --seed {r['seed']}{' --quick' if r['quick'] else ''}` - "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {r['cores']} cores, load average before "
              f"{r['load_before'][0]}, after {r['load_after'][0]}; CPU time stolen by the hypervisor: "
              f"{'unknown' if r['steal_share'] is None else format(100 * r['steal_share'], '.1f') + ' %'}")
        print("| stage | s |")
        print("|---|---:|")
        for k, v in r["stages_s"].items():
            print(f"| {k} | {v:.1f} |")
        print(f"| **whole command** (wall / CPU) | **{r['wall_s']:.1f}** / {r['cpu_s']:.1f} |")
        print("test AUC: " + ", ".join(f"{n} {a:.4f}" for n, a in r["test_auc"].items() if a is not None))
        target = TARGET_S.get(r["preset"]) if not r["quick"] else None
        if target:
            print(f"wall / target ({target:.0f} s): {r['wall_s'] / target:.2f}")
    print(f"demo_wall_s: {r['wall_s']}")


if __name__ == "__main__":
    main()
