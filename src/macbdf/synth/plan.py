"""The plan of a synthetic benchmark: which clip shows whom, which manipulation, which split.

The plan is computed from the settings alone (no rendering), so metadata and labels are
deterministic by seed and a partial run can be resumed. Clips come in *blocks* of four that share
one identity, utterance and scene: the real clip (RVRA) and fakes derived from it (RVFA, FVRA,
FVFA), which keeps the four categories balanced within every split. Identities are assigned to
splits first, so splits are identity-disjoint; face-swap donors and voice sources are drawn from
the same split.

Example:
    >>> plan = make_plan("lavdf", num_clips=8, seed=0)
    >>> [c.category for c in plan.clips[:4]]
    ['RVRA', 'RVFA', 'FVRA', 'FVFA']
    >>> plan.clips[0].file
    'train/000001.mp4'
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from macbdf.synth.identity import make_identity

FPS = 25
SAMPLE_RATE = 16000
LAYOUTS = ("fakeavceleb", "lavdf")
CATEGORIES = ("RVRA", "RVFA", "FVRA", "FVFA")
VIDEO_FAMILIES = ("faceswap", "lipsync", "gan")
AUDIO_FAMILIES = ("voiceconv", "tts", "splice", "audioswap")
FAMILIES = VIDEO_FAMILIES + AUDIO_FAMILIES
FAKEAVCELEB_TYPES = {
    "RVRA": ("A", "RealVideo-RealAudio"),
    "RVFA": ("B", "RealVideo-FakeAudio"),
    "FVRA": ("C", "FakeVideo-RealAudio"),
    "FVFA": ("D", "FakeVideo-FakeAudio"),
}
LAVDF_SPLITS = {"train": "train", "val": "dev", "test": "test"}
DEFAULT_PARTIAL = {"fakeavceleb": 0.0, "lavdf": 0.8}


class PlanError(ValueError):
    """Settings that cannot produce a benchmark (the message says why)."""


@dataclass
class ClipSpec:
    """Everything needed to render one clip and write its metadata."""

    index: int
    file: str  # path relative to the output folder
    identity: int
    split: str  # train | val | test (the layout writer maps val to its own name)
    category: str
    num_frames: int
    base_seed: int
    clip_seed: int
    block: int = 0
    video_family: str | None = None
    audio_family: str | None = None
    video_periods: list[list[float]] = field(default_factory=list)
    audio_periods: list[list[float]] = field(default_factory=list)
    donor: int | None = None  # face-swap donor identity
    other: int | None = None  # voice-conversion source / spliced speaker
    params: dict[str, Any] = field(default_factory=dict)
    original: str | None = None

    @property
    def duration(self) -> float:
        return self.num_frames / FPS

    @property
    def method(self) -> str:
        fams = [f for f in (self.video_family, self.audio_family) if f]
        return "synth_" + "-".join(fams) if fams else "real"

    @property
    def fake_periods(self) -> list[list[float]]:
        return merge_periods(self.video_periods + self.audio_periods)

    @property
    def cross_modal_only(self) -> bool:
        """True when neither track alone carries an artefact: the fake shows only as a mismatch
        between lips and words (lip-sync with no visual trace; a real utterance of the same voice)."""
        v_clean = self.video_family is None or (self.video_family == "lipsync" and self.params.get("lip_artefact", 1) == 0)
        a_clean = self.audio_family in (None, "audioswap")
        return self.category != "RVRA" and v_clean and a_clean

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(method=self.method, fake_periods=self.fake_periods, duration=self.duration,
                 cross_modal_only=self.cross_modal_only)
        return d


@dataclass
class Plan:
    settings: dict[str, Any]
    clips: list[ClipSpec]
    identities: dict[str, list[int]]  # split -> identity indices


def merge_periods(periods: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for a, b in sorted(periods):
        if out and a <= out[-1][1] + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [[round(a, 3), round(b, 3)] for a, b in out]


def _segments(rng: np.random.Generator, n_frames: int, count: int) -> list[list[float]]:
    """`count` non-overlapping fake segments (0.4-1.2 s), on frame boundaries, away from the ends."""
    lo, hi = 5, n_frames - 5  # frames
    segs: list[list[int]] = []
    for _ in range(40):
        if len(segs) == count:
            break
        length = int(rng.integers(10, 31))
        length = min(length, max((hi - lo) // (count + 1), 5))
        start = int(rng.integers(lo, max(hi - length, lo + 1)))
        if all(start + length + 3 <= a or start >= b + 3 for a, b in segs):
            segs.append([start, start + length])
    return [[round(a / FPS, 3), round(b / FPS, 3)] for a, b in sorted(segs)]


def parse_families(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'a,b' -> ['a', 'b'], checked against the known families."""
    if not text:
        return []
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in FAMILIES]
    if bad:
        raise PlanError(f"unknown manipulation famil{'y' if len(bad) == 1 else 'ies'} {', '.join(bad)}; "
                        f"known: {', '.join(FAMILIES)}")
    return sorted(set(items), key=FAMILIES.index)


def make_plan(
    layout: str,
    num_clips: int,
    seed: int,
    duration_range: tuple[float, float] = (2.0, 4.0),
    holdout_families: list[str] | str | None = None,
    partial_ratio: float | None = None,
    num_identities: int | None = None,
    size: int = 160,
) -> Plan:
    """Deterministic plan for `num_clips` clips; raises PlanError on impossible settings."""
    if layout not in LAYOUTS:
        raise PlanError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if num_clips < 1:
        raise PlanError("--num-clips must be at least 1")
    d0, d1 = float(duration_range[0]), float(duration_range[1])
    if not (0.8 <= d0 <= d1 <= 60):
        raise PlanError(f"duration range {d0},{d1} must satisfy 0.8 <= min <= max <= 60 seconds")
    if size < 64 or size > 512 or size % 2:
        raise PlanError(f"--size {size} must be an even number of pixels between 64 and 512")
    holdout = parse_families(holdout_families)
    if all(f in holdout for f in VIDEO_FAMILIES) or all(f in holdout for f in AUDIO_FAMILIES):
        raise PlanError("holding out every family of one modality leaves no fakes of it to train on")
    partial = DEFAULT_PARTIAL[layout] if partial_ratio is None else float(partial_ratio)
    if not 0.0 <= partial <= 1.0:
        raise PlanError("--partial-ratio must be in [0, 1]")

    rng = np.random.default_rng([seed, 4242])
    n_blocks = math.ceil(num_clips / 4)
    n_ids = num_identities or max(60, math.ceil(n_blocks / 2))
    if n_ids < 9:
        raise PlanError("at least 9 identities are needed for three identity-disjoint splits with donors")

    # Blocks per split: ~70/10/20, every split non-empty once there are 3 blocks.
    if n_blocks >= 3:
        n_test = max(1, round(0.2 * n_blocks))
        n_val = max(1, round(0.1 * n_blocks))
    else:
        n_test, n_val = (1 if n_blocks == 2 else 0), 0
    n_train = n_blocks - n_test - n_val
    block_split = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    block_split = [block_split[i] for i in rng.permutation(n_blocks)]

    # Identities per split proportional to the blocks (>= 3 each so donors exist).
    ids = [int(i) for i in rng.permutation(n_ids)]
    n_id_val = max(3, round(n_ids * n_val / n_blocks))
    n_id_test = max(3, round(n_ids * n_test / n_blocks))
    pools = {"val": ids[:n_id_val], "test": ids[n_id_val : n_id_val + n_id_test], "train": ids[n_id_val + n_id_test :]}
    genders = {i: make_identity(seed, i).gender for i in range(n_ids)}

    allowed = {
        "train": ([f for f in VIDEO_FAMILIES if f not in holdout], [f for f in AUDIO_FAMILIES if f not in holdout]),
        "test": (list(VIDEO_FAMILIES), list(AUDIO_FAMILIES)),
    }
    allowed["val"] = allowed["train"]
    used = {s: 0 for s in pools}
    clips: list[ClipSpec] = []
    for b in range(n_blocks):
        split = block_split[b]
        pool = pools[split]
        ident = pool[used[split] % len(pool)]
        used[split] += 1
        n_frames = int(round(rng.uniform(d0, d1) * FPS))
        base_seed = int(rng.integers(2**31))
        others = [i for i in pool if i != ident]
        same_gender = [i for i in others if genders[i] == genders[ident]] or others
        real_file: str | None = None
        for cat in CATEGORIES:
            if len(clips) == num_clips:
                break
            idx = len(clips)
            spec = ClipSpec(index=idx, file="", identity=ident, split=split, category=cat, num_frames=n_frames,
                            base_seed=base_seed, clip_seed=int(rng.integers(2**31)), block=b)
            vfams, afams = allowed[split]
            if cat in ("FVRA", "FVFA"):
                spec.video_family = vfams[int(rng.integers(len(vfams)))]
            if cat in ("RVFA", "FVFA"):
                spec.audio_family = afams[int(rng.integers(len(afams)))]
            is_partial = cat != "RVRA" and bool(rng.random() < partial)
            full = [[0.0, round(n_frames / FPS, 3)]]
            count = int(rng.integers(1, 3))
            shared = _segments(rng, n_frames, count) if is_partial else full
            if spec.video_family:
                spec.video_periods = shared
            if spec.audio_family:
                if spec.audio_family == "splice" and not is_partial:
                    # Splicing is partial by nature: one long inserted stretch.
                    spec.audio_periods = _segments(rng, n_frames, 1) if n_frames < 40 else \
                        [[round(int(n_frames * 0.4) / FPS, 3), round(int(n_frames * 0.85) / FPS, 3)]]
                else:
                    spec.audio_periods = shared if cat == "FVFA" or not is_partial else _segments(rng, n_frames, count)
            if cat == "FVFA" and spec.audio_periods != spec.video_periods:
                # LAV-DF-style metadata has one list of periods for both tracks: keep them equal.
                spec.video_periods = spec.audio_periods
            spec.params = _params(rng, spec)
            if spec.video_family == "faceswap":
                spec.donor = same_gender[int(rng.integers(len(same_gender)))]
            if spec.audio_family in ("voiceconv", "splice"):
                spec.other = others[int(rng.integers(len(others)))]
            spec.file = _file_name(layout, spec, seed)
            if cat == "RVRA":
                real_file = spec.file
            else:
                spec.original = real_file
            clips.append(spec)

    settings = {
        "layout": layout, "num_clips": num_clips, "seed": seed, "duration_range": [d0, d1],
        "holdout_families": holdout, "partial_ratio": partial, "num_identities": n_ids, "size": size,
        "fps": FPS, "sample_rate": SAMPLE_RATE, "plan_version": 2,
    }
    return Plan(settings=settings, clips=clips, identities={s: sorted(p) for s, p in pools.items()})


def _strength(rng: np.random.Generator, lo: float, hi: float, subtle: float = 0.15) -> float:
    """An artefact strength: mostly in [lo, hi] (every such fake leaves a learnable trace), with a
    `subtle` share drawn from [0.4 lo, lo] so that hard cases remain."""
    if rng.random() < subtle:
        return round(float(rng.uniform(0.4 * lo, lo)), 3)
    return round(float(rng.uniform(lo, hi)), 3)


def _params(rng: np.random.Generator, spec: ClipSpec) -> dict[str, Any]:
    """Per-clip artefact strengths, randomised so that some fakes are subtle.

    The floors are set so that, after the camera model, H.264 and the 96-px face crop, a typical
    fake still differs from its real original by more than two re-encodes of the same real clip
    differ from each other (plan_version 1 used floors near 0: most GAN, lip-sync and vocoder
    traces were below that noise and nothing could be learnt from a few hundred clips). The
    cross-modal-only fakes (lip-sync without visual trace, same-voice audio swap) are kept as they
    were: only a detector that compares the two modalities can catch them.
    """
    # Compression differs per clip (real ones too), so bitrate is not a label cue; CRF stays in
    # the range of typical web uploads (above ~28 H.264 smooths away most synthetic traces).
    p: dict[str, Any] = {"crf": int(rng.integers(16, 27)), "audio_bitrate": int(rng.choice([32000, 48000, 64000]))}
    v, a = spec.video_family, spec.audio_family
    if v == "faceswap":
        p["strength"] = _strength(rng, 0.45, 1.0)
    elif v == "lipsync":
        if spec.category == "FVFA":
            p["lip_artefact"] = _strength(rng, 0.5, 1.0)
        else:
            p["lip_artefact"] = 0.0 if rng.random() < 0.35 else _strength(rng, 0.5, 1.0)
    elif v == "gan":
        p["strength"] = _strength(rng, 0.5, 1.0)
        # Every generator works at a lower resolution than the frame: upsampling is always there.
        p["gan_kinds"] = ["upsample"] + [k for k in ("blur", "flicker", "checker") if rng.random() < 0.5]
    if a == "voiceconv":
        p["conversion_quality"] = round(float(rng.uniform(0.2, 0.8)), 3)
        p["vocoder"] = _strength(rng, 0.4, 1.0)
    elif a == "tts":
        p["keep_timing"] = bool(rng.random() < 0.35)
        p["vocoder"] = _strength(rng, 0.3, 0.8)
    elif a == "splice":
        p["channel_mismatch"] = _strength(rng, 0.5, 1.0)
    return p


def _file_name(layout: str, spec: ClipSpec, seed: int) -> str:
    if layout == "lavdf":
        return f"{LAVDF_SPLITS[spec.split]}/{spec.index + 1:06d}.mp4"
    ident = make_identity(seed, spec.identity)
    _, folder = FAKEAVCELEB_TYPES[spec.category]
    stem = f"{spec.block:05d}"
    if spec.category == "RVRA":
        name = f"{stem}.mp4"
    elif spec.category == "RVFA":
        name = f"{stem}_{spec.audio_family}.mp4"
    elif spec.category == "FVRA":
        donor = f"_{make_identity(seed, spec.donor).name}" if spec.donor is not None else ""
        name = f"{stem}{donor}_{spec.video_family}.mp4"
    else:
        name = f"{stem}_{spec.video_family}-{spec.audio_family}.mp4"
    return f"{folder}/{ident.ethnicity}/{ident.gender}/{ident.name}/{name}"
