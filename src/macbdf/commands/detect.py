"""Score videos with a trained checkpoint: is each one fake, where, and in which modality.

Inputs are files, folders (searched recursively for video files: .mp4 .mov .mkv .webm .avi .m4v
.mpg .mpeg .ts .mts .flv .wmv .3gp .ogv) and, with --list, text files naming one path per line (blank lines
and lines starting with # are ignored; relative paths are relative to the list file). Any container
FFmpeg reads is accepted; the content decides, not the extension.

Per video: p_fake (probability of a fake in either modality), the verdict at the checkpoint's
calibrated threshold (or --threshold), the probabilities that the audio / the video track is fake
(unimodal heads), per-frame audio and video scores, the fake segments they imply, flags (no_face,
no_audio, short, low_light, ...), and timings. Long videos are scored in windows of the model's
frame count with bounded memory and merged (frame-weighted mean of window probabilities).

Outputs: a table on the terminal; --json OUT.json (a list, one object per input file, with the
fields path, p_fake, p_audio_fake, p_video_fake, verdict, threshold, frame_scores, segments, flags,
error, timings, duration); --csv OUT.csv (one row per file, no per-frame scores); --plot DIR (one
PNG timeline per video: audio and video frame scores, detected segments shaded). Output files are
written atomically (temporary file, then rename).

A file that cannot be read (empty, truncated, not media, no video stream, ...) gets one line with
the reason, and the other files are still scored.

Exit code: 0 every file was scored, 1 some files failed, 2 usage error (no inputs, missing
checkpoint, bad option).

Examples:
  macbdf detect clip.mp4 --checkpoint runs/demo/checkpoint
  macbdf detect videos/ --checkpoint ckpt --json out.json --csv out.csv --plot plots/
  macbdf detect --list todo.txt --checkpoint ckpt --device cuda --threshold 0.7
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from macbdf.filemode import atomic_write
from macbdf.inference import DEFAULT_BATCH_WINDOWS

DEFAULT_MAX_SECONDS = 3600.0   # an hour of video per file unless lifted (memory is bounded; time is not)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".flv", ".wmv", ".3gp", ".ogv"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="video files or folders (recursive)")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="checkpoint directory (model.safetensors + config.json)")
    parser.add_argument("--list", dest="list_files", action="append", default=[], metavar="FILE",
                        help="text file with one input path per line (may be given several times)")
    parser.add_argument("--json", dest="json_out", metavar="OUT.json", help="write all results as a JSON list")
    parser.add_argument("--csv", dest="csv_out", metavar="OUT.csv", help="write one CSV row per file")
    parser.add_argument("--plot", dest="plot_dir", metavar="DIR", help="write a PNG timeline per video into DIR")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on p_fake (default: the checkpoint's calibrated threshold)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--aggregation", choices=("mean", "max"), default="mean",
                        help="how window probabilities merge into the video's: frame-weighted mean "
                             "(default) or max (more sensitive to short fake passages)")
    parser.add_argument("--batch-windows", type=int, default=DEFAULT_BATCH_WINDOWS, metavar="N",
                        help=f"windows per forward pass (memory vs speed; default {DEFAULT_BATCH_WINDOWS})")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help=f"score at most this many seconds of each video (flag truncated; default "
                             f"{DEFAULT_MAX_SECONDS:.0f}, 0 = no limit)")
    parser.add_argument("--quiet", action="store_true", help="no table and no progress bar")
    bench = parser.add_argument_group("benchmark submission files (score them with `macbdf evaluate --submission`)")
    bench.add_argument("--av1m-cls", metavar="FILE", help="AV-Deepfake1M classification file: one 'file;score' line per video")
    bench.add_argument("--av1m-loc", metavar="FILE.json",
                       help="AV-Deepfake1M localisation JSON {file: [[score, start_s, end_s], ...]} (>= 1 proposal per video)")
    bench.add_argument("--lavdf-segments", metavar="DIR",
                       help="LAV-DF / BA-TFD segment lists: DIR/<file>.csv with begin,end,score in frames")
    bench.add_argument("--submission-root", metavar="DIR",
                       help="file keys are paths relative to DIR (the dataset split folder), e.g. id001/x/real.mp4; "
                            "default: the paths as given")


def _usage(msg: str) -> int:
    print(f"macbdf detect: error: {msg}", file=sys.stderr)
    return 2


def collect_inputs(paths: Sequence[str], list_files: Sequence[str]) -> tuple[list[str], list[str]]:
    """Expand files/folders/list files into an ordered, de-duplicated list of paths.

    Returns (inputs, problems): problems are usage errors (unreadable list file). A path that does
    not exist stays in the inputs, so it is reported as a failed file with its reason.
    """
    out: list[str] = []
    problems: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    def expand(p: str) -> None:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in files:
                    if os.path.splitext(f)[1].lower() in VIDEO_EXTENSIONS:
                        found.append(os.path.join(root, f))
            for f in sorted(found):
                add(f)
        else:
            add(p)

    for lf in list_files:
        try:
            text = Path(lf).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"cannot read list file {lf}: {e.__class__.__name__}: {e}")
            continue
        base = os.path.dirname(os.path.abspath(lf))
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            expand(line if os.path.isabs(line) else os.path.join(base, line))
    for p in paths:
        expand(p)
    return out, problems


def _atomic_write_bytes(path: str, data: bytes) -> None:
    target = os.path.abspath(path)
    with atomic_write(target, prefix=".tmp-", suffix=os.path.basename(target)) as tmp:
        tmp.write_bytes(data)


def print_safe(text: str, file: Any = None) -> None:
    """print() that survives text the stream cannot encode (a non-UTF-8 file name on a strict
    UTF-8 or ASCII terminal): such characters are written as backslash escapes."""
    stream = sys.stdout if file is None else file
    enc = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(enc, "backslashreplace").decode(enc, "replace"), file=stream)


def _fmt(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def format_table(results: Sequence[Any]) -> str:
    """Readable fixed-width table of results (one line per file, errors inline)."""
    rows = [("file", "verdict", "p_fake", "p_audio", "p_video", "segments", "flags / error")]
    for r in results:
        name = r.path if len(r.path) <= 48 else "..." + r.path[-45:]
        if r.error:
            rows.append((name, "ERROR", "-", "-", "-", "-", r.error))
        else:
            segs = ", ".join(f"{s['start']:.1f}-{s['end']:.1f}s {s['modality']}" for s in r.segments[:3])
            if len(r.segments) > 3:
                segs += f" (+{len(r.segments) - 3})"
            note = ",".join(r.flags) or "-"
            if getattr(r, "abstain_reason", None):
                note = f"abstain: {r.abstain_reason}" + (f"; {','.join(r.flags)}" if r.flags else "")
            rows.append((name, r.verdict or "-", _fmt(r.p_fake), _fmt(r.p_audio_fake), _fmt(r.p_video_fake),
                         segs or "-", note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1])
    return "\n".join(lines)


def model_note(info: dict[str, Any], threshold: float) -> str:
    """Two lines under the table: what the model is (its card) and where the threshold comes from."""
    note = f"model: {info.get('summary', '')}"
    if info.get("not_for"):
        note += f" Not for: {'; '.join(info['not_for'])}."
    return note + f"\nthreshold {threshold:.3f}: {info.get('threshold_source', 'argument')}"


CSV_FIELDS = ["path", "verdict", "p_fake", "p_audio_fake", "p_video_fake", "threshold", "duration",
              "num_segments", "segments", "flags", "error", "decode_prepare_s", "model_s", "total_s",
              "abstain_reason"]


def to_csv(results: Sequence[Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for r in results:
        w.writerow({
            "path": r.path, "verdict": r.verdict or "", "p_fake": "" if r.p_fake is None else r.p_fake,
            "p_audio_fake": "" if r.p_audio_fake is None else r.p_audio_fake,
            "p_video_fake": "" if r.p_video_fake is None else r.p_video_fake,
            "threshold": r.threshold, "duration": "" if r.duration is None else r.duration,
            "num_segments": len(r.segments),
            "segments": ";".join(f"{s['start']}-{s['end']}:{s['modality']}:{s['score']}" for s in r.segments),
            "flags": ";".join(r.flags), "error": r.error or "",
            "decode_prepare_s": r.timings.get("decode_prepare_s", ""), "model_s": r.timings.get("model_s", ""),
            "total_s": r.timings.get("total_s", ""),
            "abstain_reason": getattr(r, "abstain_reason", None) or "",
        })
    return buf.getvalue()


def plot_name(path: str) -> str:
    """PNG name for an input: its stem plus a short hash of the full path (same stems don't collide)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(path).stem)[:60] or "video"
    digest = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{stem}-{digest}.png"


def plot_timeline(result: Any, out_path: str) -> None:
    """PNG timeline: audio and video frame scores over time, threshold, detected segments shaded."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fs = result.frame_scores
    fps = float(fs.get("fps") or 25.0)
    n = max(len(fs["audio"]), len(fs["video"]))   # a track judged unusable has no scores
    t = [i / fps for i in range(n)]
    fig = Figure(figsize=(10, 3.2), dpi=100)
    ax = fig.add_subplot(111)
    colours = {"audio": "#d9822b", "video": "#2b7bd9", "both": "#c23b3b"}
    for s in result.segments:
        ax.axvspan(s["start"], s["end"], color=colours[s["modality"]], alpha=0.18, lw=0)
    if fs["audio"]:
        ax.plot(t[: len(fs["audio"])], fs["audio"], color=colours["audio"], lw=1.2, label="audio frame score")
    if fs["video"]:
        ax.plot(t[: len(fs["video"])], fs["video"], color=colours["video"], lw=1.2, label="video frame score")
    ax.axhline(result.threshold, color="#555555", lw=0.8, ls="--", label=f"threshold {result.threshold:.2f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, max(t[-1] if t else 1.0, 1.0 / fps))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    verdict = (result.verdict or "?").upper()
    ax.set_title(f"{Path(result.path).name}: {verdict}  p_fake={_fmt(result.p_fake)}  "
                 f"audio={_fmt(result.p_audio_fake)}  video={_fmt(result.p_video_fake)}", fontsize=9)
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    for m in ("audio", "video", "both"):
        if any(s["modality"] == m for s in result.segments):
            handles.append(Patch(color=colours[m], alpha=0.25, label=f"fake segment ({m})"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, ncol=3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close("all")
    _atomic_write_bytes(out_path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    inputs, problems = collect_inputs(args.paths, args.list_files)
    if problems:
        return _usage(problems[0])
    if not inputs:
        return _usage("no input videos (give files, folders or --list FILE)")
    ckpt = Path(args.checkpoint)
    if not ckpt.is_dir():
        return _usage(f"checkpoint directory not found: {args.checkpoint}")
    if not (ckpt / "config.json").is_file() or not (ckpt / "model.safetensors").is_file():
        return _usage(f"not a checkpoint directory (needs config.json and model.safetensors): {args.checkpoint}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return _usage(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.batch_windows < 1:
        return _usage("--batch-windows must be >= 1")
    if not (args.max_seconds >= 0 and args.max_seconds < float("inf")):
        return _usage("--max-seconds must be a number >= 0 (0 = no limit)")
    for out in (args.json_out, args.csv_out, args.av1m_cls, args.av1m_loc):
        if out and os.path.isdir(out):
            return _usage(f"output path is a directory: {out}")
    if args.plot_dir and os.path.exists(args.plot_dir) and not os.path.isdir(args.plot_dir):
        return _usage(f"--plot needs a directory: {args.plot_dir}")

    from macbdf.detect import Detector

    try:
        det = Detector.from_pretrained(args.checkpoint, device=args.device, threshold=args.threshold,
                                       aggregation=args.aggregation, batch_windows=args.batch_windows)
    except Exception as e:  # corrupt checkpoint, unknown device: a usage problem, not a traceback
        msg = " ".join(str(e).split())
        return _usage(f"cannot load checkpoint {args.checkpoint}: {msg}")

    from tqdm.auto import tqdm

    results = []
    bar = tqdm(inputs, desc="detect", unit="file", disable=args.quiet or None, file=sys.stderr)
    for p in bar:
        max_frames = int(round(args.max_seconds * det.preprocess.fps)) if args.max_seconds else None
        r = det.detect(p, max_frames=max_frames)
        results.append(r)
        if r.error:
            msg = f"{p}: error: {r.error}"
            enc = getattr(sys.stderr, "encoding", None) or "utf-8"
            tqdm.write(msg.encode(enc, "backslashreplace").decode(enc, "replace"), file=sys.stderr)
        if args.plot_dir and r.error is None:
            try:
                plot_timeline(r, os.path.join(args.plot_dir, plot_name(p)))
            except Exception as e:  # a plot failure must not lose the scores
                tqdm.write(f"{p}: could not write plot: {e}", file=sys.stderr)
    bar.close()

    if args.json_out:
        # Strict JSON (to_dict has no NaN/Inf; allow_nan=False guards it); ASCII escapes keep a file
        # name that is not valid UTF-8 representable.
        data = json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False).encode("ascii")
        _atomic_write_bytes(args.json_out, data)
    if args.csv_out:
        _atomic_write_bytes(args.csv_out, to_csv(results).encode("utf-8", "backslashreplace"))
    if args.av1m_cls or args.av1m_loc or args.lavdf_segments:
        from macbdf.metrics.submission import SubmissionError, write_submission_files

        try:
            write_submission_files(results, av1m_cls=args.av1m_cls, av1m_loc=args.av1m_loc,
                                   lavdf_segments=args.lavdf_segments, root=args.submission_root)
        except SubmissionError as e:
            print(f"macbdf detect: error: {e}", file=sys.stderr)
            return 1
    if not args.quiet:
        print_safe(format_table(results))
        print_safe(model_note(det.model_info, det.threshold))
    failed = sum(1 for r in results if r.error)
    if failed and not args.quiet:
        print(f"{failed} of {len(results)} files failed", file=sys.stderr)
    return 1 if failed else 0
