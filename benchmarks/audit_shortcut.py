"""The shortcut audit on a synthetic benchmark, with and without a planted leading-silence shortcut.

FakeAVCeleb and AV-Deepfake1M fakes start with a short leading silence that alone separates them from
the reals (AVH-Align, CVPR 2025). This copies a `macbdf synth --layout fakeavceleb` folder and
silences the first --silence seconds of every fake's audio (video untouched), prepares both folders
with and without `--trim-leading-silence`, and audits the four caches (`macbdf audit`). Prints one
line per cache: leading-silence real/fake means and AUC, the metadata classifier's group-wise CV AUC,
its permutation chance level, and whether the audit warned; the JSON reports go to OUT/.

Usage: python benchmarks/audit_shortcut.py SYNTH_DIR OUT [--silence 0.3] [--workers 2]
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from macbdf.media.decode import decode_audio, iter_video_frames
from macbdf.synth.encode import write_mp4


def plant_silence(src: Path, dst: Path, seconds: float) -> int:
    """Copy the dataset; the fakes' audio is zero for its first `seconds`. Returns the fakes changed.

    Every clip (real too) is decoded and encoded again, so the copy differs from the original only
    by the planted silence, not by a second compression of the fakes alone."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    n = 0
    with open(dst / "meta_data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        folder = row.get("") or row[list(row)[-1]]   # the unnamed last column holds the folder
        path = dst / Path(folder).relative_to("FakeAVCeleb") / row["path"]
        frames = np.stack([fr.bgr(1 << 20)[..., ::-1] for _, fr in iter_video_frames(str(path), 25.0)])
        audio, _ = decode_audio(str(path), 16000)
        audio = audio.copy()
        if row["method"] != "real":
            audio[: int(seconds * 16000)] = 0.0
            n += 1
        path.unlink()
        write_mp4(path, np.ascontiguousarray(frames), audio)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("synth", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--silence", type=float, default=0.3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    planted = args.out / "synth_silence"
    n = plant_silence(args.synth, planted, args.silence)
    print(f"planted {args.silence} s of leading silence in {n} fakes ({time.time() - t:.0f} s)")
    py = [sys.executable, "-m", "macbdf"]
    for name, root in (("plain", args.synth), ("silence", planted)):
        for trim in (False, True):
            tag = f"{name}{'_trim' if trim else ''}"
            cache = args.out / f"cache_{tag}"
            cmd = [*py, "prepare", "--dataset", "fakeavceleb", "--root", str(root), "--out", str(cache), "--quiet",
                   "--workers", str(args.workers)] + (["--trim-leading-silence"] if trim else [])
            subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
            report = args.out / f"audit_{tag}.json"
            subprocess.run([*py, "audit", "--data", str(cache), "--json", str(report)], check=True,
                           stdout=subprocess.DEVNULL)
            r = json.loads(report.read_text())
            ls, c = r["features"]["leading_silence_s"], r["classifier"]
            print(f"{tag:<14} n={r['n']} leading silence real {ls['real_mean']:.3f} s / fake {ls['fake_mean']:.3f} s, "
                  f"AUC {ls['auc']:.3f}; metadata CV AUC logreg {c['logreg']:.3f} gbdt {c['gbdt']:.3f} "
                  f"(chance {c['null_auc_95']:.3f}); warning: {'yes' if r['warning'] else 'no'}")


if __name__ == "__main__":
    main()
