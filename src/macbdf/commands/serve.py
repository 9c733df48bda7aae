"""Run the detection web service and its browser page (FastAPI + uvicorn).

Open http://HOST:PORT/ in a browser: drop a video (or pick one), watch the upload progress, and
get the verdict, the audio and video fake probabilities, and a timeline of per-frame scores with
the detected fake segments shaded; the video plays beside it with a cursor following playback.

HTTP API (schema at /openapi.json):
  POST /v1/detect          multipart field `file`; answers one result object, the same as one
                           element of `macbdf detect --json` (path, p_fake, p_audio_fake,
                           p_video_fake, verdict, frame_scores, segments, flags, error, ...).
                           Videos longer than --sync-max-duration-s (or `?mode=job`) answer
                           202 with a job id instead; refused uploads answer 4xx with `error` set.
  GET  /v1/jobs/{id}       job state (queued, running, done) and its result
  GET  /healthz            liveness, model, limits, queue

Limits: uploads are counted while they are read (--max-upload-mb, 413 beyond), identified by their
content (magic bytes + a PyAV probe; the extension is ignored), refused when longer than
--max-duration-s, scored by at most --concurrency workers with --queue more waiting (503 with
Retry-After when full), and given up after --timeout-s. Uploads are written to server-made
temporary names and always removed. There is no authentication: keep the default loopback host,
or put the service behind a proxy that authenticates.

Example:
  macbdf serve --checkpoint runs/demo/checkpoint --host 127.0.0.1 --port 8000
  curl -F file=@clip.mp4 http://127.0.0.1:8000/v1/detect
"""
from __future__ import annotations

import argparse
import ipaddress
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="checkpoint directory (model.safetensors + config.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold (default: the checkpoint's calibrated threshold)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload in MB (default 200)")
    parser.add_argument("--max-duration-s", type=float, default=600.0,
                        help="longest video in seconds (default 600)")
    parser.add_argument("--concurrency", type=int, default=1, help="detections running at once (default 1)")
    parser.add_argument("--queue", type=int, default=64,
                        help="detections waiting beyond --concurrency before 503 busy (default 64)")
    parser.add_argument("--sync-max-duration-s", type=float, default=60.0,
                        help="videos longer than this are answered with a job id (202) (default 60)")
    parser.add_argument("--timeout-s", type=float, default=600.0,
                        help="a detection gives up after this many seconds (default 600)")
    parser.add_argument("--tmp-dir", default=None, metavar="DIR",
                        help="folder for uploads while they are scored (server-made names, always removed; "
                             "default: a private temporary folder removed at exit)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def _usage(msg: str) -> int:
    print(f"macbdf serve: error: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.checkpoint).is_dir():
        return _usage(f"checkpoint directory not found: {args.checkpoint}")
    if not 0 <= args.port <= 65535:
        return _usage(f"--port must be in 0..65535, got {args.port}")
    for name in ("max_upload_mb", "max_duration_s", "sync_max_duration_s", "timeout_s"):
        if getattr(args, name) <= 0:
            return _usage(f"--{name.replace('_', '-')} must be > 0")
    if args.concurrency < 1 or args.queue < 0:
        return _usage("--concurrency must be >= 1 and --queue >= 0")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        return _usage(f"--threshold must be in [0, 1], got {args.threshold}")

    from macbdf.detect import Detector

    try:
        det = Detector.from_pretrained(args.checkpoint, device=args.device, threshold=args.threshold)
    except Exception as e:
        return _usage(f"cannot load checkpoint {args.checkpoint}: {' '.join(str(e).split())}")

    import uvicorn

    from macbdf.serve import ServeSettings, create_app

    settings = ServeSettings(
        max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration_s, concurrency=args.concurrency,
        max_queue=args.queue, sync_max_duration_s=args.sync_max_duration_s, job_timeout_s=args.timeout_s,
        tmp_dir=args.tmp_dir,
    )
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"warning: binding to {args.host}: the service has no authentication", file=sys.stderr)
    app = create_app(det, settings)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_keep_alive=5, access_log=args.log_level == "debug")
    server = uvicorn.Server(config)
    try:
        server.run()
    except OSError as e:  # port in use, permission denied
        return _usage(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    return 0 if server.started else 1
