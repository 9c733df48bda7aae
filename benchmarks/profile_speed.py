"""Where the time of `detect` goes: the media pipeline by stage and the model forward by module.

Media: ``prepare_file`` on a clip with decoding inline (no read-ahead thread, so every stage's time is
its own and they add up), CPU seconds per stage: face detection (full-frame scans, periodic re-scans
with a size hint, region searches around the tracked face), face crops (cut + resize + YUV->RGB),
audio (resampling + log-mel), and the rest (demux + decode + tracking + bookkeeping).

Model: one `small` (or ``--model``) forward in eval mode under ``torch.inference_mode``, windows of
``num_frames`` frames, ``--batch`` windows per forward (detect's default is 4); time per top-level
module (the multi-scale blocks and fusion modulations per stream), median over ``--repeats`` forwards.

Run it once per code tree to compare (e.g. ``PYTHONPATH=/tmp/base/src python benchmarks/profile_speed.py``).
Nothing is written to benchmarks/RESULTS.md.

Usage:
    python benchmarks/profile_speed.py [--clip PATH] [--model small] [--batch 4] [--threads 1] [--repeats 20]
Last line: ``model_forward_ms_per_window: X``.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path


def media_profile(clip: Path) -> dict[str, float]:
    import macbdf.media.audio as audio_mod
    import macbdf.media.prepare as prep
    from macbdf.config import PreprocessConfig
    from macbdf.media.decode import DecodedFrame

    cpu: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.defaultdict(int)

    def wrap(obj, attr, label):
        orig = getattr(obj, attr)

        def timed(*a, **k):
            c = time.process_time()
            try:
                return orig(*a, **k)
            finally:
                key = label(a, k) if callable(label) else label
                cpu[key] += time.process_time() - c
                calls[key] += 1
        setattr(obj, attr, timed)
        return orig

    det = prep.default_face_detector()
    cls = type(det)
    saved = [(cls, "detect", wrap(cls, "detect", lambda a, k: "face detection: region search" if k.get("max_size")
                                   else ("face detection: re-scan (size hint)" if k.get("min_size")
                                         else "face detection: full scan"))),
             (DecodedFrame, "crop", wrap(DecodedFrame, "crop", "face crops (cut, resize, YUV->RGB)")),
             (prep, "log_mel_from_reader", wrap(prep, "log_mel_from_reader", "audio (decode, resample, log-mel)"))]
    read_ahead = prep.READ_AHEAD
    prep.READ_AHEAD = 0
    try:
        cfg = PreprocessConfig()
        prep.prepare_file(clip, cfg)                       # warm-up
        cpu.clear()
        calls.clear()
        c = time.process_time()
        out = prep.prepare_file(clip, cfg)
        total = time.process_time() - c
    finally:
        prep.READ_AHEAD = read_ahead
        for obj, attr, orig in saved:
            setattr(obj, attr, orig)
    del audio_mod
    rows = dict(cpu)
    rows["video demux + decode + tracking + rest"] = total - sum(cpu.values())
    print(f"media: prepare_file({clip.name}) CPU {total:.3f} s, {out.num_frames} frames, flags {out.flags}")
    for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
        n = calls.get(k)
        print(f"  {k:42s} {v:7.3f} s  {100 * v / total:5.1f} %" + (f"  ({n} calls)" if n else ""))
    return rows


def model_profile(name: str, batch: int, repeats: int) -> float:
    import torch

    from macbdf.models.registry import create_model

    torch.manual_seed(0)
    m = create_model(name).eval()
    b = m.dummy_batch(batch_size=batch)
    b = {k: b[k] for k in ("video", "audio", "frame_mask")}
    b["frame_mask"][:] = True
    acc: dict[str, list[float]] = collections.defaultdict(list)
    cur: dict[str, float] = collections.defaultdict(float)

    def wrap(label, mod):
        f = mod.forward

        def g(*a, **k):
            t = time.perf_counter()
            r = f(*a, **k)
            cur[label] += time.perf_counter() - t
            return r
        mod.forward = g

    for child_name, mod in m.named_children():
        if isinstance(mod, torch.nn.ModuleList):
            for sub in mod:
                wrap(child_name, sub)
        elif mod is not None:
            wrap(child_name, mod)
    if m.video_encoder is not None and m.video_encoder.stem is not None:
        wrap("video_encoder (of which the conv stem)", m.video_encoder.stem)
    if m.audio_encoder is not None and m.audio_encoder.stem is not None:
        wrap("audio_encoder (of which the conv stem)", m.audio_encoder.stem)
    totals = []
    with torch.inference_mode():
        for _ in range(3):
            m(b)
        for _ in range(repeats):
            cur.clear()
            t = time.perf_counter()
            m(b)
            totals.append(time.perf_counter() - t)
            for k, v in cur.items():
                acc[k].append(v)
    total = statistics.median(totals)
    per_window = total / batch
    print(f"model: {name}, {batch} window(s) of {m.config.num_frames} frames per forward, torch threads "
          f"{torch.get_num_threads()}: median forward {1000 * total:.1f} ms = {1000 * per_window:.1f} ms per window "
          f"= {per_window / (m.config.num_frames / m.config.preprocess.fps):.4f} s per video-second")
    meds = {k: statistics.median(v) for k, v in acc.items()}
    top = sum(v for k, v in meds.items() if "(of which" not in k)
    for k, v in sorted(meds.items(), key=lambda kv: -kv[1]):
        print(f"  {k:42s} {1000 * v:7.2f} ms  {100 * v / total:5.1f} %")
    print(f"  {'(outside the modules: glue, pooling, heads)':42s} {1000 * (total - top):7.2f} ms  "
          f"{100 * (total - top) / total:5.1f} %")
    return per_window


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=None, help="video to prepare (default: detect_speed's 10 s clip)")
    ap.add_argument("--model", default="small")
    ap.add_argument("--batch", type=int, default=4, help="windows per forward (detect's batch_windows)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="profile_speed-") as tmp:
        clip = args.clip
        if clip is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from detect_speed import write_video

            clip = write_video(Path(tmp) / "clip10s.mp4", 10.0)
        media_profile(clip)
    per_window = model_profile(args.model, args.batch, args.repeats)
    print(f"model_forward_ms_per_window: {1000 * per_window:.2f}")


if __name__ == "__main__":
    main()
