"""Receiving uploads safely: streamed multipart parsing with a byte limit, and content sniffing.

The body is parsed while it arrives (``python_multipart``'s streaming parser), so the size limit is
enforced on the bytes actually read (a lying or absent Content-Length changes nothing) and the file
goes straight to a server-made temporary file: the client's file name is only reported back, it
never becomes part of a path. The content is then identified by its magic bytes and probed with
PyAV; the extension is ignored.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator

# Multipart framing (boundaries, part headers) adds a little to the file's own bytes.
MULTIPART_SLACK = 64 * 1024
# Largest frame side accepted from an upload; larger is refused before decoding (memory bomb).
MAX_SIDE = 8192


class UploadRejected(Exception):
    """An upload that is refused; ``status`` is the HTTP status, ``str(e)`` the one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ReceivedUpload:
    filename: str     # client's name, sanitised, for display only
    size: int         # bytes of the file part


def display_name(raw: str | None) -> str:
    """The client's file name reduced to a harmless display string (basename, printable, <= 120 chars)."""
    if not raw:
        return "upload"
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if c.isprintable() and c not in "\r\n\t")
    return (clean.strip() or "upload")[:120]


async def receive_multipart_file(
    chunks: AsyncIterator[bytes],
    content_type: str,
    out_fd: int,
    *,
    max_bytes: int,
    field: str = "file",
    chunk_timeout_s: float = 60.0,
) -> ReceivedUpload:
    """Parse a multipart body from ``chunks`` and write the part named ``field`` to ``out_fd``.

    Raises `UploadRejected` (400 malformed / missing field, 413 too large, 408 too slow). The caller
    owns ``out_fd`` and the file behind it (and removes it on any failure).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRejected(400, f"expected a multipart/form-data upload with a '{field}' field")
    boundary = params[b"boundary"]

    state: dict[str, Any] = {
        "header_field": b"", "header_value": b"", "headers": {}, "in_file": False,
        "found": False, "filename": None, "size": 0, "too_big": False, "ended": False,
    }

    def on_part_begin() -> None:
        state["headers"] = {}
        state["in_file"] = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_field"].strip().lower()] = state["header_value"].strip()
        state["header_field"] = b""
        state["header_value"] = b""

    def on_headers_finished() -> None:
        disp = state["headers"].get(b"content-disposition", b"")
        _, p = parse_options_header(disp)
        name = p.get(b"name", b"").decode("utf-8", "replace")
        if name == field and not state["found"]:
            state["in_file"] = True
            state["found"] = True
            fn = p.get(b"filename")
            state["filename"] = fn.decode("utf-8", "replace") if fn is not None else None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state["in_file"]:
            return  # other form fields are ignored (their bytes still count towards the body limit)
        n = end - start
        state["size"] += n
        if state["size"] > max_bytes:
            state["too_big"] = True
            return
        view = memoryview(data)[start:end]
        while view:
            written = os.write(out_fd, view)
            view = view[written:]

    def on_part_end() -> None:
        state["in_file"] = False

    def on_end() -> None:
        state["ended"] = True   # the closing boundary ("--BOUNDARY--") was seen

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_end": on_end,
        },
    )
    limit_mb = max_bytes / (1024 * 1024)
    total = 0
    it = chunks.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(it.__anext__(), timeout=chunk_timeout_s)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise UploadRejected(408, f"upload stalled: no data for {chunk_timeout_s:.0f} s") from None
        if not chunk:
            continue
        total += len(chunk)
        if total > max_bytes + MULTIPART_SLACK:
            raise UploadRejected(413, f"upload larger than the limit of {limit_mb:.0f} MB")
        try:
            parser.write(chunk)
        except Exception as e:  # python_multipart raises its own parse errors
            raise UploadRejected(400, f"malformed multipart body: {' '.join(str(e).split())[:200]}") from None
        if state["too_big"]:
            raise UploadRejected(413, f"upload larger than the limit of {limit_mb:.0f} MB")
    try:
        parser.finalize()
    except Exception as e:
        raise UploadRejected(400, f"malformed multipart body: {' '.join(str(e).split())[:200]}") from None
    if not state["found"]:
        raise UploadRejected(400, f"no '{field}' field in the upload (send the video as multipart field '{field}')")
    if not state["ended"]:
        # A body cut off before its closing boundary holds part of a file: never score half a video.
        raise UploadRejected(400, "incomplete multipart body (no closing boundary): the upload was cut off")
    return ReceivedUpload(filename=display_name(state["filename"]), size=int(state["size"]))


def sniff_container(head: bytes) -> str | None:
    """Name of the container identified by the first bytes of a file, or None when not a video container.

    Example:
        >>> sniff_container(b"\\x00\\x00\\x00\\x18ftypmp42")
        'mp4'
        >>> sniff_container(b"hello world") is None
        True
    """
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4"  # ISO base media: mp4, mov, m4v, 3gp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # mkv, webm
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"  # wmv
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    return None


@dataclass
class Probe:
    container: str
    duration: float | None   # seconds, None when the container does not say
    width: int
    height: int
    has_audio: bool


def probe_media(path: str, *, max_duration_s: float | None) -> Probe:
    """Magic bytes, then a PyAV probe: a video stream with sane dimensions and an allowed duration.

    Raises `UploadRejected` (400 empty, 415 not a video container, 422 unreadable / no video stream /
    too long / huge dimensions).
    """
    import av

    size = os.path.getsize(path)
    if size == 0:
        raise UploadRejected(400, "the uploaded file is empty")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = sniff_container(head)
    if kind is None:
        raise UploadRejected(415, "not a video file (unrecognised content; mp4/mov, mkv/webm, avi, flv, ogg, "
                                  "wmv, mpeg-ps/ts are accepted)")
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as c:
            vs = [s for s in c.streams if s.type == "video"]
            if not vs:
                raise UploadRejected(422, f"no video stream in the {kind} file")
            v = vs[0]
            w = int(v.codec_context.width or 0)
            h = int(v.codec_context.height or 0)
            if w <= 0 or h <= 0:
                raise UploadRejected(422, "the video stream has no frame size (zero-length or corrupt)")
            if w > MAX_SIDE or h > MAX_SIDE:
                raise UploadRejected(422, f"video dimensions {w}x{h} exceed the limit of {MAX_SIDE} pixels")
            duration = None
            if c.duration is not None and c.duration > 0:
                duration = float(c.duration) / 1_000_000.0  # av.time_base = 1e6
            elif v.duration is not None and v.time_base is not None and v.duration > 0:
                duration = float(v.duration * v.time_base)
            has_audio = any(s.type == "audio" for s in c.streams)
    except UploadRejected:
        raise
    except Exception as e:  # av.error.InvalidDataError and friends
        raise UploadRejected(422, f"unreadable {kind} file: {' '.join(str(e).split())[:200]}") from None
    if max_duration_s is not None and duration is not None and duration > max_duration_s:
        raise UploadRejected(422, f"video is {duration:.0f} s long; the limit is {max_duration_s:.0f} s")
    return Probe(container=kind, duration=duration, width=w, height=h, has_audio=has_audio)
