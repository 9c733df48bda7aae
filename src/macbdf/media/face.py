"""Face detection and tracking that works offline with what the OpenCV 4.x wheel ships.

* :class:`HaarFaceDetector` -- OpenCV's frontal-face Haar cascade (shipped in ``cv2.data``), the
  default: no download, a few milliseconds on a 320-pixel frame.
* :class:`YuNetFaceDetector` -- OpenCV's ``FaceDetectorYN`` with a user-supplied YuNet ``.onnx``
  (stronger on small, rotated and profile faces; ``macbdf prepare --face-model PATH``).
* :class:`FaceTracker` -- detections arrive on every ``detect_every``-th frame; detections are
  linked into tracks by overlap, the main track is the one with the most accumulated evidence
  (number of hits x face size, so the largest *and* most persistent face wins, with hysteresis
  against flipping between two faces), key-frame boxes are smoothed over neighbouring key frames
  (centre lightly, size more strongly: Haar box sizes jitter) and linearly interpolated between
  key frames. It works *online with a fixed delay* so long videos need only a short frame buffer.
  With two or more faces of comparable size (split-screen interviews, two people in a shot) the
  speaking one is preferred: key frames then carry a small normalised mouth patch per face
  (:func:`mouth_patch`), each track keeps a running mean of how much its mouth changes between
  consecutive key frames, and the main track moves to a face whose mouth moves clearly more
  (``SPEAKER_SWITCH`` times) than the current one's; every such switch is recorded (``switches``).

Boxes are ``(x0, y0, x1, y1)`` in display pixels of the full-resolution frame.

Example:
    >>> det = create_face_detector()              # Haar cascade
    >>> import numpy as np
    >>> det.detect(np.zeros((180, 320), np.uint8)).shape
    (0, 5)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class FaceDetector(Protocol):
    """Anything with ``detect(image) -> (N, 5) float32 [x, y, w, h, score]`` in image pixels."""

    needs_color: bool

    def detect(self, image: np.ndarray) -> np.ndarray: ...


class FaceDetectorUnavailable(RuntimeError):
    """The installed OpenCV cannot run the requested detector (the message says what to install)."""


class HaarFaceDetector:
    """OpenCV frontal-face Haar cascade on a grey image.

    Args:
        cascade: file name inside ``cv2.data.haarcascades`` or a path to a cascade XML.
        min_neighbors: higher = fewer false positives, more misses.
        min_size_frac: smallest face as a fraction of the image's shorter side.
    """

    needs_color = False
    supports_size_hint = True

    def __init__(self, cascade: str = "haarcascade_frontalface_alt2.xml", min_neighbors: int = 4,
                 min_size_frac: float = 0.08, scale_factor: float = 1.1):
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            # OpenCV 5 moved the cascade API and its data out of the main package.
            raise FaceDetectorUnavailable(
                f"OpenCV {cv2.__version__} has no Haar cascade support; install opencv-python-headless<5 "
                "(as the package requires) or pass --face-model with a YuNet .onnx file")
        path = cascade if os.path.isfile(cascade) else os.path.join(cv2.data.haarcascades, cascade)
        self._clf = cv2.CascadeClassifier(path)
        if self._clf.empty():
            raise FileNotFoundError(f"cannot load Haar cascade {path}")
        self.min_neighbors = min_neighbors
        self.min_size_frac = min_size_frac
        self.scale_factor = scale_factor

    def detect(self, image: np.ndarray, min_size: int | None = None, max_size: int | None = None) -> np.ndarray:
        """Faces in ``image`` (grey or BGR); ``min_size``/``max_size`` (pixels) narrow the search.

        A size hint makes a search around a tracked face ~10x cheaper than a full scan.
        """
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if gray.size == 0:
            return np.zeros((0, 5), np.float32)
        gray = cv2.equalizeHist(gray)
        ms = min_size if min_size is not None else max(12, int(min(gray.shape[:2]) * self.min_size_frac))
        kw = {"maxSize": (max_size, max_size)} if max_size else {}
        # Full scans step scales faster (they only need to find the face; tracking refines it).
        sf = self.scale_factor if max_size is not None else max(self.scale_factor, 1.15)
        boxes, _, weights = self._clf.detectMultiScale3(
            gray, scaleFactor=sf, minNeighbors=self.min_neighbors,
            minSize=(ms, ms), outputRejectLevels=True, **kw)
        if len(boxes) == 0:
            return np.zeros((0, 5), np.float32)
        out = np.zeros((len(boxes), 5), np.float32)
        out[:, :4] = np.asarray(boxes, np.float32)
        out[:, 4] = np.asarray(weights, np.float32).reshape(-1)
        return drop_nested(out)


def drop_nested(dets: np.ndarray, inside: float = 0.6) -> np.ndarray:
    """Remove boxes lying mostly (>= ``inside`` of their area) within a larger box.

    Faces do not nest; Haar cascades often fire on the eye/nose region inside a real face as well
    as on the face itself, and locking onto that inner box would crop an extreme close-up.

    Example:
        >>> drop_nested(np.array([[0, 0, 100, 100, 1], [30, 20, 45, 45, 1]], np.float32)).shape
        (1, 5)
    """
    if len(dets) < 2:
        return dets
    order = np.argsort(-(dets[:, 2] * dets[:, 3]))
    keep: list[int] = []
    for i in order:
        x, y, w, h = dets[i, :4]
        nested = False
        for j in keep:
            X, Y, W, H = dets[j, :4]
            ix = max(0.0, min(x + w, X + W) - max(x, X))
            iy = max(0.0, min(y + h, Y + H) - max(y, Y))
            if ix * iy >= inside * w * h:
                nested = True
                break
        if not nested:
            keep.append(int(i))
    return dets[sorted(keep)]


class YuNetFaceDetector:
    """OpenCV ``FaceDetectorYN`` with a user-supplied YuNet ONNX model (BGR input).

    Example:
        >>> det = YuNetFaceDetector("face_detection_yunet_2023mar.onnx")   # doctest: +SKIP
    """

    needs_color = True
    supports_size_hint = False

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        p = Path(model_path)
        if not p.is_file():
            raise FileNotFoundError(f"face model not found: {p}")
        self._det = cv2.FaceDetectorYN.create(str(p), "", (320, 320), score_threshold, nms_threshold, 50)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        if self._size != (w, h):
            self._det.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._det.detect(image)
        if faces is None or len(faces) == 0:
            return np.zeros((0, 5), np.float32)
        faces = np.asarray(faces, np.float32)
        return np.concatenate([faces[:, :4], faces[:, -1:]], axis=1)


def create_face_detector(model_path: str | os.PathLike | None = None) -> FaceDetector:
    """Haar cascade by default; a YuNet detector when ``model_path`` (an ``.onnx``) is given.

    Example:
        >>> create_face_detector().needs_color
        False
    """
    if model_path:
        return YuNetFaceDetector(model_path)
    return HaarFaceDetector()


MOUTH_ROWS = (0.62, 0.95)     # mouth region of a detector box (fractions of its height / width)
MOUTH_COLS = (0.25, 0.75)
MOUTH_PATCH = (12, 20)        # (rows, cols) the region is resampled to
SPEAKER_MIN_SIDE = 0.5        # faces at least this fraction of the largest one's side compete as speakers
SPEAKER_SWITCH = 1.5          # switch to another face when its mouth motion is this many times the main's
SPEAKER_MIN_SAMPLES = 3       # motion samples (consecutive key-frame pairs) a track needs to compete
MOTION_EMA = 0.25             # weight of the newest sample in a track's running mouth motion (~1 s memory)


def mouth_patch(gray: np.ndarray, box: np.ndarray | tuple[float, float, float, float]) -> np.ndarray:
    """The mouth region of a face box ``(x, y, w, h)`` in a grey image, as a zero-mean unit-variance
    ``MOUTH_PATCH`` array (so lighting and size do not count, only the mouth's shape).

    Example:
        >>> img = np.zeros((100, 100), np.uint8); img[80:90, 40:60] = 255
        >>> mouth_patch(img, (20, 20, 60, 60)).shape
        (12, 20)
    """
    x, y, w, h = (float(v) for v in box[:4])
    r0, r1 = int(round(y + MOUTH_ROWS[0] * h)), int(round(y + MOUTH_ROWS[1] * h))
    c0, c1 = int(round(x + MOUTH_COLS[0] * w)), int(round(x + MOUTH_COLS[1] * w))
    r0, c0 = max(0, r0), max(0, c0)
    r1, c1 = min(gray.shape[0], max(r1, r0 + 1)), min(gray.shape[1], max(c1, c0 + 1))
    region = gray[r0:r1, c0:c1]
    if region.size == 0:
        return np.zeros(MOUTH_PATCH, np.float32)
    p = cv2.resize(np.ascontiguousarray(region), (MOUTH_PATCH[1], MOUTH_PATCH[0]), interpolation=cv2.INTER_AREA)
    p = p.astype(np.float32)
    return (p - p.mean()) / (p.std() + 1e-3)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    tid: int
    hits: dict[int, np.ndarray] = field(default_factory=dict)   # frame -> (cx, cy, side)
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (x0, y0, x1, y1)
    score: float = 0.0
    last: int = -1
    smooth: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> smoothed (cx, cy, side)
    patch: np.ndarray | None = None     # mouth patch at `last` (multi-face key frames only)
    motion: float = 0.0                 # running mean |change| of the mouth patch between key frames
    motion_n: int = 0


class FaceTracker:
    """Links per-key-frame detections into tracks and gives one smoothed box per frame.

    Online with a fixed delay: :meth:`box` for frame ``t`` is final once detections up to frame
    ``t + delay`` have been added (:attr:`delay` = ``detect_every * (smooth_radius + 1)``).

    Args:
        width, height: display frame size (pixels).
        detect_every: key-frame spacing.
        margin: the crop square is the face side enlarged by this fraction on each side.
        max_gap_s: a track that misses detections for longer than this is considered lost there.
        fps: frame rate (to convert ``max_gap_s`` to frames).

    Example:
        >>> tr = FaceTracker(640, 480, detect_every=5)
        >>> tr.add(0, np.array([[300, 200, 100, 100, 1.0]]))
        >>> tr.add(5, np.array([[310, 200, 100, 100, 1.0]]))
        >>> box, found = tr.box(2); found
        True
    """

    def __init__(self, width: int, height: int, *, detect_every: int = 5, margin: float = 0.25,
                 max_gap_s: float = 1.0, fps: float = 25.0, smooth_radius: int = 2):
        self.width, self.height = width, height
        self.detect_every = max(1, int(detect_every))
        self.margin = margin
        self.max_gap = max(self.detect_every * 2, int(round(max_gap_s * fps)))
        self.smooth_radius = smooth_radius
        self.delay = self.detect_every * (smooth_radius + 1)
        self.tracks: list[_Track] = []
        self._next_tid = 0
        self._main: _Track | None = None
        self._last_box: np.ndarray | None = None   # last box handed out (held through misses)
        self.n_keyframes = 0
        self.n_keyframes_hit = 0
        self.switches: list[int] = []   # key frames where the main track moved to a more active speaker
        self._by_speaker = False        # the main track was chosen by mouth motion (score rule paused)

    # ---- building tracks -------------------------------------------------------------------
    def add(self, frame: int, dets: np.ndarray, patches: list[np.ndarray] | None = None) -> None:
        """Detections of key frame ``frame``: (N, 5) [x, y, w, h, score] in display pixels, with
        optional mouth patches (one per detection, :func:`mouth_patch`) for the speaker choice."""
        self.n_keyframes += 1
        dets = np.asarray(dets, np.float32).reshape(-1, 5)
        alive = [t for t in self.tracks if frame - t.last <= self.max_gap]
        used: set[int] = set()
        # Larger faces claim tracks first (they are the likelier subject).
        for i in np.argsort(-(dets[:, 2] * dets[:, 3])):
            x, y, w, h, _ = dets[i]
            box = np.array([x, y, x + w, y + h], np.float32)
            best, best_iou = None, 0.2
            for t in alive:
                if t.tid in used:
                    continue
                o = _iou(box, t.boxes[t.last])
                if o > best_iou:
                    best, best_iou = t, o
            if best is None:
                best = _Track(tid=self._next_tid)
                self._next_tid += 1
                self.tracks.append(best)
            used.add(best.tid)
            if patches is not None:
                if best.patch is not None and 0 < frame - best.last <= self.detect_every:
                    m = float(np.abs(patches[i] - best.patch).mean())
                    best.motion = m if best.motion_n == 0 else (1 - MOTION_EMA) * best.motion + MOTION_EMA * m
                    best.motion_n += 1
                best.patch = patches[i]
            else:
                best.patch = None
            best.boxes[frame] = box
            best.hits[frame] = np.array([x + w / 2, y + h / 2, max(w, h)], np.float64)
            best.last = frame
            # Evidence = hits x face size; normalised so that a full-height face counts 1 per hit.
            best.score += float(np.sqrt(w * h)) / max(1.0, min(self.width, self.height))
        if len(dets):
            self.n_keyframes_hit += 1
        self._pick_main(frame)

    def _pick_main(self, frame: int) -> None:
        alive = [t for t in self.tracks if frame - t.last <= self.max_gap]
        if not alive:
            return          # keep the lost main track: its last box is held
        best = max(alive, key=lambda t: t.score)
        main = self._main
        if main is None or main not in alive:
            self._main, self._by_speaker = best, False    # a lost main track gives way at once
        elif best is not main and best.score > 1.5 * main.score and not self._by_speaker:
            # Between two visible faces, hysteresis: switch only when the other has clearly more
            # evidence (no flicker). A face chosen as the speaker keeps the track while it is seen.
            self._main = best
        self._prefer_speaker(frame, alive)

    def _prefer_speaker(self, frame: int, alive: list[_Track]) -> None:
        """Among faces seen at this key frame with comparable size, move to the one whose mouth
        moves clearly more than the main track's (the speaking face of an interview)."""
        main = self._main
        if main is None or main.last != frame or main.motion_n < SPEAKER_MIN_SAMPLES:
            return
        side = main.hits[frame][2]
        rivals = [t for t in alive if t is not main and t.last == frame and t.motion_n >= SPEAKER_MIN_SAMPLES
                  and t.hits[frame][2] >= SPEAKER_MIN_SIDE * side and side >= SPEAKER_MIN_SIDE * t.hits[frame][2]]
        if not rivals:
            return
        top = max(rivals, key=lambda t: t.motion)
        if top.motion > SPEAKER_SWITCH * max(main.motion, 1e-6):
            self._main, self._by_speaker = top, True
            self.switches.append(frame)

    def recent_face(self, frame: int) -> np.ndarray | None:
        """(cx, cy, side) of the main track's hit at the previous key frame, if it had one."""
        tr = self._main
        if tr is None or not tr.hits or frame - tr.last > self.detect_every:
            return None
        return tr.hits[tr.last]

    # ---- per-frame boxes ---------------------------------------------------------------------
    def _smoothed_hit(self, track: _Track, keys: list[int], i: int) -> np.ndarray:
        """Key frame i's (cx, cy, side) averaged with its neighbours (within the same track segment).

        Cached: by the time a frame's box is asked for, every neighbour within the smoothing
        radius has been added (that is what :attr:`delay` guarantees), so the value is final.
        """
        cached = track.smooth.get(keys[i])
        if cached is not None:
            return cached
        val = self._smooth_uncached(track, keys, i)
        track.smooth[keys[i]] = val
        return val

    def _smooth_uncached(self, track: _Track, keys: list[int], i: int) -> np.ndarray:
        r = self.smooth_radius
        lo, hi = max(0, i - r), min(len(keys), i + r + 1)
        idx = [j for j in range(lo, hi) if abs(keys[j] - keys[i]) <= self.max_gap]
        cw = np.array([{0: 4.0, 1: 2.0, 2: 1.0}.get(abs(j - i), 0.5) for j in idx])
        vals = np.stack([track.hits[keys[j]] for j in idx])
        centre = (vals[:, :2] * cw[:, None]).sum(0) / cw.sum()
        side = float(np.median(vals[:, 2]))   # median: robust to one Haar box that is far too big/small
        # A single-frame centre shift is kept partly: fast head motion should not be smoothed away.
        centre = 0.5 * centre + 0.5 * vals[idx.index(i), :2]
        return np.array([centre[0], centre[1], side])

    def box(self, t: int) -> tuple[tuple[float, float, float, float], bool]:
        """Crop square (x0, y0, x1, y1) for frame ``t`` and whether a face is known there.

        Without a nearby detection of the main track the last box is held (or, with no face seen
        yet, a centred square is used) and ``found`` is False.
        """
        tr = self._main
        found = False
        cs: np.ndarray | None = None
        if tr is not None and tr.hits:
            keys = list(tr.hits)          # insertion order = frame order
            pos = int(np.searchsorted(keys, t, side="right"))  # keys[pos-1] <= t < keys[pos]
            prev_i = pos - 1 if pos > 0 else None
            next_i = pos if pos < len(keys) else None
            if prev_i is not None and keys[prev_i] == t:
                cs, found = self._smoothed_hit(tr, keys, prev_i), True
            elif prev_i is not None and next_i is not None and keys[next_i] - keys[prev_i] <= self.max_gap:
                a, b = self._smoothed_hit(tr, keys, prev_i), self._smoothed_hit(tr, keys, next_i)
                w = (t - keys[prev_i]) / (keys[next_i] - keys[prev_i])
                cs, found = (1 - w) * a + w * b, True
            elif prev_i is not None and t - keys[prev_i] <= self.detect_every:
                cs, found = self._smoothed_hit(tr, keys, prev_i), True
            elif next_i is not None and keys[next_i] - t <= self.detect_every:
                cs, found = self._smoothed_hit(tr, keys, next_i), True
            elif prev_i is not None:
                cs = self._smoothed_hit(tr, keys, prev_i)     # face lost: hold its last box
            elif next_i is not None:
                cs = self._smoothed_hit(tr, keys, next_i)     # face not seen yet: use its first box
        if cs is not None:
            cx, cy, side = cs
            half = side * (0.5 + self.margin)
            b = np.array([cx - half, cy - half, cx + half, cy + half])
            self._last_box = b
        elif self._last_box is not None:
            b = self._last_box
        else:
            b = self.fallback_box()
        return (float(b[0]), float(b[1]), float(b[2]), float(b[3])), found

    def fallback_box(self) -> np.ndarray:
        """Centred square with the frame's shorter side (the no-face crop)."""
        s = min(self.width, self.height)
        x0, y0 = (self.width - s) / 2, (self.height - s) / 2
        return np.array([x0, y0, x0 + s, y0 + s])

    def forget_before(self, t: int) -> None:
        """Drop key-frame data older than what smoothing of frame ``t`` can need (bounded memory)."""
        limit = t - self.max_gap - self.detect_every * (self.smooth_radius + 2)
        for tr in self.tracks:
            for k in [k for k in tr.hits if k < limit and k != tr.last]:
                del tr.hits[k]
                del tr.boxes[k]
                tr.smooth.pop(k, None)
        # Dead tracks with little evidence cannot become main any more; keep the list short.
        self.tracks = [tr for tr in self.tracks if tr is self._main or t - tr.last <= self.max_gap * 4
                       or tr.score >= 0.5 * (self._main.score if self._main else 0)]
