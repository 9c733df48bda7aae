"""Visual manipulations of ``macbdf forge``, applied to face-crop frames with 68-point landmarks.

Families (see :data:`VIDEO_FAMILIES`):
  * ``self_blend`` -- Self-Blended Images (Shiohara & Yamasaki, CVPR 2022): a colour- and
    geometry-jittered copy of the *same* face blended back through its landmark hull, whose edge
    is randomly eroded/dilated and feathered. Jitter is drawn at key frames about 0.5 s apart
    and interpolated, so it drifts smoothly instead of flickering (which a real face swap lacks).
  * ``mouth_retime`` -- the mouth region of other frames of the same clip (``shift`` frames away),
    aligned on rigid head points (eyes, nose) and blended through a feathered mouth mask, so the
    lips stop following the audio; over a stretch (partial) or the whole clip.
  * ``face_swap`` -- another identity's face, similarity-aligned on the inner-face landmarks,
    colour-matched (mean/std per LAB channel inside the face) and blended through the hull mask.

Every function returns the new frames and the per-frame blend masks (float (T, H, W) in [0, 1]):
pixels where the mask is 0 are the input pixels, bit for bit.

Example:
    >>> import numpy as np
    >>> from macbdf.forge.video_fakes import self_blend
    >>> frames = np.full((3, 64, 64, 3), 120, np.uint8)
    >>> lm = np.tile(np.array([[20 + 24 * np.cos(a), 32 + 24 * np.sin(a)] for a in np.linspace(0, 6.2, 68)],
    ...                       np.float32), (3, 1, 1))
    >>> out, masks = self_blend(frames, lm, np.random.default_rng(0))
    >>> bool((out[masks == 0] == frames[masks == 0]).all())
    True
"""
from __future__ import annotations

import cv2
import numpy as np

from macbdf.media.landmarks import INNER_FACE, face_hull_mask, mouth_mask, similarity_align

VIDEO_FAMILIES = ("self_blend", "mouth_retime", "face_swap")
RIGID = np.r_[27:36, 36, 39, 42, 45]   # nose + eye corners: do not move with the mouth


def _face_size(lm: np.ndarray) -> float:
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    return float(max(x1 - x0, y1 - y0, 1.0))


def _smooth_track(rng: np.random.Generator, n: int, key_every: int, lo: float, hi: float) -> np.ndarray:
    """``n`` values in [lo, hi] drawn at key frames ``key_every`` apart, linearly interpolated."""
    keys = rng.uniform(lo, hi, size=n // key_every + 2)
    return np.interp(np.arange(n) / key_every, np.arange(len(keys)), keys)


def _blend(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dst where mask is 0, src where 1, linear between (uint8, exact outside the mask)."""
    m = mask[..., None]
    out = np.rint(src.astype(np.float32) * m + dst.astype(np.float32) * (1 - m)).astype(np.uint8)
    keep = mask <= 0
    out[keep] = dst[keep]
    return out


def self_blend(frames: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               key_every: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Self-Blended Images on a face-crop clip: (frames (T, H, W, 3) uint8, masks (T, H, W))."""
    T, H, W = frames.shape[:3]
    # Per-clip choices: which jitters, mask grow/blur, blend strength.
    grow_frac = rng.uniform(-0.06, 0.04)
    blur_frac = rng.uniform(0.02, 0.06)
    strength = rng.uniform(0.75, 1.0)
    tracks = {
        "hue": _smooth_track(rng, T, key_every, -6, 6) * (rng.random() < 0.6),
        "sat": _smooth_track(rng, T, key_every, 0.85, 1.15),
        "gain": _smooth_track(rng, T, key_every, 0.88, 1.12),
        "bias": _smooth_track(rng, T, key_every, -12, 12),
        "scale": _smooth_track(rng, T, key_every, 0.96, 1.05),
        "dx": _smooth_track(rng, T, key_every, -0.025, 0.025),
        "dy": _smooth_track(rng, T, key_every, -0.025, 0.025),
    }
    sharpen = rng.uniform(-0.6, 0.8)       # < 0 blurs the source face, > 0 sharpens it (SBI's quality jitter)
    out = np.empty_like(frames)
    masks = np.zeros((T, H, W), np.float32)
    for t in range(T):
        img, lm = frames[t], landmarks[t]
        size = _face_size(lm)
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + tracks["hue"][t]) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * tracks["sat"][t], 0, 255)
        src = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        src = np.clip(src * tracks["gain"][t] + tracks["bias"][t], 0, 255)
        if abs(sharpen) > 0.05:
            soft = cv2.GaussianBlur(src, (0, 0), 1.2)
            src = np.clip(src + sharpen * (src - soft), 0, 255)
        c = lm.mean(0)
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), 0.0, float(tracks["scale"][t]))
        m[0, 2] += tracks["dx"][t] * size
        m[1, 2] += tracks["dy"][t] * size
        src = cv2.warpAffine(src, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mask = face_hull_mask(lm, (H, W), blur=blur_frac * size, grow=grow_frac * size) * strength
        out[t] = _blend(img, src, mask)
        masks[t] = mask
    return out, masks


def mouth_retime(frames: np.ndarray, landmarks: np.ndarray, shift: int, span: tuple[int, int] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mouths taken from ``shift`` frames away (reflected at the clip ends) within ``span``
    = [a, b) frames (None: the whole clip)."""
    T, H, W = frames.shape[:3]
    a, b = span if span is not None else (0, T)
    out = frames.copy()
    masks = np.zeros((T, H, W), np.float32)
    period = 2 * (T - 1) if T > 1 else 1
    for t in range(a, b):
        j = (t + shift) % period
        j = j if j < T else period - j          # reflect: no wrap-around jump
        if j == t:
            j = min(T - 1, t + 1) if t + 1 < T else max(0, t - 1)
        m = similarity_align(landmarks[j][RIGID], landmarks[t][RIGID])
        src = cv2.warpAffine(frames[j], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lm_j = landmarks[j] @ m[:, :2].T + m[:, 2]
        size = _face_size(landmarks[t])
        mask = np.maximum(mouth_mask(landmarks[t], (H, W), blur=0.04 * size),
                          mouth_mask(lm_j, (H, W), blur=0.04 * size))
        out[t] = _blend(frames[t], src, mask)
        masks[t] = mask
    return out, masks


def _lab_stats(img: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sel = img[mask > 0.5]
    if len(sel) < 16:
        sel = img.reshape(-1, 3)
    return sel.mean(0), sel.std(0) + 1e-3


def face_swap(frames: np.ndarray, landmarks: np.ndarray, donor_frames: np.ndarray, donor_landmarks: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The donor's face on the target's head: aligned, colour-matched, blended (per frame)."""
    T, H, W = frames.shape[:3]
    Td = len(donor_frames)
    start = int(rng.integers(0, Td))
    step = 1 if rng.random() < 0.5 else -1     # donor played forwards or backwards (ping-pong at ends)
    grow_frac = rng.uniform(-0.05, 0.0)
    blur_frac = rng.uniform(0.03, 0.06)
    out = np.empty_like(frames)
    masks = np.zeros((T, H, W), np.float32)
    period = 2 * (Td - 1) if Td > 1 else 1
    for t in range(T):
        j = (start + step * t) % period
        j = j if j < Td else period - j
        lm_t, lm_d = landmarks[t], donor_landmarks[j]
        m = similarity_align(lm_d[INNER_FACE], lm_t[INNER_FACE])
        src = cv2.warpAffine(donor_frames[j], m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lm_w = lm_d @ m[:, :2].T + m[:, 2]
        size = _face_size(lm_t)
        # The blend region: where both faces are (the target's jaw line with the donor's features).
        hard = np.minimum(face_hull_mask(lm_t, (H, W), grow=grow_frac * size),
                          face_hull_mask(lm_w, (H, W), grow=grow_frac * size))
        mask = cv2.GaussianBlur(hard, (0, 0), blur_frac * size) * (hard > 0)
        src_lab = cv2.cvtColor(src, cv2.COLOR_RGB2LAB).astype(np.float32)
        dst_lab = cv2.cvtColor(frames[t], cv2.COLOR_RGB2LAB).astype(np.float32)
        ms, ss = _lab_stats(src_lab, hard)
        md, sd = _lab_stats(dst_lab, hard)
        matched = np.clip((src_lab - ms) * (sd / ss) + md, 0, 255).astype(np.uint8)
        src = cv2.cvtColor(matched, cv2.COLOR_LAB2RGB)
        out[t] = _blend(frames[t], src, mask)
        masks[t] = mask
    return out, masks
