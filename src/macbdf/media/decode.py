"""Decoding with PyAV (bundled FFmpeg): any container/codec FFmpeg reads.

Why one file of ~720 lines: one job, decoding, for both tracks (streamed video frames with their
timestamps and rotation, resampled audio), with the hostile-input guards (deadlines, corrupt packets,
non-finite samples) next to the code they guard.

Video is *streamed*: :func:`iter_video_frames` yields one :class:`DecodedFrame` per target time
``k / fps`` (the nearest previous source frame, by presentation timestamps), and never converts a
whole full-resolution frame to RGB. A frame hands out only what the pipeline needs: a small grey (or
BGR) image for the face detector, and RGB crops cut straight from its YUV planes. Rotation
metadata (display matrix side data, or the old ``rotate`` tag) is honoured: everything a frame
hands out is in *display* orientation.

Audio is decoded and resampled by ``av.AudioResampler`` to mono float32 at the target rate, aligned
so that sample 0 is the time of the first video frame (:class:`AudioReader` streams it; 
:func:`decode_audio` reads it whole).

Example:
    >>> from macbdf.media.decode import probe, iter_video_frames   # doctest: +SKIP
    >>> info = probe("clip.mp4"); info.width, info.height, info.rotation      # doctest: +SKIP
    (1080, 1920, 90)
    >>> for k, frame in iter_video_frames("clip.mp4", fps=25.0):              # doctest: +SKIP
    ...     grey = frame.gray(320)                 # (h, w) uint8, longer side 320, display orientation
    ...     face = frame.crop((100, 80, 300, 280), 96)   # (96, 96, 3) uint8 RGB
"""
from __future__ import annotations

import errno
import functools
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, TypeVar

import cv2
import numpy as np

import av

# Larger frames are almost always corrupt headers or non-video payloads; refusing them keeps a
# worker's memory bounded (a 16k x 16k yuv420p frame alone is 400 MB).
MAX_SIDE = 8192
# Planar 8-bit YUV formats whose planes we crop directly: name -> (chroma x/y subsampling, full range).
_PLANAR_YUV = {
    "yuv420p": ((2, 2), False), "yuvj420p": ((2, 2), True),
    "yuv422p": ((2, 1), False), "yuvj422p": ((2, 1), True),
    "yuv444p": ((1, 1), False), "yuvj444p": ((1, 1), True),
    "yuv440p": ((1, 2), False), "yuvj440p": ((1, 2), True),
}
# YUV -> RGB coefficients (Kr_v, Kg_u, Kg_v, Kb_u) by FFmpeg colorspace id; BT.601 otherwise.
_BT601 = (1.402, 0.344136, 0.714136, 1.772)
_YUV_COEFFS = {1: (1.5748, 0.187324, 0.468124, 1.8556),       # BT.709
               9: (1.4746, 0.164553, 0.571353, 1.8814),       # BT.2020 (non-constant luminance)
               10: (1.4746, 0.164553, 0.571353, 1.8814)}

# Float PCM beyond this magnitude is not sound (normal audio is within +-1): a hostile or broken
# file; together with NaN/Inf it would overflow the log-mel power to inf.
AUDIO_MAX_ABS = 1e3


class MediaError(Exception):
    """A file that cannot be prepared; ``str(e)`` is a one-line reason."""


class NothingDecodable(MediaError):
    """A media file with a video stream of which not one frame could be decoded."""


class MediaTimeout(MediaError):
    """The caller's deadline (``time.monotonic()``) passed while decoding."""


def check_deadline(deadline: float | None) -> None:
    """Raise `MediaTimeout` when ``deadline`` (a ``time.monotonic()`` value) has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise MediaTimeout("detection timed out")


def _packets_decoded(container: Any, stream: Any, stats: dict[str, Any]) -> Iterator[Any]:
    """Frames of ``stream``, decoded packet by packet: a corrupt packet is skipped (counted in
    ``stats["skipped_packets"]``, its error in ``stats["decode_error"]``) and decoding goes on with the
    next one, so one bad packet costs its own frames, not the rest of the file. An error of the
    demuxer itself (a broken container) ends the stream with ``stats["truncated"] = True``."""
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            stats.update(truncated=True, decode_error=_short(e))
            return
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError) as e:
            stats["skipped_packets"] = int(stats.get("skipped_packets", 0)) + 1
            stats["decode_error"] = _short(e)
            continue
        yield from frames


@dataclass
class MediaInfo:
    """What :func:`probe` learns from a file's headers (no full decode)."""

    path: str
    width: int                  # display width (after rotation)
    height: int                 # display height
    coded_width: int
    coded_height: int
    rotation: int               # clockwise degrees applied for display: 0, 90, 180 or 270
    src_fps: float | None
    duration: float | None      # seconds, from the container/stream headers
    video_codec: str
    pix_fmt: str | None
    has_audio: bool
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(e: BaseException) -> str:
    """One line, no traceback: FFmpeg errors carry the file name; drop it, keep the reason."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, av.error.FFmpegError) and getattr(e, "strerror", None):
        msg = e.strerror
    return msg[:200]


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:   # Path.exists() says False for a loop: name it for what it is
            raise MediaError(f"symbolic link loop: {p}") from None
        raise MediaError(f"file not found: {p}") from None
    if p.is_dir():
        raise MediaError(f"is a directory, not a media file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        return av.open(str(p), metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaError("not a media file, or truncated (FFmpeg found no valid container)") from None
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open: {_short(e)}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise MediaError(f"cannot open: {_short(e)}") from None


def _rotation_cw(stream: Any, first_frame: av.VideoFrame | None = None) -> int:
    """Clockwise display rotation in {0, 90, 180, 270}.

    FFmpeg's display matrix angle (``VideoFrame.rotation``) is counter-clockwise; the legacy
    ``rotate`` tag is clockwise. Both are rounded to a multiple of 90 (other angles do not occur in
    practice and would need resampling, not a transpose).
    """
    deg = None
    if first_frame is not None:
        try:
            r = first_frame.rotation
            if r:
                deg = -float(r)
        except (AttributeError, ValueError):
            pass
    if deg is None:
        tag = (stream.metadata or {}).get("rotate")
        if tag:
            try:
                deg = float(tag)
            except ValueError:
                deg = None
    if deg is None:
        return 0
    return int(round(deg / 90.0)) % 4 * 90


def _checked_video_stream(container: Any, *, require_dims: bool) -> tuple[Any, int, int]:
    """The first video stream and its coded size; MediaError for none, no size (if required) or too large."""
    if not container.streams.video:
        raise MediaError("no video stream (audio-only or data file)")
    vs = container.streams.video[0]
    cw, ch = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
    if require_dims and (cw <= 0 or ch <= 0):
        raise MediaError("video stream has no dimensions (corrupt header)")
    if max(cw, ch) > MAX_SIDE:
        raise MediaError(f"video too large: {cw}x{ch} (max {MAX_SIDE} px per side)")
    return vs, cw, ch


def _header_duration(container: Any, vs: Any) -> float | None:
    """Duration in seconds from the stream header, else the container's; None when neither says."""
    if vs.duration is not None and vs.time_base is not None:
        return float(vs.duration * vs.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return None


def probe(path: str | os.PathLike) -> MediaInfo:
    """Read headers (and the first video frame, for its rotation) of a media file.

    Raises:
        MediaError: missing/empty/non-media file, no video stream, absurd dimensions.
    """
    container = _open(path)
    try:
        vs, cw, ch = _checked_video_stream(container, require_dims=True)
        first = None
        try:
            for first in container.decode(vs):
                break
        except av.error.FFmpegError:
            first = None
        rot = _rotation_cw(vs, first)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        src_fps = float(rate) if rate else None
        duration = _header_duration(container, vs)
        a = container.streams.audio[0] if container.streams.audio else None
        w, h = (ch, cw) if rot in (90, 270) else (cw, ch)
        return MediaInfo(
            path=str(path), width=w, height=h, coded_width=cw, coded_height=ch, rotation=rot,
            src_fps=src_fps, duration=duration, video_codec=vs.codec_context.name,
            pix_fmt=vs.codec_context.pix_fmt, has_audio=a is not None,
            audio_codec=a.codec_context.name if a is not None else None,
            audio_rate=int(a.codec_context.sample_rate or 0) if a is not None else None,
            audio_channels=int(a.codec_context.channels or 0) if a is not None else None,
        )
    finally:
        container.close()


class DecodedFrame:
    """One decoded source frame, held without converting it whole to RGB.

    All coordinates are in *display* orientation (rotation applied) and full source resolution.
    """

    __slots__ = ("_frame", "rotation", "width", "height", "_cw", "_ch", "_planes", "_gray_cache", "time",
                 "_sub", "_full_range", "_matrix", "shrink", "_align")

    def __init__(self, frame: av.VideoFrame, rotation: int, time: float, *, shrink: int = 1):
        self.rotation = rotation
        self.time = time
        fmt = frame.format.name
        colorspace = int(frame.colorspace or 0)
        full = fmt in _PLANAR_YUV and (_PLANAR_YUV[fmt][1] or frame.color_range == 2)   # AVCOL_RANGE_JPEG
        if shrink > 1:
            # A frame far larger than anything cut from it: FFmpeg's scaler averages shrink x shrink
            # blocks (area filter) before the frame is held anywhere, so the full-size picture is
            # freed at once. Coordinates are then those of the smaller frame. Its chroma is kept at
            # full resolution (4:4:4), so crops align to single pixels of the smaller frame instead
            # of pairs (a 2-pixel step there would be a 2 * shrink-pixel step of the source).
            w, h = max(2, frame.width // shrink // 2 * 2), max(2, frame.height // shrink // 2 * 2)
            frame = frame.reformat(width=w, height=h, format="yuvj444p" if full else "yuv444p",
                                   interpolation="AREA")
            fmt = frame.format.name
        self.shrink = shrink
        # crop rectangles snap to this many pixels (chroma lines up with luma)
        self._cw, self._ch = frame.width, frame.height
        self.width, self.height = (self._ch, self._cw) if rotation in (90, 270) else (self._cw, self._ch)
        if fmt in _PLANAR_YUV:
            self._frame = frame
            self._sub = _PLANAR_YUV[fmt][0]
            self._full_range = full
        else:
            # Other layouts (10-bit, semi-planar, RGB codecs, ...): one swscale pass to 8-bit
            # limited-range 4:2:0 so the plane-cropping path below applies.
            self._frame = frame.reformat(format="yuv420p")
            self._sub, self._full_range = (2, 2), False
        self._align = 1 if shrink > 1 and self._sub == (1, 1) else 2
        self._matrix = _yuv_to_rgb_matrix(self._full_range, _YUV_COEFFS.get(colorspace, _BT601))
        self._planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._gray_cache: dict[int, np.ndarray] = {}

    def _yuv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._planes is None:
            out = []
            for i, p in enumerate(self._frame.planes):
                # Views into FFmpeg's buffers (no copy); line_size may exceed the visible width.
                arr = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)
                out.append(arr[: p.height, : p.width])
            self._planes = (out[0], out[1], out[2])
        return self._planes

    def _rotate(self, img: np.ndarray) -> np.ndarray:
        if self.rotation == 0:
            return img
        k = {90: -1, 180: 2, 270: 1}[self.rotation]   # np.rot90 turns counter-clockwise for k > 0
        return np.ascontiguousarray(np.rot90(img, k))

    def scaled_size(self, max_side: int) -> tuple[int, int, float]:
        """(w, h, scale) of the display frame downscaled so its longer side is at most max_side."""
        s = min(1.0, max_side / max(self.width, self.height))
        return max(1, int(round(self.width * s))), max(1, int(round(self.height * s))), s

    def gray(self, max_side: int) -> np.ndarray:
        """Luma (Y plane) downscaled to longer side <= max_side, display orientation; uint8 (h, w)."""
        if max_side in self._gray_cache:
            return self._gray_cache[max_side]
        y = self._yuv()[0]
        s = min(1.0, max_side / max(self._cw, self._ch))
        if s < 1.0:
            y = cv2.resize(y, (max(1, round(self._cw * s)), max(1, round(self._ch * s))), interpolation=cv2.INTER_AREA)
        else:
            y = np.ascontiguousarray(y)
        g = self._rotate(y)
        self._gray_cache[max_side] = g
        return g

    def bgr(self, max_side: int) -> np.ndarray:
        """Colour image downscaled to longer side <= max_side, display orientation; uint8 (h, w, 3) BGR."""
        w, h, _ = self.scaled_size(max_side)
        cw, ch = (h, w) if self.rotation in (90, 270) else (w, h)
        img = self._frame.reformat(width=cw, height=ch, format="bgr24").to_ndarray()
        return self._rotate(img)

    def _coded_rect(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """Display box (x0, y0, x1, y1) -> even-aligned coded-frame rect (may extend past the frame)."""
        x0, y0, x1, y1 = box
        W, H = self._cw, self._ch
        # Display box -> coded (unrotated) box; see _rotate for the direction of each case.
        if self.rotation == 90:
            x0, x1, y0, y1 = y0, y1, H - x1, H - x0
        elif self.rotation == 180:
            x0, x1, y0, y1 = W - x1, W - x0, H - y1, H - y0
        elif self.rotation == 270:
            x0, x1, y0, y1 = W - y1, W - y0, x0, x1
        # Even coordinates so chroma (half resolution) lines up with luma (single pixels for the
        # 4:4:4 planes of a frame shrunk at decode).
        a = self._align
        ix0, iy0 = int(math.floor(x0 / a)) * a, int(math.floor(y0 / a)) * a
        ix1, iy1 = int(math.ceil(x1 / a)) * a, int(math.ceil(y1 / a)) * a
        return ix0, iy0, max(ix1, ix0 + a), max(iy1, iy0 + a)

    def crop(self, box: tuple[float, float, float, float], size: int) -> np.ndarray:
        """RGB crop of display box (x0, y0, x1, y1), resized to (size, size, 3) uint8.

        Parts of the box outside the frame are black. Only the box region is colour-converted.
        """
        W, H = self._cw, self._ch
        ix0, iy0, ix1, iy1 = self._coded_rect(box)
        cx0, cy0 = max(ix0, 0), max(iy0, 0)
        cx1, cy1 = min(ix1, W - W % self._align), min(iy1, H - H % self._align)
        out_w, out_h = ix1 - ix0, iy1 - iy0
        sx, sy = self._sub
        black_y, black_c = (0, 128) if self._full_range else (16, 128)
        if cx1 <= cx0 or cy1 <= cy0:
            # Box entirely outside the frame: black.
            yc = np.full((out_h, out_w), black_y, np.uint8)
            uc = vc = np.full((max(1, out_h // sy), max(1, out_w // sx)), black_c, np.uint8)
        else:
            yp, up, vp = self._yuv()
            yc = yp[cy0:cy1, cx0:cx1]
            uc = up[cy0 // sy: cy1 // sy, cx0 // sx: cx1 // sx]
            vc = vp[cy0 // sy: cy1 // sy, cx0 // sx: cx1 // sx]
            if (cx0, cy0, cx1, cy1) != (ix0, iy0, ix1, iy1):
                t, b, l, r = cy0 - iy0, iy1 - cy1, cx0 - ix0, ix1 - cx1
                yc = cv2.copyMakeBorder(yc, t, b, l, r, cv2.BORDER_CONSTANT, value=black_y)
                uc = cv2.copyMakeBorder(uc, t // sy, b // sy, l // sx, r // sx, cv2.BORDER_CONSTANT, value=black_c)
                vc = cv2.copyMakeBorder(vc, t // sy, b // sy, l // sx, r // sx, cv2.BORDER_CONSTANT, value=black_c)
        # Resize the planes to the output size *before* the colour conversion: the crop is
        # usually several times larger than the output, so only size^2 pixels are converted.
        rgb = _yuv_to_rgb(fit_square(yc, size), fit_square(uc, size), fit_square(vc, size), self._matrix)
        return self._rotate(rgb)

    def gray_region(self, box: tuple[float, float, float, float], out_side: int) -> tuple[np.ndarray, float, float, float]:
        """Luma of the display box clipped to the frame, scaled so its longer side is ``out_side``.

        Returns ``(image, scale, x0, y0)``: display pixel = image pixel / scale + (x0, y0).
        """
        x0, y0, x1, y1 = box
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(self.width), x1), min(float(self.height), y1)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return np.zeros((0, 0), np.uint8), 1.0, x0, y0
        ix0, iy0, ix1, iy1 = self._coded_rect((x0, y0, x1, y1))
        ix1, iy1 = min(ix1, self._cw), min(iy1, self._ch)
        g = self._rotate(self._yuv()[0][iy0:iy1, ix0:ix1])
        # Display origin of the (even-aligned) region actually cut.
        dx0, dy0, _, _ = self._display_rect(ix0, iy0, ix1, iy1)
        s = out_side / max(g.shape)
        if s < 1.0:
            g = cv2.resize(g, (max(1, round(g.shape[1] * s)), max(1, round(g.shape[0] * s))), interpolation=cv2.INTER_AREA)
            s = g.shape[1] / (ix1 - ix0 if self.rotation in (0, 180) else iy1 - iy0)
        else:
            g, s = np.ascontiguousarray(g), 1.0
        return g, s, dx0, dy0

    def _display_rect(self, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
        """Coded rect -> display rect (inverse of the mapping in _coded_rect)."""
        W, H = self._cw, self._ch
        if self.rotation == 90:
            return H - y1, x0, H - y0, x1
        if self.rotation == 180:
            return W - x1, H - y1, W - x0, H - y0
        if self.rotation == 270:
            return y0, W - x1, y1, W - x0
        return x0, y0, x1, y1

    def mean_luma(self, max_side: int = 160) -> float:
        return float(self.gray(max_side).mean())


def fit_square(p: np.ndarray, size: int) -> np.ndarray:
    """One plane (h, w) resized to (size, size): area averaging when it shrinks, bilinear when it grows.

    A crop at least twice the output is first box-averaged by an integer factor k (2 below 4x the output,
    else half the ratio; OpenCV's fast integer path; h % k rows and w % k columns, under 1 % of the crop,
    are left out, split between both sides), then area-resized the rest of the way. OpenCV's area resize at a non-integer
    ratio costs about 6 ns per source pixel (0.4 ms per plane for a 300-px crop); the two steps take about
    half. They differ from one step by rounding and by the weights at block edges: 0.64 grey levels (RGB,
    mean absolute; 1.1 at most per clip) over the 14 shared clips' crops; exact at ratio 2, within one
    level at other even ratios (tests/media/test_crop_resize.py).
    """
    h, w = p.shape[:2]
    # k = 2 up to 4x the output, then half the ratio: the area step keeps >= 2 blocks per output pixel,
    # so the blocks' coarse edges weigh little (k = the whole ratio put 6 grey levels on a 1000-px crop)
    k = 2 if min(h, w) < 4 * size else min(h, w) // (2 * size)
    if min(h, w) >= 2 * size:
        t, l = (h % k) // 2, (w % k) // 2
        h2, w2 = h - h % k, w - w % k
        p = cv2.resize(p[t:t + h2, l:l + w2], (w2 // k, h2 // k), interpolation=cv2.INTER_AREA)
        h, w = p.shape[:2]
    interp = cv2.INTER_AREA if h > size or w > size else cv2.INTER_LINEAR
    return cv2.resize(p, (size, size), interpolation=interp)


@functools.lru_cache(maxsize=32)
def _yuv_to_rgb_matrix(full_range: bool, coeffs: tuple[float, float, float, float]) -> np.ndarray:
    """3x4 affine map (Y, U, V, 1) -> (R, G, B) for cv2.transform, range scaling folded in."""
    a, c, y0 = (1.0, 1.0, 0.0) if full_range else (255.0 / 219.0, 255.0 / 224.0, 16.0)
    kr_v, kg_u, kg_v, kb_u = coeffs
    rows = [[a, 0.0, kr_v * c], [a, -kg_u * c, -kg_v * c], [a, kb_u * c, 0.0]]
    m = np.zeros((3, 4), np.float32)
    for i, (wy, wu, wv) in enumerate(rows):
        m[i] = [wy, wu, wv, -wy * y0 - 128.0 * (wu + wv)]
    return m


def _yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Equal-size Y, U, V planes (uint8) -> RGB uint8 (h, w, 3); one saturating C pass."""
    return cv2.transform(cv2.merge([y, u, v]), matrix)


_T = TypeVar("_T")


def read_ahead(it: Iterator[_T], depth: int = 8, stats: dict[str, float] | None = None) -> Iterator[_T]:
    """Run iterator ``it`` in a background thread, at most ``depth`` items ahead of the consumer.

    PyAV releases the GIL while demuxing and decoding, so the next frames are decoded while the
    caller runs face detection and crops (on 2 cores this hides most of the decode time); the
    detector prepares its next windows while the model runs. The iterator is closed in its own
    thread when the consumer stops early (after the item it is producing); exceptions are re-raised
    in the consumer. ``stats["busy_s"]`` (when given) adds up the producer's working time.

    Example:
        >>> st = {}
        >>> list(read_ahead(iter(range(5)), depth=2, stats=st)), st["busy_s"] >= 0
        ([0, 1, 2, 3, 4], True)
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(msg: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    if stats is not None:
        stats.setdefault("busy_s", 0.0)

    def produce() -> None:
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    if stats is not None:
                        stats["busy_s"] += time.perf_counter() - t0
                if not put(("item", item)):
                    break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread
            put(("error", e))
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        put(("end", None))

    worker = threading.Thread(target=produce, name="macbdf-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, val = q.get()
            if kind == "item":
                yield val
            elif kind == "error":
                raise val
            else:
                return
    finally:
        stop.set()
        worker.join()


def _video_threads() -> int:
    # Frame threads per decoder; prepare workers set MACBDF_DECODE_THREADS so N workers share the cores.
    env = os.environ.get("MACBDF_DECODE_THREADS")
    return int(env) if env and env.isdigit() else 0


def decode_shrink(width: int, height: int, max_side: int | None) -> int:
    """Integer factor by which a ``width`` x ``height`` frame is shrunk at decode (1 = kept as it is).

    Frames whose longer side exceeds ``max_side`` are shrunk by the smallest integer factor that
    brings them to at most ``max_side / 2`` (an integer factor keeps the area filter a plain block
    mean). Example:

        >>> decode_shrink(8192, 8192, 4096), decode_shrink(7680, 4320, 4096), decode_shrink(3840, 2160, 4096)
        (4, 4, 1)
    """
    side = max(int(width), int(height))
    if not max_side or side <= max_side:
        return 1
    return -(-side // (max_side // 2))


def iter_video_frames(path: str | os.PathLike, fps: float, *, max_frames: int | None = None,
                      stats: dict[str, Any] | None = None, deadline: float | None = None,
                      max_side: int | None = None) -> Iterator[tuple[int, DecodedFrame]]:
    """Yield ``(k, frame)`` for target times ``k / fps`` (k = 0, 1, ...), streaming.

    Each target takes the latest source frame whose timestamp is <= the target time (relative to
    the first frame), so 30 -> 25 fps drops frames and 22 -> 25 fps repeats them; the same
    :class:`DecodedFrame` object is yielded again for a repeat. The clip ends at the last frame's
    timestamp plus one source frame duration. Memory: O(1) frames.

    ``stats`` (optional dict) receives ``rotation``, ``src_frames``, ``src_fps``, ``width``,
    ``height``, ``truncated`` (+ ``decode_error``), ``skipped_packets`` (corrupt packets skipped)
    while/after iterating. ``deadline`` (``time.monotonic()``) is checked before every source frame.

    ``max_side``: frames with a longer side above it are shrunk at decode by the integer factor of
    :func:`decode_shrink` (FFmpeg's area scaler, before anything holds the full-size frame; the
    decoder then uses slice instead of frame threads, which would each hold full-size frames), and
    the frames yielded have the smaller size (``stats["decode_shrink"]``; ``width`` / ``height`` in
    ``stats`` stay the source's).

    Raises:
        MediaError: unreadable file, no video stream, absurd dimensions; `NothingDecodable` when
            no frame decodes; `MediaTimeout` past ``deadline``.
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    stats = {} if stats is None else stats
    container = _open(path)
    try:
        vs, cw, ch = _checked_video_stream(container, require_dims=False)
        # Frame threads each hold their own full-size frames: for frames that are shrunk anyway
        # (huge ones), slice threads keep one (measured 8192x8192 H.264: 717 -> 336 MB peak).
        vs.thread_type = "SLICE" if decode_shrink(cw, ch, max_side) > 1 else "AUTO"
        vs.thread_count = _video_threads()
        rate = vs.average_rate or vs.guessed_rate
        src_fps = float(rate) if rate and float(rate) > 0 else None
        header_dur = _header_duration(container, vs)
        stats.update(src_fps=src_fps, header_duration=header_dur, truncated=False,
                     video_codec=vs.codec_context.name, bit_rate=int(container.bit_rate or 0) or None)

        k = 0
        n_src = 0
        t0: float | None = None
        prev: DecodedFrame | None = None
        prev_rel = -1.0
        step = 1.0 / fps
        eps = 1e-6
        for frame in _packets_decoded(container, vs, stats):
            check_deadline(deadline)
            if frame.width > MAX_SIDE or frame.height > MAX_SIDE:
                raise MediaError(f"video too large: {frame.width}x{frame.height} (max {MAX_SIDE} px per side)")
            ts = frame.time
            if ts is None:
                ts = (n_src / src_fps) if src_fps else n_src * step
            if t0 is None:
                t0 = ts
                rot = _rotation_cw(vs, frame)
                stats.update(rotation=rot, t0=ts)
            rel = ts - t0
            if rel <= prev_rel:
                # Out-of-order or duplicate timestamps (broken muxers): keep time monotone.
                rel = prev_rel + 1e-3
            fw, fh, pix_fmt = frame.width, frame.height, frame.format.name
            cur = DecodedFrame(frame, rot, rel, shrink=decode_shrink(fw, fh, max_side))
            del frame               # a shrunk frame's full-size original is freed here
            n_src += 1
            if prev is None:
                w, h = (fh, fw) if rot in (90, 270) else (fw, fh)
                stats.update(width=w, height=h, pix_fmt=pix_fmt, decode_shrink=cur.shrink)
            # Targets strictly before this frame's time take the previous frame.
            while prev is not None and k * step < rel - eps:
                yield k, prev
                k += 1
                if max_frames is not None and k >= max_frames:
                    stats.update(src_frames=n_src)
                    return
            prev, prev_rel = cur, rel
        check_deadline(deadline)
        if prev is None:
            why = f": {stats['decode_error']}" if stats.get("decode_error") else " (empty or zero-length video stream)"
            raise NothingDecodable(f"no decodable video frames{why}")
        frame_dur = (1.0 / src_fps) if src_fps else step
        end = prev_rel + frame_dur
        stats.update(src_frames=n_src, decoded_duration=end)
        if header_dur and end < 0.9 * header_dur - 0.5:
            stats.update(truncated=True)
        while k * step < end - eps or k == 0:
            yield k, prev
            k += 1
            if max_frames is not None and k >= max_frames:
                return
    finally:
        container.close()


class AudioReader:
    """Streams a file's first audio stream as mono float32 at ``sample_rate``.

    Sample 0 is aligned to ``t0`` (the first video frame's timestamp; pass ``None`` to align to
    the audio's own start). A file without audio reads as silence with ``has_audio = False``.
    Samples before the current position are dropped with :meth:`discard_before`, so memory stays
    bounded for long files.

    Example:
        >>> r = AudioReader("clip.mp4", 16000)              # doctest: +SKIP
        >>> r.read(0, 16000).shape                           # doctest: +SKIP
        (16000,)
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, t0: float | None = None):
        self.sample_rate = int(sample_rate)
        self.error: str | None = None
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0          # absolute sample index of _buf[0]
        self._eof = False
        self._container = None
        self._frames: Iterator[Any] | None = None
        self._skip = 0               # samples to drop at the start (audio starts before video)
        self._lead = 0               # zeros to insert at the start (audio starts after video)
        self._started = False
        self._t0 = t0
        self.has_audio = False
        self.non_finite = 0          # samples that were NaN/Inf or beyond AUDIO_MAX_ABS (read as 0)
        self.stats: dict[str, Any] = {}  # skipped_packets, decode_error of the audio stream
        self.src_rate: int | None = None
        self.src_channels: int | None = None
        container = _open(path)
        if not container.streams.audio:
            container.close()
            self._eof = True
            return
        self._container = container
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        self.has_audio = True
        self.src_rate = int(stream.codec_context.sample_rate or 0) or None
        self.src_channels = int(stream.codec_context.channels or 0) or None
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        self._frames = _packets_decoded(container, stream, self.stats)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._frames = None

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _append(self, frames: list[av.AudioFrame]) -> None:
        chunks = [f.to_ndarray().reshape(-1).astype(np.float32, copy=False) for f in frames]
        chunks = [c for c in chunks if c.size]
        if not chunks:
            return
        data = np.concatenate(chunks)
        bad = ~(np.abs(data) <= AUDIO_MAX_ABS)   # NaN compares False: caught too
        if bad.any():
            # Not sound: counted (the pipeline flags the track unusable) and read as silence, so
            # no NaN/Inf reaches the log-mel.
            self.non_finite += int(bad.sum())
            data = np.where(bad, np.float32(0.0), data)
        if self._lead:
            data = np.concatenate([np.zeros(self._lead, np.float32), data])
            self._lead = 0
        if self._skip:
            d = min(self._skip, data.size)
            data, self._skip = data[d:], self._skip - d
        if data.size:
            self._buf = np.concatenate([self._buf, data]) if self._buf.size else data

    def _pull(self) -> None:
        """Decode one more audio frame into the buffer (or mark EOF)."""
        if self._eof or self._frames is None:
            self._eof = True
            return
        try:
            frame = next(self._frames)
        except StopIteration:
            self._append(self._resampler.resample(None))
            self._eof = True
            self.close()
            return
        except (av.error.FFmpegError, ValueError) as e:
            # Broken audio ends the stream early; the rest reads as silence and is flagged.
            self.error = _short(e)
            self._eof = True
            self.close()
            return
        if not self._started:
            self._started = True
            if self._t0 is not None and frame.time is not None:
                offset = frame.time - self._t0
                n = int(round(abs(offset) * self.sample_rate))
                if offset > 0:
                    self._lead = n
                else:
                    self._skip = n
        self._append(self._resampler.resample(frame))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) (absolute indices; negative or past-the-end reads as zeros)."""
        out = np.zeros(max(0, stop - start), np.float32)
        while not self._eof and self._buf_start + self._buf.size < stop:
            self._pull()
        a, b = max(start, self._buf_start), min(stop, self._buf_start + self._buf.size)
        if b > a:
            out[a - start: b - start] = self._buf[a - self._buf_start: b - self._buf_start]
        return out

    def discard_before(self, index: int) -> None:
        """Free samples before absolute index ``index``."""
        d = index - self._buf_start
        if d > 0:
            d = min(d, self._buf.size)
            self._buf = self._buf[d:].copy()
            self._buf_start += d

    def read_all(self) -> np.ndarray:
        """Everything from the current buffer start to the end of the stream."""
        while not self._eof:
            self._pull()
        return self._buf.copy()


def decode_audio(path: str | os.PathLike, sample_rate: int = 16000, t0: float | None = None) -> tuple[np.ndarray, bool]:
    """Whole audio track as mono float32 at ``sample_rate``; ``(audio, has_audio)``.

    A file without audio gives ``(zeros(0), False)``.

    Example:
        >>> audio, has_audio = decode_audio("clip.mp4", 16000)   # doctest: +SKIP
    """
    with AudioReader(path, sample_rate, t0=t0) as r:
        return r.read_all(), r.has_audio

