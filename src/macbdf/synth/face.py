"""Procedural talking-head renderer (OpenCV anti-aliased drawing).

The head is drawn upright in a 2x supersampled *canonical* canvas and then warped into the frame
with the head pose (roll, translation, scale; yaw/pitch shift the inner features). The background
is first warped into the canonical canvas with the inverse pose, so after the forward warp it
stays put while the head moves. The face is drawn with the contrast layout the Viola-Jones
(Haar) frontal-face cascade relies on: dark brows and eye sockets above a lighter cheek band,
a light nose bridge between the eyes, a darker mouth below.

Example:
    >>> import numpy as np
    >>> from macbdf.synth.identity import make_identity
    >>> ident = make_identity(0, 1)
    >>> bg = make_background(ident, 160, np.random.default_rng(0))
    >>> frame = render_frame(ident, bg, Pose(), mouth=0.5, blink=0.0)
    >>> frame.shape, frame.dtype
    ((160, 160, 3), dtype('uint8'))
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from macbdf.synth.identity import Identity

_SS = 1  # supersampling of the canonical canvas (LINE_AA edges are enough at 1; 2 costs 3x)
_PAD = 1.3  # canonical canvas size / frame size: its border (and the shirt's edge) stays off-frame
_SHIFT = 4  # OpenCV fixed-point fractional bits for sub-pixel drawing
_ONE = 1 << _SHIFT
MOUTH_INTERIOR = (52, 14, 22)  # RGB; dark red, used by the lip-sync test to measure the opening


@dataclass
class Pose:
    """Head pose: translation (fractions of the frame), scale, roll (degrees), yaw/pitch in [-1, 1]."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    brow_raise: float = 0.0


def _p(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _ell(img: np.ndarray, c: tuple[float, float], axes: tuple[float, float], color, angle: float = 0.0,
         thickness: int = -1, start: float = 0, end: float = 360) -> None:
    ax = (max(int(round(axes[0] * _ONE)), 1), max(int(round(axes[1] * _ONE)), 1))
    cv2.ellipse(img, _p(*c), ax, angle, start, end, color, thickness, cv2.LINE_AA, _SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, color) -> None:
    cv2.fillPoly(img, [np.round(pts * _ONE).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, color, thickness: float) -> None:
    cv2.polylines(img, [np.round(pts * _ONE).astype(np.int32)], False, color, max(int(round(thickness)), 1),
                  cv2.LINE_AA, _SHIFT)


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(min(max(int(v * f), 0), 255) for v in c)  # type: ignore[return-value]


def _face_outline(cx: float, cy: float, w: float, h: float, jaw: float, n: int = 48) -> np.ndarray:
    """Ellipse whose lower half tends to a superellipse (square jaw) as `jaw` -> 1."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / (2.0 + 1.6 * jaw)
    lower = s > 0
    x = np.where(lower, np.sign(c) * np.abs(c) ** e, c) * w
    y = np.where(lower, np.sign(s) * np.abs(s) ** (e * 0.9 + 0.1), s) * h
    return np.stack([cx + x, cy + y], 1)


def canonical_geometry(ident: Identity, size: int) -> dict[str, float]:
    """Key positions in canonical canvas pixels (face centre, half-width W, half-height H)."""
    S = _canvas_size(size)
    w = ident.face_w * size * _SS
    return {"cx": S / 2, "cy": S / 2, "W": w, "H": w * ident.aspect, "S": S}


def _canvas_size(size: int) -> int:
    return int(round(size * _SS * _PAD / 2)) * 2


def pose_matrix(pose: Pose, size: int) -> np.ndarray:
    """2x3 affine map from the canonical canvas to the output frame."""
    S = _canvas_size(size)
    m = cv2.getRotationMatrix2D((S / 2, S / 2), pose.roll, pose.scale / _SS)
    # getRotationMatrix2D keeps (S/2, S/2) fixed at scale pose.scale/_SS: move it to the frame centre.
    m[:, 2] = np.array([size / 2 + pose.dx * size, size / 2 + pose.dy * size]) - m[:, :2] @ np.array([S / 2, S / 2])
    return m


def make_background(ident: Identity, size: int, rng: np.random.Generator) -> np.ndarray:
    """A room-like backdrop (gradient + blurred furniture blocks); uint8 RGB (size, size, 3)."""
    S = size
    y = np.linspace(0, 1, S)[:, None, None]
    bg = (np.array(ident.bg_a, np.float32) * (1 - y) + np.array(ident.bg_b, np.float32) * y) * np.ones((S, S, 3), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.integers(-S // 4, S, 2)
        w, h = rng.integers(S // 8, S // 2, 2)
        col = np.clip(np.array(ident.bg_a) * rng.uniform(0.6, 1.4) + rng.normal(0, 25, 3), 0, 255)
        cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(c) for c in col), -1, cv2.LINE_AA)
    if rng.random() < 0.4:  # a window / lamp: a bright soft blob
        c = (int(rng.integers(0, S)), int(rng.integers(0, S // 2)))
        cv2.circle(bg, c, int(rng.integers(S // 10, S // 4)), (240, 238, 225), -1, cv2.LINE_AA)
    k = int(rng.choice([3, 5, 9])) | 1
    bg = cv2.GaussianBlur(bg, (k, k), 0)
    bg += rng.normal(0, 3.0, bg.shape).astype(np.float32)  # static texture
    return np.clip(bg, 0, 255).astype(np.uint8)


def _draw_head(canvas: np.ndarray, ident: Identity, size: int, pose: Pose, mouth: float, blink: float) -> None:
    g = canonical_geometry(ident, size)
    cx, cy, W, H = g["cx"], g["cy"], g["W"], g["H"]
    skin = ident.skin
    hair = ident.hair
    yaw, pitch = float(np.clip(pose.yaw, -1, 1)), float(np.clip(pose.pitch, -1, 1))
    fx = cx + yaw * 0.16 * W  # inner features move with yaw
    fy = cy + pitch * 0.08 * H

    # Back hair, shirt, neck, ears.
    if ident.hair_style == "long":
        _poly(canvas, np.array([[cx - 1.25 * W, cy - 0.2 * H], [cx + 1.25 * W, cy - 0.2 * H],
                                [cx + 1.35 * W, cy + 1.45 * H], [cx - 1.35 * W, cy + 1.45 * H]]), hair)
        _ell(canvas, (cx, cy - 0.2 * H), (1.25 * W, 0.98 * H), hair)
    elif ident.hair_style == "bun":
        _ell(canvas, (cx, cy - 1.05 * H), (0.45 * W, 0.35 * H), hair)
    _ell(canvas, (cx, cy + 2.35 * H), (2.1 * W, 1.25 * H), ident.shirt)
    _poly(canvas, np.array([[cx - 0.5 * W, cy + 0.4 * H], [cx + 0.5 * W, cy + 0.4 * H],
                            [cx + 0.55 * W, cy + 1.35 * H], [cx - 0.55 * W, cy + 1.35 * H]]), _shade(skin, 0.8))
    ear_y = cy + (ident.eye_y + 0.12) * H
    for side in (-1, 1):
        vis = 1.0 - 0.5 * max(0.0, side * yaw)
        _ell(canvas, (cx + side * (0.98 - 0.05 * side * yaw) * W, ear_y), (0.16 * W * vis, 0.3 * H), _shade(skin, 0.9))
    if ident.hair_style in ("short", "bun", "long"):
        _ell(canvas, (cx, cy - 0.22 * H), (1.07 * W, 0.86 * H), hair)

    # Face: a darker rim then the lit face, so the cheeks read lighter than the border.
    _poly(canvas, _face_outline(cx + yaw * 0.04 * W, cy, W, H, ident.jaw), _shade(skin, 0.82))
    _poly(canvas, _face_outline(cx + yaw * 0.07 * W, cy + 0.02 * H, W * 0.9, H * 0.94, ident.jaw), skin)
    if ident.hair_style != "bald":  # fringe: hair over the forehead above the hairline
        hl = cy + ident.hairline * H
        t = np.linspace(np.pi, 2 * np.pi, 32)
        top = np.stack([cx + 1.0 * W * np.cos(t), cy + 1.0 * H * np.sin(t)], 1)
        top = top[top[:, 1] <= hl]
        if len(top) >= 3:
            # A slightly curved hairline: lower at the temples than in the middle.
            u = (top[:, 0] - cx) / W
            top[:, 1] = np.where(top[:, 1] >= hl - 1e-6, hl, top[:, 1])
            edge = np.stack([top[::-1, 0], hl + 0.07 * H * u[::-1] ** 2], 1)
            _poly(canvas, np.concatenate([top, edge]), hair)

    # Eyes: socket shadow, sclera, iris/pupil, lid ring that also clips the iris, lash line.
    ey = fy + ident.eye_y * H
    # Cheekbone highlights (soft: three nested steps) make the band under the eyes the lightest
    # part of the face, as in photographs; dark skin needs it most for the Haar features.
    lum = 0.3 * skin[0] + 0.59 * skin[1] + 0.11 * skin[2]
    for k, grow in enumerate((1.0, 0.75, 0.5)):
        hl = tuple(min(int(c * (1.0 + 0.04 * (k + 1)) + 4 * (k + 1)), 255) for c in skin)
        for side in (-1, 1):
            _ell(canvas, (fx + side * 0.45 * W, ey + 0.3 * H), (0.32 * W * grow, 0.18 * H * grow), hl)
    socket = _shade(skin, 0.7 if lum < 120 else 0.78)
    open_h = ident.eye_h * W * max(1.0 - blink, 0.06)
    for side in (-1, 1):
        ew = ident.eye_w * W * (1.0 - 0.18 * side * yaw)
        ex = fx + side * ident.eye_dx * W * (1.0 - 0.1 * side * yaw)
        _ell(canvas, (ex, ey - 0.02 * H), (ew * 1.45, ident.eye_h * W * 2.1), socket)
        _ell(canvas, (ex, ey), (ew, open_h), (236, 232, 226))
        ir = ident.eye_h * W * 0.95
        ix, iy = ex + pose.gaze_x * ew * 0.35, ey + pose.gaze_y * open_h * 0.3
        _ell(canvas, (ix, iy), (ir, ir), ident.iris)
        _ell(canvas, (ix, iy), (ir * 0.45, ir * 0.45), (12, 10, 10))
        ring = ident.eye_h * W * 1.6
        _ell(canvas, (ex, ey), (ew + ring / 2, open_h + ring / 2), socket, thickness=max(int(ring * _ONE) // _ONE, 1))
        _ell(canvas, (ex, ey), (ew, open_h), (30, 22, 20), thickness=max(int(0.025 * W), 1), start=180, end=360)
        # Brow: a thick dark arc above the socket.
        by = ey - ident.brow_y * H - pose.brow_raise * 0.05 * H
        bx = np.linspace(-1.25, 1.25, 9)
        pts = np.stack([ex + side * bx * ew, by - 0.06 * H * (1 - bx ** 2) - side * bx * ident.brow_tilt * W * side], 1)
        _line(canvas, pts, _shade(hair, 0.7) if ident.hair != (150, 148, 145) else (60, 55, 50), ident.brow_thick * W * 1.6)

    # Nose: light bridge between the eyes, side shadow, nostrils.
    ny = fy + ident.nose_y * H
    nx = fx + yaw * 0.1 * W
    _line(canvas, np.array([[fx, ey - 0.05 * H], [nx, ny - 0.05 * H]]), _shade(skin, 1.08), 0.12 * W)
    _line(canvas, np.array([[fx - 0.12 * W - 0.1 * yaw * W, ey + 0.08 * H], [nx - 0.13 * W, ny - 0.02 * H]]),
          _shade(skin, 0.82), 0.05 * W)
    _ell(canvas, (nx, ny), (ident.nose_w * W, 0.07 * H), _shade(skin, 0.88))
    for side in (-1, 1):
        _ell(canvas, (nx + side * ident.nose_w * W * 0.5, ny + 0.03 * H), (0.05 * W, 0.03 * H), _shade(skin, 0.45))

    # Mouth: lips, dark interior whose height follows `mouth`, upper teeth when open.
    my = fy + ident.mouth_y * H
    mx = fx + yaw * 0.08 * W
    mw = ident.mouth_w * W * (1.0 - 0.12 * mouth)
    oh = float(np.clip(mouth, 0, 1)) * 0.28 * W
    lt = ident.lip_thick * W
    _ell(canvas, (mx, my + oh * 0.3), (mw, lt + oh * 0.55), ident.lips)
    if oh > 0.01 * W:
        _ell(canvas, (mx, my + oh * 0.3), (mw * 0.82, oh * 0.5), MOUTH_INTERIOR)
        if mouth > 0.3:
            _ell(canvas, (mx, my + oh * 0.3 - oh * 0.36), (mw * 0.6, oh * 0.13), (225, 222, 210))
    else:
        _line(canvas, np.array([[mx - mw * 0.9, my], [mx, my + 0.01 * H], [mx + mw * 0.9, my]]), _shade(ident.lips, 0.55), 0.02 * W)


def render_frame(ident: Identity, background: np.ndarray, pose: Pose, mouth: float, blink: float) -> np.ndarray:
    """One RGB frame (uint8, same size as `background`) of `ident` in `pose`."""
    size = background.shape[0]
    m = pose_matrix(pose, size)
    S = _canvas_size(size)
    # Replicated border: where the canvas edge lands inside the frame (strong roll/zoom-out) the
    # forward warp interpolates with background-coloured pixels, not with a black seam.
    canvas = cv2.warpAffine(background, m, (S, S), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    _draw_head(canvas, ident, size, pose, mouth, blink)
    # Transparent border: corners the rotated canvas does not cover keep the background.
    out = background.copy()
    cv2.warpAffine(canvas, m, (size, size), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return out


def face_regions(ident: Identity, pose: Pose, size: int) -> dict[str, tuple[float, float, float, float]]:
    """Output-frame regions as (cx, cy, half_w, half_h): `face` (whole face), `inner` (brows to
    chin: what a face swap replaces), `lower` (mouth area: what a lip-sync model regenerates)."""
    g = canonical_geometry(ident, size)
    m = pose_matrix(pose, size)
    s = pose.scale / _SS
    W, H = g["W"], g["H"]

    def at(x: float, y: float) -> tuple[float, float]:
        p = m @ np.array([x, y, 1.0])
        return float(p[0]), float(p[1])

    cx, cy = g["cx"] + pose.yaw * 0.1 * W, g["cy"]
    brow = ident.eye_y - ident.brow_y - 0.1
    mid_inner = (brow + 0.95) / 2
    return {
        "face": (*at(cx, cy), W * s, H * s),
        "inner": (*at(cx, cy + mid_inner * H), 0.8 * W * s, (0.95 - brow) / 2 * H * s),
        "lower": (*at(cx, cy + (ident.mouth_y + 0.05) * H), 0.6 * W * s, 0.35 * H * s),
    }


def region_mask(region: tuple[float, float, float, float], size: int, roll: float, feather: float) -> np.ndarray:
    """Soft elliptical mask (float32 in [0,1], (size, size)) with a Gaussian edge of `feather` px."""
    mask = np.zeros((size, size), np.float32)
    cx, cy, hw, hh = region
    _ell(mask, (cx, cy), (hw, hh), 1.0, angle=-roll)
    if feather > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return mask
