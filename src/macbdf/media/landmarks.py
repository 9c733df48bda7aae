"""68-point facial landmarks (dlib's shape predictor) and the masks/alignments built on them.

The predictor is the iBUG-300W 68-point model that the registry package ``face-recognition-models``
ships (``shape_predictor_68_face_landmarks.dat``), run by ``dlib-bin`` (prebuilt wheels, no
compiler). It refines a face box (from :mod:`macbdf.media.face`'s Haar detector + tracker) into
68 points in ~3 ms per face on one CPU core. Both packages are loaded lazily on the first
:meth:`LandmarkDetector.detect`; when either is missing, :class:`LandmarksUnavailable` says what to
install in one line.

Point indices (iBUG 68): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.

Example:
    >>> import numpy as np
    >>> pts = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], np.float32)
    >>> m = face_hull_mask(pts, (64, 64), blur=0); float(m[30, 30]), float(m[5, 5])
    (1.0, 0.0)
    >>> m = similarity_align(pts, pts * 2 + 3)
    >>> np.allclose(m, [[2, 0, 3], [0, 2, 3]], atol=1e-4)
    True
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

__all__ = ["LandmarkDetector", "LandmarksUnavailable", "face_hull_mask", "mouth_box", "mouth_mask",
           "similarity_align", "predictor_path", "JAW", "MOUTH", "INNER_FACE"]

JAW = slice(0, 17)
MOUTH = slice(48, 68)
INNER_FACE = slice(17, 68)   # brows, nose, eyes, mouth: stable under jaw motion (used for alignment)
MODEL_FILE = "shape_predictor_68_face_landmarks.dat"


class LandmarksUnavailable(RuntimeError):
    """dlib or the 68-point model is not installed (the message says what to install)."""


def predictor_path() -> Path:
    """Path of the 68-point model inside the installed ``face-recognition-models`` package.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarksUnavailable("facial landmarks need the package face-recognition-models "
                                   "(pip install face-recognition-models==0.3.0)")
    for base in spec.submodule_search_locations:
        p = Path(base) / "models" / MODEL_FILE
        if p.is_file():
            return p
    raise LandmarksUnavailable(f"face-recognition-models is installed but {MODEL_FILE} is missing; reinstall it")


class LandmarkDetector:
    """dlib's 68-point shape predictor, loaded on first use (one per process).

    Example:
        >>> det = LandmarkDetector()                                   # doctest: +SKIP
        >>> det.detect(gray_image, (40, 30, 120, 110)).shape           # doctest: +SKIP
        (68, 2)
    """

    def __init__(self, model_path: str | os.PathLike | None = None):
        self._model_path = model_path
        self._predictor = None
        self._dlib = None

    def _load(self) -> None:
        try:
            import dlib  # noqa: PLC0415 - optional heavy dependency, loaded only when landmarks are needed
        except ImportError:
            raise LandmarksUnavailable("facial landmarks need dlib (pip install dlib-bin==20.0.1.post1)") from None
        path = Path(self._model_path) if self._model_path else predictor_path()
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path))

    def detect(self, image: np.ndarray, box_xyxy: tuple[float, float, float, float]) -> np.ndarray:
        """68 landmarks (x, y) in image pixels, float32 (68, 2), for the face in ``box_xyxy``.

        ``image``: RGB (H, W, 3) or grey (H, W) uint8. The box need not be tight: the predictor's
        cascade pulls the points onto the face from a box about the size of dlib's HOG box.
        """
        if self._predictor is None:
            self._load()
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        gray = np.ascontiguousarray(gray, dtype=np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in box_xyxy)
        shape = self._predictor(gray, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


def face_hull_mask(landmarks: np.ndarray, shape: tuple[int, int], blur: float = 0.0,
                   grow: float = 0.0) -> np.ndarray:
    """Float mask (H, W) in [0, 1]: the convex hull of the landmarks, grown, feathered.

    ``grow``: dilate (> 0) or erode (< 0) the hull by this many pixels before blurring (Self-Blended
    Images randomise it so the blend edge is not always in one place). ``blur``: Gaussian sigma of
    the feathered edge in pixels (0 = hard edge).

    Example:
        >>> pts = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], np.float32)
        >>> float(face_hull_mask(pts, (64, 64)).sum())
        1681.0
    """
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(landmarks, np.float32)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    g = int(round(abs(grow)))
    if g > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1))
        mask = cv2.dilate(mask, k) if grow > 0 else cv2.erode(mask, k)
    out = mask.astype(np.float32) / 255.0
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), float(blur))
        # Keep the feathering inside the grown hull: a blend must not touch pixels outside it.
        out *= (mask > 0)
    return out


def mouth_box(landmarks: np.ndarray, pad: float = 0.35) -> tuple[float, float, float, float]:
    """Square (x0, y0, x1, y1) around the mouth points 48-67, enlarged by ``pad`` of its side.

    Example:
        >>> pts = np.zeros((68, 2), np.float32); pts[48:68] = [[40, 60], [60, 60], [50, 70], [50, 56]] * 5
        >>> mouth_box(pts, pad=0.0)
        (40.0, 53.0, 60.0, 73.0)
    """
    m = np.asarray(landmarks, np.float32)[MOUTH]
    (x0, y0), (x1, y1) = m.min(0), m.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * (1 + 2 * pad)
    return (float(cx - side / 2), float(cy - side / 2), float(cx + side / 2), float(cy + side / 2))


def mouth_mask(landmarks: np.ndarray, shape: tuple[int, int], blur: float = 3.0, pad: float = 0.3) -> np.ndarray:
    """Feathered elliptical mask (H, W) in [0, 1] around the mouth and chin-lip area.

    Example:
        >>> pts = np.zeros((68, 2), np.float32); pts[48:68] = [[40, 60], [60, 60], [50, 70], [50, 56]] * 5
        >>> m = mouth_mask(pts, (100, 100)); float(m[63, 50]) > 0.9, float(m[10, 10])
        (True, 0.0)
    """
    m = np.asarray(landmarks, np.float32)[MOUTH]
    (x0, y0), (x1, y1) = m.min(0), m.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, ay = (x1 - x0) / 2 * (1 + 2 * pad), (y1 - y0) / 2 * (1 + 2 * pad) + (x1 - x0) * 0.12
    mask = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
    cv2.ellipse(mask, (int(round(cx)), int(round(cy))), (max(1, int(round(ax))), max(1, int(round(ay)))),
                0, 0, 360, 255, -1)
    out = mask.astype(np.float32) / 255.0
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), float(blur)) * (mask > 0)
    return out


def similarity_align(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, translation) mapping ``src_pts`` onto
    ``dst_pts`` in the least-squares sense (Umeyama, no reflection); use with ``cv2.warpAffine``.

    Example:
        >>> a = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
        >>> np.allclose(similarity_align(a, a[:, ::-1] * [1, -1]) @ [1, 0, 1], [0, -1], atol=1e-5)
        True
    """
    src = np.asarray(src_pts, np.float64)
    dst = np.asarray(dst_pts, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var = (s ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ e) / var) if var > 0 else 1.0
    t = md - scale * r @ ms
    return np.hstack([scale * r, t[:, None]]).astype(np.float32)
