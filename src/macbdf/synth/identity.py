"""Synthetic identities: face geometry, colours, hair, clothing, background palette and voice.

An identity is a pure function of (seed, index), so a pool can grow without changing the
identities already drawn.

Example:
    >>> ident = make_identity(seed=0, index=3)
    >>> ident.name, ident.gender in ("men", "women")
    ('id00003', True)
    >>> make_identity(0, 3) == ident
    True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macbdf.synth.speech import Voice, make_voice

# FakeAVCeleb's ethnicity folder names (spaces and parentheses are part of the layout).
ETHNICITIES = ("African", "Asian (East)", "Asian (South)", "Caucasian (American)", "Caucasian (European)")

# Skin tone ranges (RGB low, RGB high) per ethnicity, loosely plausible.
_SKIN = {
    "African": ((92, 58, 38), (150, 102, 72)),
    "Asian (East)": ((205, 165, 130), (238, 200, 170)),
    "Asian (South)": ((150, 105, 75), (200, 150, 112)),
    "Caucasian (American)": ((215, 168, 140), (245, 205, 180)),
    "Caucasian (European)": ((215, 168, 140), (248, 210, 188)),
}
_HAIR = {
    "black": (22, 18, 18), "dark_brown": (55, 36, 26), "brown": (96, 64, 40),
    "blonde": (196, 162, 104), "red": (140, 62, 32), "grey": (150, 148, 145),
}
_HAIR_P = {
    "African": {"black": 0.8, "dark_brown": 0.15, "grey": 0.05},
    "Asian (East)": {"black": 0.8, "dark_brown": 0.15, "grey": 0.05},
    "Asian (South)": {"black": 0.75, "dark_brown": 0.2, "grey": 0.05},
    "Caucasian (American)": {"dark_brown": 0.3, "brown": 0.3, "blonde": 0.2, "red": 0.08, "black": 0.07, "grey": 0.05},
    "Caucasian (European)": {"dark_brown": 0.3, "brown": 0.3, "blonde": 0.22, "red": 0.08, "black": 0.05, "grey": 0.05},
}
_IRIS = {"dark": (40, 26, 20), "brown": (90, 55, 30), "hazel": (110, 90, 50), "blue": (70, 110, 160), "green": (70, 110, 70)}


@dataclass(frozen=True)
class Identity:
    """One synthetic person. Face centred at the origin; horizontal sizes in units of the face
    half-width W, vertical positions (`*_y`, `hairline`) in units of the half-height H = aspect*W;
    colours are RGB tuples."""

    index: int
    name: str  # idXXXXX
    ethnicity: str
    gender: str  # men | women
    face_w: float  # face half-width as a fraction of the frame size
    aspect: float  # face half-height / half-width
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    brow_y: float
    brow_thick: float
    brow_tilt: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    jaw: float  # 0 round .. 1 square chin
    hair_style: str  # short | long | bald | bun
    hairline: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    shirt: tuple[int, int, int]
    bg_a: tuple[int, int, int]
    bg_b: tuple[int, int, int]
    voice: Voice


def _rgb(rng: np.random.Generator, lo: tuple[int, ...], hi: tuple[int, ...]) -> tuple[int, int, int]:
    t = rng.random()  # one shared factor keeps the tone coherent (no green skin)
    c = [lo[i] + t * (hi[i] - lo[i]) + rng.normal(0, 4) for i in range(3)]
    return tuple(int(np.clip(v, 0, 255)) for v in c)  # type: ignore[return-value]


def make_identity(seed: int, index: int) -> Identity:
    """Identity number `index` of the pool drawn with `seed`."""
    rng = np.random.default_rng([seed, 7919, index])
    eth = ETHNICITIES[int(rng.integers(len(ETHNICITIES)))]
    female = bool(rng.random() < 0.5)
    skin = _rgb(rng, *_SKIN[eth])
    names, probs = zip(*_HAIR_P[eth].items())
    hair = _HAIR[names[int(rng.choice(len(names), p=np.array(probs) / sum(probs)))]]
    iris_names = ["dark", "brown"] if eth in ("African", "Asian (East)", "Asian (South)") else list(_IRIS)
    iris = _IRIS[iris_names[int(rng.integers(len(iris_names)))]]
    lips = tuple(int(np.clip(s * f + a, 0, 255)) for s, f, a in zip(skin, (0.78, 0.5, 0.52), (25, 8, 12)))
    if female:
        lips = tuple(int(np.clip(c * rng.uniform(0.85, 1.0) + d, 0, 255)) for c, d in zip(lips, (20, -5, 0)))
    styles = ["long", "long", "bun", "short"] if female else ["short", "short", "short", "bald"]
    bg_a = tuple(int(v) for v in rng.integers(40, 230, 3))
    bg_b = tuple(int(np.clip(v + rng.normal(0, 40), 0, 255)) for v in bg_a)
    return Identity(
        index=index,
        name=f"id{index:05d}",
        ethnicity=eth,
        gender="women" if female else "men",
        face_w=float(rng.uniform(0.2, 0.235)),
        aspect=float(rng.uniform(1.22, 1.4) * (0.97 if female else 1.0)),
        eye_y=float(rng.uniform(-0.22, -0.1)),
        eye_dx=float(rng.uniform(0.36, 0.46)),
        eye_w=float(rng.uniform(0.15, 0.2)),
        eye_h=float(rng.uniform(0.075, 0.1)),
        brow_y=float(rng.uniform(0.17, 0.25)),
        brow_thick=float(rng.uniform(0.045, 0.08) * (0.8 if female else 1.0)),
        brow_tilt=float(rng.uniform(-0.05, 0.08)),
        nose_y=float(rng.uniform(0.24, 0.34)),
        nose_w=float(rng.uniform(0.13, 0.2)),
        mouth_y=float(rng.uniform(0.55, 0.66)),
        mouth_w=float(rng.uniform(0.3, 0.42)),
        lip_thick=float(rng.uniform(0.045, 0.075)),
        jaw=float(rng.uniform(0.0, 0.8 if not female else 0.4)),
        hair_style=styles[int(rng.integers(len(styles)))],
        hairline=float(rng.uniform(-0.92, -0.72)),
        skin=skin,
        hair=hair,
        iris=iris,
        lips=lips,  # type: ignore[arg-type]
        shirt=tuple(int(v) for v in rng.integers(20, 235, 3)),  # type: ignore[arg-type]
        bg_a=bg_a,  # type: ignore[arg-type]
        bg_b=bg_b,  # type: ignore[arg-type]
        voice=make_voice(rng, female),
    )
