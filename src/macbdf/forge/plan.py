"""The forge plan: which clips to write from which segments, with which family, donor and parameters.

Deterministic given the seed and the extraction summaries (which are deterministic themselves):
every random choice is drawn here and stored in the clip's :class:`ClipPlan`, so rendering is a
pure function of the plan and ``forge_info.json`` says exactly what each fake is.

Rules:
  * every usable segment gives its real copy plus ``fakes_per_segment`` fakes of distinct
    families, chosen from the families the segment is eligible for, least-used family first
    (ties broken by the seeded generator), so families are balanced over the dataset;
  * audio families need a segment with speech; ``audio_swap`` (and a donor ``audio_splice``)
    need another identity with speech in the same split, ``audio_same_speaker`` another segment
    of the same identity, ``face_swap`` another identity with a face in the same split: donors
    never cross splits, so held-out identities never reach training data;
  * ``fvfa`` is one video family plus one audio family on the same clip (FakeAVCeleb category D);
  * clips without an audio track: segments without speech (silent sources) get only the real copy
    and video families, all written without audio; of the speech segments, ``silent_fraction`` of
    the real copies and of the video-only fakes are written without audio too, so a missing
    track says nothing about the label.

Example:
    >>> fake_method("face_swap", "voice_change"), fake_method(None, "av_offset"), fake_method(None, None)
    ('forge_face_swap-voice_change', 'forge_av_offset', 'real')
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from macbdf.forge.audio_fakes import AUDIO_FAMILIES
from macbdf.forge.sources import FPS, SAMPLE_RATE, Source
from macbdf.forge.video_fakes import VIDEO_FAMILIES

COMBO = "fvfa"
FAMILIES = VIDEO_FAMILIES + AUDIO_FAMILIES + (COMBO,)
DONOR_AUDIO_FAMILIES = ("audio_swap", "audio_same_speaker")


@dataclass
class ClipPlan:
    """One output clip (real copy or fake) of one source segment."""

    clip_id: str
    src_id: str
    segment: int
    start_frame: int
    n_frames: int
    identity: str
    split: str
    video_family: str | None = None
    audio_family: str | None = None
    video_params: dict[str, Any] = field(default_factory=dict)
    audio_params: dict[str, Any] = field(default_factory=dict)
    video_donor: dict[str, Any] | None = None    # {"identity", "src_id", "segment"}
    audio_donor: dict[str, Any] | None = None    # {"identity", "src_id", "start_sample"}
    has_audio: bool = True
    video_periods: list[list[float]] = field(default_factory=list)
    audio_periods: list[list[float]] = field(default_factory=list)
    real_clip_id: str | None = None              # the real copy of the same segment (for a fake)

    @property
    def duration(self) -> float:
        return self.n_frames / FPS

    @property
    def is_fake(self) -> bool:
        return self.video_family is not None or self.audio_family is not None

    @property
    def method(self) -> str:
        return fake_method(self.video_family, self.audio_family)

    @property
    def fake_periods(self) -> list[list[float]]:
        """Union of the two modalities' periods (LAV-DF's single ``fake_periods`` list)."""
        return merge_periods(self.video_periods + self.audio_periods)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"method": self.method, "duration": round(self.duration, 3),
                               "video_label": int(self.video_family is not None),
                               "audio_label": int(self.audio_family is not None)}


def fake_method(video_family: str | None, audio_family: str | None) -> str:
    parts = [f for f in (video_family, audio_family) if f]
    return "forge_" + "-".join(parts) if parts else "real"


def merge_periods(periods: list[list[float]]) -> list[list[float]]:
    """Sorted union of [start, end] intervals.

    Example:
        >>> merge_periods([[1.0, 2.0], [0.0, 1.2], [3.0, 4.0]])
        [[0.0, 2.0], [3.0, 4.0]]
    """
    out: list[list[float]] = []
    for a, b in sorted(periods):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


@dataclass
class _Seg:
    src: Source
    j: int
    start: int
    n: int
    speech: bool

    @property
    def key(self) -> tuple[str, int]:
        return (self.src.src_id, self.j)


def _clip_id(seed: int, src_id: str, j: int, variant: str) -> str:
    # Opaque: the name must not say real or fake (a viewer can look the clip up in forge_info.json).
    return hashlib.sha1(f"{seed}|{src_id}|{j}|{variant}".encode("utf-8")).hexdigest()[:12]


def _frames_to_s(k: int) -> float:
    return round(k / FPS, 3)


def usable_segments(sources: list[Source], summaries: dict[str, dict[str, Any]], min_face: float,
                    ) -> tuple[list[_Seg], list[dict[str, Any]]]:
    """Segments with a face in at least ``min_face`` of their frames, and failure records for the rest."""
    segs: list[_Seg] = []
    failures: list[dict[str, Any]] = []
    for s in sources:
        summ = summaries.get(s.src_id) or {}
        if summ.get("error"):
            failures.append({"source": s.src_id, "identity": s.identity, "reason": summ["error"]})
            continue
        if not summ.get("segments"):
            failures.append({"source": s.src_id, "identity": s.identity,
                             "reason": f"too short: {summ.get('n_frames', 0) / FPS:.2f} s"})
            continue
        ok = 0
        for seg in summ["segments"]:
            if seg["coverage"] < min_face:
                failures.append({"source": s.src_id, "identity": s.identity, "segment": seg["j"],
                                 "reason": f"no face in most frames (face found in {seg['coverage']:.0%})"})
                continue
            ok += 1
            segs.append(_Seg(s, seg["j"], seg["start"], seg["n"], bool(seg["speech"])))
    return segs, failures


def make_plan(sources: list[Source], summaries: dict[str, dict[str, Any]], *, seed: int, fakes_per_segment: int,
              families: tuple[str, ...] = FAMILIES, silent_fraction: float = 0.2, min_face: float = 0.6,
              ) -> tuple[list[ClipPlan], list[dict[str, Any]]]:
    """All output clips (real copies and fakes, in a stable order) and the skipped sources/segments."""
    segs, failures = usable_segments(sources, summaries, min_face)
    clip_len = {s.src_id: int((summaries[s.src_id].get("n_frames") or 0)) for s in sources
                if s.src_id in summaries and not summaries[s.src_id].get("error")}
    speech_by_split: dict[str, list[_Seg]] = {}
    face_by_split: dict[str, list[_Seg]] = {}
    for g in segs:
        face_by_split.setdefault(g.src.split, []).append(g)
        if g.speech:
            speech_by_split.setdefault(g.src.split, []).append(g)

    def others(pool: dict[str, list[_Seg]], g: _Seg) -> list[_Seg]:
        return [d for d in pool.get(g.src.split, []) if d.src.identity != g.src.identity]

    def same_speaker(g: _Seg) -> list[_Seg]:
        return [d for d in speech_by_split.get(g.src.split, []) if d.src.identity == g.src.identity and d.key != g.key]

    def eligible(g: _Seg) -> list[str]:
        out = []
        for f in families:
            if f in VIDEO_FAMILIES:
                ok = f != "face_swap" or bool(others(face_by_split, g))
            elif f == COMBO:
                ok = g.speech
            else:
                ok = g.speech and (f != "audio_swap" or bool(others(speech_by_split, g))) \
                    and (f != "audio_same_speaker" or bool(same_speaker(g)))
            if ok:
                out.append(f)
        return out

    rng = np.random.default_rng([seed, 17])
    counts = {f: 0 for f in families}
    order = [segs[i] for i in rng.permutation(len(segs))]
    chosen: dict[tuple[str, int], list[str]] = {}
    for g in order:
        elig = eligible(g)
        ties = rng.random(len(elig))
        pick = [f for _, _, f in sorted(zip([counts[f] for f in elig], ties, elig))][:fakes_per_segment]
        for f in pick:
            counts[f] += 1
        chosen[g.key] = pick

    clips: list[ClipPlan] = []
    for g in segs:     # stable output order: by source, then segment
        crng = np.random.default_rng([seed, int(hashlib.sha1(f"{g.src.src_id}|{g.j}".encode()).hexdigest()[:8], 16)])
        base = dict(src_id=g.src.src_id, segment=g.j, start_frame=g.start, n_frames=g.n, identity=g.src.identity,
                    split=g.src.split)
        real_id = _clip_id(seed, g.src.src_id, g.j, "real")
        clips.append(ClipPlan(clip_id=real_id, has_audio=g.speech and crng.random() >= silent_fraction, **base))
        for i, fam in enumerate(chosen[g.key]):
            c = ClipPlan(clip_id=_clip_id(seed, g.src.src_id, g.j, f"fake{i}"), real_clip_id=real_id, **base)
            vfam, afam = fam, None
            if fam == COMBO:
                vf = [f for f in VIDEO_FAMILIES if f != "face_swap" or others(face_by_split, g)]
                af = [f for f in AUDIO_FAMILIES if (f != "audio_swap" or others(speech_by_split, g))
                      and (f != "audio_same_speaker" or same_speaker(g))]
                vfam, afam = str(crng.choice(vf)), str(crng.choice(af))
            elif fam in AUDIO_FAMILIES:
                vfam, afam = None, fam
            if vfam:
                _plan_video(c, vfam, g, crng, others(face_by_split, g))
            if afam:
                _plan_audio(c, afam, g, crng, others(speech_by_split, g), same_speaker(g), clip_len[g.src.src_id])
            c.has_audio = bool(afam) or (g.speech and crng.random() >= silent_fraction)
            clips.append(c)
    return clips, failures


def _plan_video(c: ClipPlan, fam: str, g: _Seg, rng: np.random.Generator, donors: list[_Seg]) -> None:
    c.video_family = fam
    c.video_params = {"seed": int(rng.integers(0, 2**31 - 1))}
    whole = [[0.0, _frames_to_s(g.n)]]
    if fam == "mouth_retime":
        shift = int(rng.integers(8, 26)) * (1 if rng.random() < 0.5 else -1)
        c.video_params["shift_frames"] = shift
        if rng.random() < 0.5 and g.n >= 2 * FPS:
            length = int(rng.integers(FPS, max(FPS + 1, int(0.6 * g.n))))
            a = int(rng.integers(0, g.n - length + 1))
            c.video_params["span"] = [a, a + length]
            c.video_periods = [[_frames_to_s(a), _frames_to_s(a + length)]]
        else:
            c.video_periods = whole
    elif fam == "face_swap":
        d = donors[int(rng.integers(0, len(donors)))]
        c.video_donor = {"identity": d.src.identity, "src_id": d.src.src_id, "segment": d.j}
        c.video_periods = whole
    else:
        c.video_periods = whole


def _plan_audio(c: ClipPlan, fam: str, g: _Seg, rng: np.random.Generator, other_speakers: list[_Seg],
                same: list[_Seg], clip_frames: int) -> None:
    c.audio_family = fam
    n = g.n
    whole = [[0.0, _frames_to_s(n)]]
    spf = SAMPLE_RATE // FPS

    def donor(pool: list[_Seg]) -> dict[str, Any]:
        # Prefer donors at least as long as this segment (no looped audio); any when none is.
        long = [d for d in pool if d.n >= n] or pool
        d = long[int(rng.integers(0, len(long)))]
        return {"identity": d.src.identity, "src_id": d.src.src_id, "segment": d.j, "start_sample": d.start * spf}

    if fam == "audio_swap":
        c.audio_donor = donor(other_speakers)
        c.audio_periods = whole
    elif fam == "audio_same_speaker":
        c.audio_donor = donor(same)
        c.audio_periods = whole
    elif fam == "av_offset":
        off = round(float(rng.uniform(0.2, 1.0)), 3) * (1 if rng.random() < 0.5 else -1)
        c.audio_params = {"offset_s": off}
        c.audio_periods = whole
    elif fam == "audio_splice":
        length = int(rng.integers(int(0.5 * FPS), int(1.5 * FPS) + 1))
        length = min(length, max(2, n // 2))
        a = int(rng.integers(0, n - length + 1))
        c.audio_params = {"start_s": _frames_to_s(a), "end_s": _frames_to_s(a + length)}
        c.audio_periods = [[_frames_to_s(a), _frames_to_s(a + length)]]
        # Elsewhere in the clip when the clip has room outside this segment, else (or half the
        # time) another speaker; with neither, the clip's own audio from the segment's far side.
        room = [k for k in range(0, max(0, clip_frames - length) + 1, 5)
                if k + length <= g.start + a or k >= g.start + a + length]
        if other_speakers and (not room or rng.random() < 0.5):
            c.audio_donor = donor(other_speakers)
            c.audio_params["source"] = "other_speaker"
        else:
            k = room[int(rng.integers(0, len(room)))] if room else g.start + a + length
            c.audio_params.update(source="same_clip", from_s=_frames_to_s(k))
    elif fam == "voice_change":
        c.audio_params = {"semitones": round(float(rng.uniform(2.0, 6.0)) * (1 if rng.random() < 0.5 else -1), 3),
                          "warp": round(float(rng.uniform(0.88, 0.95) if rng.random() < 0.5 else rng.uniform(1.05, 1.12)), 4)}
        c.audio_periods = whole
    elif fam == "time_stretch":
        c.audio_params = {"rate": round(float(rng.uniform(0.85, 0.94) if rng.random() < 0.5 else rng.uniform(1.06, 1.15)), 4)}
        c.audio_periods = whole
    else:
        raise ValueError(f"unknown audio family {fam!r}")
