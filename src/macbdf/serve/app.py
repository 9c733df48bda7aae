"""The FastAPI application of `macbdf serve`.

Endpoints:

* ``POST /v1/detect`` (multipart field ``file``): 200 with a detection result object (the same
  object as one element of ``macbdf detect --json``); 202 with a job (``job_id``, ``status``,
  ``url``) when the video is longer than ``sync_max_duration_s``, when ``?mode=job`` is given, or
  when the detection is not finished after ``sync_wait_s``; 4xx with a result object whose
  ``error`` (and ``detail``) says why for refused uploads; 503 + Retry-After when the queue is full.
* ``GET /v1/jobs/{job_id}``: ``{"job_id", "status": "queued"|"running"|"done", "result", ...}``.
* ``GET /healthz``: liveness, model, limits and queue state.
* ``GET /``: the single-page UI (``serve/static``); ``/openapi.json``: the OpenAPI schema.

Example:
    >>> from macbdf.detect import Detector                    # doctest: +SKIP
    >>> from macbdf.serve import ServeSettings, create_app     # doctest: +SKIP
    >>> app = create_app(Detector.from_pretrained("ckpt"), ServeSettings(max_upload_mb=50))  # doctest: +SKIP
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from macbdf.serve.jobs import JobManager, QueueFull
from macbdf.serve.upload import UploadRejected, probe_media, receive_multipart_file

STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass
class ServeSettings:
    """Limits and behaviour of the service (all have safe defaults)."""

    max_upload_mb: float = 200.0        # bytes counted while reading the body
    max_duration_s: float = 600.0       # longer videos are refused; unknown durations are cut here
    concurrency: int = 1                # detections running at once
    max_queue: int = 64                 # detections waiting; beyond this: 503
    sync_max_duration_s: float = 60.0   # longer videos go to a job (202) right away
    sync_wait_s: float = 120.0          # a synchronous request waits this long, then gets a job (202)
    job_timeout_s: float = 600.0        # a detection gives up after this long (error "detection timed out")
    upload_chunk_timeout_s: float = 60.0  # an upload that sends nothing for this long is dropped (408)
    job_ttl_s: float = 3600.0           # finished jobs stay fetchable this long
    tmp_dir: str | None = None          # where uploads are stored while scored (default: a fresh temp dir)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- response schemas (OpenAPI)
class Segment(BaseModel):
    start: float
    end: float
    modality: Literal["audio", "video", "both"]
    score: float


class DetectionResultModel(BaseModel):
    path: str = Field(description="the uploaded file's name (display only)")
    p_fake: float | None = Field(None, description="probability that the video is fake (either modality)")
    p_audio_fake: float | None = None
    p_video_fake: float | None = None
    verdict: Literal["fake", "real", "abstain"] | None = Field(
        None, description="null only when `error` is set; `abstain`: no track could be judged (see abstain_reason)")
    threshold: float = 0.5
    frame_scores: dict[str, Any] = Field(default_factory=dict, description='{"audio": [...], "video": [...], "fps": f}')
    segments: list[Segment] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    error: str | None = Field(None, description="null, or a one-line reason")
    timings: dict[str, float] = Field(default_factory=dict)
    duration: float | None = None
    abstain_reason: str | None = Field(None, description="why the verdict is `abstain`: too_short, no_face, "
                                       "video_too_small, non_finite_input, non_finite_output, nothing_decodable")


class ErrorModel(DetectionResultModel):
    detail: str


class JobModel(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done"]
    filename: str
    created: float
    started: float | None = None
    finished: float | None = None
    result: DetectionResultModel | None = None
    url: str | None = None


def _error(status: int, message: str, filename: str = "upload", headers: dict[str, str] | None = None,
           threshold: float = 0.5) -> JSONResponse:
    """Error answers are result objects too (``error`` set), plus the conventional ``detail``."""
    from macbdf.detect import DetectionResult

    body = DetectionResult(path=filename, error=message, threshold=threshold).to_dict()
    body["detail"] = message
    return JSONResponse(body, status_code=status, headers=headers)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary",
                                            "description": "the video (any container FFmpeg reads)"}},
                }
            }
        },
    }
}


def create_app(detector: Any, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app around a `macbdf.detect.Detector` (shared by the worker threads)."""
    from macbdf import __version__

    settings = settings or ServeSettings()
    max_bytes = int(settings.max_upload_mb * 1024 * 1024)
    fps = float(detector.preprocess.fps)
    own_tmp = settings.tmp_dir is None
    tmp_dir = settings.tmp_dir or tempfile.mkdtemp(prefix="macbdf-serve-")
    os.makedirs(tmp_dir, exist_ok=True)

    def error(status: int, message: str, filename: str = "upload", headers: dict[str, str] | None = None) -> JSONResponse:
        return _error(status, message, filename, headers, threshold=detector.threshold)

    def detect_fn(path: str, filename: str, max_frames: int | None) -> dict[str, Any]:
        r = detector.detect(path, max_frames=max_frames, timeout_s=settings.job_timeout_s, display_path=filename)
        d = r.to_dict()
        if d.get("error"):   # also for jobs fetched later: no server path in what the client sees
            for secret in (path, os.path.basename(path), tmp_dir):
                d["error"] = d["error"].replace(secret, filename)
        return d

    jobs = JobManager(detect_fn, concurrency=settings.concurrency, max_queue=settings.max_queue,
                      ttl_s=settings.job_ttl_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await jobs.shutdown()
            if own_tmp:
                shutil.rmtree(tmp_dir, ignore_errors=True)

    app = FastAPI(
        title="macbdf",
        version=__version__,
        description="MACB-DF audio-visual deepfake detection. Upload a video to `POST /v1/detect`; "
        "the answer says whether it is fake, where, and in which modality.",
        lifespan=lifespan,
        # The interactive docs pages load their scripts from a CDN; the service stays offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.jobs = jobs
    app.state.tmp_dir = tmp_dir

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
            "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        )
        return response

    @app.get("/healthz", summary="liveness, model and limits")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": getattr(detector.model.config, "name", None),
            "device": str(detector.device),
            "threshold": detector.threshold,
            "model_card": getattr(detector, "model_info", None),
            "num_frames": detector.num_frames,
            "fps": fps,
            "limits": {
                "max_upload_mb": settings.max_upload_mb,
                "max_duration_s": settings.max_duration_s,
                "sync_max_duration_s": settings.sync_max_duration_s,
                "job_timeout_s": settings.job_timeout_s,
            },
            "jobs": jobs.counts(),
        }

    @app.post(
        "/v1/detect",
        summary="score an uploaded video",
        response_model=DetectionResultModel,
        responses={
            202: {"model": JobModel, "description": "long video: a job was queued; poll its url"},
            400: {"model": ErrorModel, "description": "malformed upload, missing field or empty file"},
            408: {"model": ErrorModel, "description": "upload stalled"},
            413: {"model": ErrorModel, "description": "upload larger than max_upload_mb"},
            415: {"model": ErrorModel, "description": "not a video file (content sniffing)"},
            422: {"model": ErrorModel, "description": "unreadable media, no video stream, too long, decoding failed, "
                                                     "or the detection timed out"},
            503: {"model": ErrorModel, "description": "queue full; retry after Retry-After seconds"},
        },
        openapi_extra=_UPLOAD_BODY,
    )
    async def detect(
        request: Request,
        mode: Literal["auto", "job"] = Query("auto", description="`job`: always answer 202 with a job id"),
    ) -> Any:
        # Refuse early what cannot fit (the real limit is enforced while reading, below).
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
            return error(413, f"upload larger than the limit of {settings.max_upload_mb:.0f} MB")
        if jobs.active() >= jobs.concurrency + jobs.max_queue:
            return error(503, "server busy: the detection queue is full; retry in a few seconds",
                          headers={"Retry-After": "5"})
        # Server-made name in the server's folder; nothing the client sends becomes part of a path.
        fd, temp_path = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".bin")
        handed_over = False
        filename = "upload"

        def scrub(message: str) -> str:
            # FFmpeg/PyAV errors can quote the file they read: never show the server's temp path.
            for secret in (temp_path, os.path.basename(temp_path), tmp_dir):
                message = message.replace(secret, filename)
            return message

        try:
            try:
                try:
                    up = await receive_multipart_file(
                        request.stream(), request.headers.get("content-type", ""), fd,
                        max_bytes=max_bytes, chunk_timeout_s=settings.upload_chunk_timeout_s,
                    )
                finally:
                    os.close(fd)
                filename = up.filename
                # PyAV probing reads the file: keep it off the event loop.
                probe = await asyncio.to_thread(probe_media, temp_path, max_duration_s=settings.max_duration_s)
            except UploadRejected as e:
                return error(e.status, scrub(str(e)), filename)
            except ClientDisconnect:
                return error(400, "client disconnected during the upload", filename)
            # Unknown duration (some streams do not say): stop after max_duration_s of frames.
            max_frames = int(math.ceil(settings.max_duration_s * fps))
            try:
                job = jobs.submit(temp_path, filename, max_frames)
            except QueueFull as e:
                return error(503, str(e), filename, headers={"Retry-After": "5"})
            handed_over = True
        finally:
            if not handed_over:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp_path)

        async_job = mode == "job" or (probe.duration is not None and probe.duration > settings.sync_max_duration_s)
        if not async_job:
            assert job.task is not None
            try:
                await asyncio.wait_for(asyncio.shield(job.task), timeout=settings.sync_wait_s)
            except asyncio.TimeoutError:
                async_job = True
        if async_job:
            body = job.public()
            body["url"] = f"/v1/jobs/{job.id}"
            return JSONResponse(body, status_code=202, headers={"Location": body["url"]})
        jobs.forget(job.id)
        if not job.result:
            return error(500, "internal error: no result", filename)
        result = job.result
        if result.get("error"):
            body = dict(result)
            body["error"] = body["detail"] = scrub(str(result["error"]))
            internal = str(result["error"]).startswith("internal error")
            return JSONResponse(body, status_code=500 if internal else 422)
        return JSONResponse(result)

    @app.get(
        "/v1/jobs/{job_id}",
        summary="state and result of a detection job",
        response_model=JobModel,
        responses={404: {"description": "unknown or expired job id"}},
    )
    async def get_job(job_id: str) -> Any:
        job = jobs.get(job_id)
        if job is None:
            return JSONResponse({"detail": "unknown or expired job id"}, status_code=404)
        body = job.public()
        body["url"] = f"/v1/jobs/{job.id}"
        return JSONResponse(body)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
