"""Render one clip (frames + audio) from its `ClipSpec`: the real scene, then the manipulations.

All clips of a *block* share `base_seed`: the same person, utterance, scene, motion, lighting and
microphone, so a block's real clip is the `original` of its fakes and a fake differs from its
original only by the manipulation (plus its own compression settings).

Example:
    >>> from macbdf.synth.plan import ClipSpec
    >>> spec = ClipSpec(index=0, file="a.mp4", identity=1, split="train", category="RVRA",
    ...                 num_frames=25, base_seed=1, clip_seed=2)
    >>> clip = render_clip(spec, pool_seed=0, size=96)
    >>> clip.frames.shape, clip.audio.shape
    ((25, 96, 96, 3), (16000,))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from macbdf.synth.face import Pose, face_regions, make_background, region_mask, render_frame
from macbdf.synth.identity import Identity, make_identity
from macbdf.synth.plan import FPS, SAMPLE_RATE, ClipSpec
from macbdf.synth.speech import (
    Utterance,
    Voice,
    apply_channel,
    crossfade_insert,
    make_utterance,
    mouth_track,
    render_speech,
    vocoder_artefacts,
)


@dataclass
class Clip:
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB
    audio: np.ndarray  # (T * sr / fps,) float32
    crf: int
    audio_bitrate: int
    info: dict[str, Any] = field(default_factory=dict)
    mouth: np.ndarray | None = None  # (T,) mouth opening that drove the rendered face


def _smooth(rng: np.random.Generator, n: int, scale_frames: float) -> np.ndarray:
    """Smooth zero-mean unit-ish noise of length n (cubic-ish via interpolation of sparse knots)."""
    step = max(scale_frames, 1.0)
    knots = rng.standard_normal(int(n / step) + 3)
    x = np.arange(n) / step
    y = np.interp(x, np.arange(len(knots)), knots)
    k = max(int(step / 2), 1)
    return np.convolve(np.pad(y, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), "valid")[:n]


def _frame_mask(periods: list[list[float]], n: int) -> np.ndarray:
    t = (np.arange(n) + 0.5) / FPS
    m = np.zeros(n, bool)
    for a, b in periods:
        m |= (t >= a) & (t < b)
    return m


def _blend_tracks(base: np.ndarray, other: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`other` where mask, with a 2-frame ramp at the edges (no teleporting jaw)."""
    w = mask.astype(np.float64)
    w = np.convolve(np.pad(w, 1, mode="edge"), np.ones(3) / 3, "valid")
    w = np.maximum(w, mask)
    return base * (1 - w) + other * w


@dataclass
class _Scene:
    ident: Identity
    background: np.ndarray
    poses: list[Pose]
    blinks: np.ndarray
    utt: Utterance
    light: np.ndarray  # (T,) global gain
    light_dir: float
    tint: np.ndarray
    noise_sigma: float
    cam_blur: float
    cam_resample: float
    rng_noise_seed: int
    rng_channel_seed: int
    rng_speech_seed: int


def _make_scene(spec: ClipSpec, pool_seed: int, size: int) -> _Scene:
    ss = np.random.SeedSequence([pool_seed, spec.base_seed, 101])
    r_scene, r_motion, r_speech, r_channel, r_noise = (np.random.default_rng(s) for s in ss.spawn(5))
    ident = make_identity(pool_seed, spec.identity)
    n = spec.num_frames
    dur = n / FPS
    utt = make_utterance(r_speech, ident.voice, dur)
    bg = make_background(ident, size, r_scene)

    # Head motion: slow wandering + speech-coupled nods; some people barely move, some a lot.
    liveliness = r_motion.uniform(0.3, 1.6)
    mouth = mouth_track(utt, FPS, n)
    nod = np.convolve(mouth, np.ones(5) / 5, "same")
    base = dict(dx=r_motion.uniform(-0.04, 0.04), dy=r_motion.uniform(-0.03, 0.03), scale=r_motion.uniform(0.9, 1.1))
    tr = {k: _smooth(r_motion, n, r_motion.uniform(10, 40)) for k in ("dx", "dy", "roll", "yaw", "pitch", "scale", "gx", "gy")}
    poses = [
        Pose(
            dx=base["dx"] + 0.02 * liveliness * tr["dx"][i],
            dy=base["dy"] + 0.012 * liveliness * tr["dy"][i],
            scale=base["scale"] * (1 + 0.02 * liveliness * tr["scale"][i]),
            roll=3.0 * liveliness * tr["roll"][i],
            yaw=0.25 * liveliness * tr["yaw"][i],
            pitch=0.15 * liveliness * tr["pitch"][i] + 0.25 * liveliness * nod[i],
            gaze_x=0.5 * tr["gx"][i],
            gaze_y=0.3 * tr["gy"][i],
            brow_raise=float(max(0.0, tr["pitch"][i])),
        )
        for i in range(n)
    ]
    blinks = np.zeros(n)
    t = r_motion.uniform(0.2, 2.0)
    profile = np.array([0.45, 0.9, 1.0, 0.6, 0.25])
    while t < dur:
        i = int(t * FPS)
        seg = blinks[i : i + len(profile)]
        blinks[i : i + len(profile)] = np.maximum(seg, profile[: len(seg)])
        t += r_motion.exponential(1.0 / r_motion.uniform(0.2, 0.5)) + 0.3

    light = 1.0 + r_scene.uniform(0.0, 0.08) * _smooth(r_scene, n, 20)
    if r_scene.random() < 0.2:  # a light switching / cloud: a step in exposure
        k = int(r_scene.integers(1, max(n - 1, 2)))
        light[k:] *= r_scene.uniform(0.8, 1.2)
    return _Scene(
        ident=ident,
        background=bg,
        poses=poses,
        blinks=blinks,
        utt=utt,
        light=light * r_scene.uniform(0.8, 1.15),
        light_dir=float(r_scene.uniform(-0.35, 0.35)),
        tint=np.array([r_scene.uniform(0.93, 1.07), 1.0, r_scene.uniform(0.93, 1.07)], np.float32),
        noise_sigma=float(r_scene.uniform(0.5, 4.0)),
        # Mild focus / sensor-resolution loss only: a camera that blurs the whole frame as much as
        # a face generator blurs the face would make "soft face" no evidence at all.
        cam_blur=float(r_scene.uniform(0.3, 0.7)) if r_scene.random() < 0.3 else 0.0,
        cam_resample=float(r_scene.uniform(0.7, 0.9)) if r_scene.random() < 0.25 else 1.0,
        rng_noise_seed=int(r_noise.integers(2**31)),
        rng_channel_seed=int(r_channel.integers(2**31)),
        rng_speech_seed=int(r_speech.integers(2**31)),
    )


def _camera(frames: np.ndarray, sc: _Scene) -> np.ndarray:
    """Exposure, light direction, white balance, focus, sensor resolution and noise: the same
    processing for real and fake clips, so that none of it is a fake cue. In place, in chunks of
    frames so that a long clip does not need a float copy of all of it."""
    n, size = frames.shape[0], frames.shape[1]
    rng = np.random.default_rng(sc.rng_noise_seed)
    ramp = (1.0 + sc.light_dir * np.linspace(-1, 1, size, dtype=np.float32))[None, :, None] * sc.tint
    light = sc.light.astype(np.float32)
    small = max(int(size * sc.cam_resample), 8)
    # Sensor noise: windows at random offsets into a small bank of Gaussian noise (drawing fresh
    # normals for every pixel of every frame would cost more than rendering the frame).
    # A noise-free scene (the face-swap donor, one frame at a time) skips the bank: adding its zeros
    # changes no value, and the draws come from this function's own generator.
    noisy = sc.noise_sigma != 0
    pad = 24
    if noisy:
        bank = rng.standard_normal((4, size + pad, size + pad, 3), dtype=np.float32) * np.float32(sc.noise_sigma)
        ks = rng.integers(0, 4, n)
        offs = rng.integers(0, pad, (n, 2))
    chunk = 64
    for c0 in range(0, n, chunk):
        f = frames[c0 : c0 + chunk].astype(np.float32) * (light[c0 : c0 + chunk, None, None, None] * ramp)
        for j in range(len(f)):
            i = c0 + j
            g = f[j]
            if sc.cam_resample < 1.0:
                g = cv2.resize(cv2.resize(g, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                               interpolation=cv2.INTER_LINEAR)
            if sc.cam_blur > 0:
                g = cv2.GaussianBlur(g, (0, 0), sc.cam_blur)
            f[j] = g + bank[ks[i], offs[i, 0] : offs[i, 0] + size, offs[i, 1] : offs[i, 1] + size] if noisy else g
        np.clip(f, 0, 255, out=f)
        frames[c0 : c0 + chunk] = f.astype(np.uint8)
    return frames


def _other_utterance(voice: Voice, dur: float, seed: list[int], regular: bool = False) -> Utterance:
    return make_utterance(np.random.default_rng(seed), voice, dur, regular=regular)


def render_clip(spec: ClipSpec, pool_seed: int, size: int) -> Clip:
    """Frames, audio and manipulation details of one clip."""
    sc = _make_scene(spec, pool_seed, size)
    n = spec.num_frames
    dur = n / FPS
    n_samples = n * SAMPLE_RATE // FPS
    rng = np.random.default_rng([pool_seed, spec.clip_seed, 202])
    p = spec.params
    ident = sc.ident
    info: dict[str, Any] = {}

    # ---------------- audio ----------------
    real_audio = render_speech(sc.utt, ident.voice, np.random.default_rng(sc.rng_speech_seed))[:n_samples]
    mouth_real = mouth_track(sc.utt, FPS, n)

    def session(x: np.ndarray) -> np.ndarray:
        """The recording session's room, microphone and noise (same realisation for every call)."""
        return apply_channel(x, np.random.default_rng(sc.rng_channel_seed))

    # As with the camera, the manipulations work on the captured track. A speech synthesiser /
    # voice converter imitates a recording (some room, microphone and noise) and its vocoder is
    # the last stage, so its traces are not buried under the session's noise.
    audio = session(real_audio)
    audio_content_mouth: np.ndarray | None = None  # mouth track matching the fake audio's words
    afam = spec.audio_family
    if afam is not None:
        ap = spec.audio_periods
        if afam == "voiceconv":
            src = make_identity(pool_seed, spec.other).voice if spec.other is not None else ident.voice
            q = p["conversion_quality"]
            # The conversion model gets the target's pitch roughly right but keeps some of the
            # source's vocal tract and voice quality.
            conv = Voice(
                f0=ident.voice.f0 * float(rng.uniform(0.93, 1.07)),
                f0_range=src.f0_range,
                formant_scale=q * ident.voice.formant_scale + (1 - q) * src.formant_scale,
                rate=ident.voice.rate,
                breathiness=src.breathiness,
                jitter=src.jitter,
                shimmer=src.shimmer,
                tilt=q * ident.voice.tilt + (1 - q) * src.tilt,
            )
            alt = apply_channel(render_speech(sc.utt, conv, rng)[:n_samples], rng)
            alt = vocoder_artefacts(alt, p["vocoder"], rng)
        elif afam == "tts":
            flat = ident.voice.monotone()
            tts_utt = sc.utt if p["keep_timing"] else _other_utterance(ident.voice, dur, [pool_seed, spec.clip_seed, 3], regular=True)
            alt = apply_channel(render_speech(tts_utt, flat, rng, breaths=False)[:n_samples], rng)
            alt = vocoder_artefacts(alt, p["vocoder"], rng)
            audio_content_mouth = mouth_track(tts_utt, FPS, n)
        elif afam == "splice":
            other = make_identity(pool_seed, spec.other)
            o_utt = _other_utterance(other.voice, dur, [pool_seed, spec.clip_seed, 4])
            alt = render_speech(o_utt, other.voice, rng)[:n_samples]
            # recorded elsewhere (other room and mic), else in the same session
            alt = apply_channel(alt, rng) if rng.random() < p["channel_mismatch"] else session(alt)
            audio_content_mouth = mouth_track(o_utt, FPS, n)
        elif afam == "audioswap":
            o_utt = _other_utterance(ident.voice, dur, [pool_seed, spec.clip_seed, 5])
            alt = session(render_speech(o_utt, ident.voice, rng)[:n_samples])  # same person, same session
            audio_content_mouth = mouth_track(o_utt, FPS, n)
        else:  # pragma: no cover - the plan only produces known families
            raise ValueError(f"unknown audio family {afam!r}")
        alt = alt * (np.std(audio) / (np.std(alt) + 1e-9))
        audio = crossfade_insert(audio, alt, ap)
        if audio_content_mouth is not None:
            audio_content_mouth = _blend_tracks(mouth_real, audio_content_mouth, _frame_mask(ap, n))

    # ---------------- video ----------------
    vfam = spec.video_family
    vmask = _frame_mask(spec.video_periods, n) if vfam else np.zeros(n, bool)
    mouth = mouth_real
    if vfam == "lipsync":
        if spec.audio_family is not None and audio_content_mouth is not None:
            # Both modalities fake: the lips are re-synced to the fake audio's words.
            driver = audio_content_mouth
        else:
            # A window out of a longer utterance: another recording's speech does not share this
            # one's pauses (every utterance starts and ends in silence, which would line up by
            # chance), and a window keeps the jaw motion continuous (no tell-tale jump).
            other = _other_utterance(ident.voice, 2 * dur, [pool_seed, spec.clip_seed, 6])
            off = int(rng.integers(n // 4, n + 1))
            driver = mouth_track(other, FPS, 2 * n)[off : off + n]
        mouth = _blend_tracks(mouth_real, driver, vmask)
    frames = np.stack([render_frame(ident, sc.background, sc.poses[i], float(mouth[i]), float(sc.blinks[i]))
                       for i in range(n)])
    # The camera first: a deepfake tool edits footage that was already captured, so the regions
    # it regenerates lose the camera's sensor noise / optics (a classic forensic trace), instead of
    # being "filmed" again with the rest of the frame.
    frames = _camera(frames, sc)
    if vfam == "faceswap":
        frames = _face_swap(frames, sc, spec, pool_seed, mouth, vmask, rng, info)
    elif vfam == "lipsync":
        frames = _lip_artefacts(frames, sc, vmask, p["lip_artefact"], rng)
    elif vfam == "gan":
        frames = _gan_artefacts(frames, sc, vmask, p, rng, info)

    return Clip(frames=frames, audio=audio[:n_samples], crf=int(p.get("crf", 23)),
                audio_bitrate=int(p.get("audio_bitrate", 48000)), info=info, mouth=mouth)


def _one_frame(sc: _Scene, i: int) -> _Scene:
    """The scene restricted to frame `i` (for processing a single frame with `_camera`)."""
    return dataclasses.replace(sc, light=sc.light[i : i + 1])


def _face_swap(frames: np.ndarray, sc: _Scene, spec: ClipSpec, pool_seed: int, mouth: np.ndarray,
               vmask: np.ndarray, rng: np.random.Generator, info: dict[str, Any]) -> np.ndarray:
    """Paste the donor's inner face (same pose and expression) with a feathered seam, partial
    colour correction, a generator-resolution blur and frame-to-frame alignment jitter."""
    donor = make_identity(pool_seed, spec.donor)
    s = spec.params["strength"]
    size = frames.shape[1]
    feather = float(np.interp(s, [0, 1], [4.0, 0.8])) * size / 160
    mismatch = s * float(rng.uniform(0.5, 1.0))
    blur = float(np.interp(s, [0, 1], [0.3, 1.8])) * rng.uniform(0.7, 1.0)
    # Per-frame alignment of the pasted face (independent landmark fits): the seam shimmers.
    jitter = 0.008 * s
    info.update(swap_feather=round(feather, 2), swap_colour_mismatch=round(mismatch, 3))
    out = frames.copy()
    # The donor face comes out of the generator: the scene's lighting (so that colour correction
    # has something to match) but none of the camera's noise, blur or resolution loss.
    generator = dataclasses.replace(sc, noise_sigma=0.0, cam_blur=0.0, cam_resample=1.0)
    for i in np.flatnonzero(vmask):
        pose = sc.poses[i]
        dp = Pose(**{**pose.__dict__, "dx": pose.dx + rng.normal(0, jitter), "dy": pose.dy + rng.normal(0, jitter),
                     "scale": pose.scale * (1 + rng.normal(0, jitter))})
        d = render_frame(donor, sc.background, dp, float(mouth[i]), float(sc.blinks[i]))
        d = _camera(d[None], _one_frame(generator, i))[0].astype(np.float32)
        if blur > 0.05:
            d = cv2.GaussianBlur(d, (0, 0), blur)
        m = region_mask(face_regions(sc.ident, pose, size)["inner"], size, pose.roll, feather)[..., None]
        t = frames[i].astype(np.float32)
        wsum = m.sum() + 1e-6
        d_mean = (d * m).sum((0, 1)) / wsum
        t_mean = (t * m).sum((0, 1)) / wsum
        d = d + (t_mean - d_mean) * (1.0 - mismatch)
        out[i] = np.clip(t * (1 - m) + d * m, 0, 255).astype(np.uint8)
    return out


def _lip_artefacts(frames: np.ndarray, sc: _Scene, vmask: np.ndarray, a: float, rng: np.random.Generator) -> np.ndarray:
    """A lip-sync generator re-renders the lower face at low resolution: softer, slightly off
    in colour. `a` = 0 leaves no visual trace (only the audio-visual mismatch remains)."""
    if a <= 0:
        return frames
    size = frames.shape[1]
    out = frames.copy()
    tint = 1.0 + a * rng.normal(0, 0.04, 3).astype(np.float32)
    for i in np.flatnonzero(vmask):
        pose = sc.poses[i]
        m = region_mask(face_regions(sc.ident, pose, size)["lower"], size, pose.roll, 2.5 * size / 160)[..., None]
        f = frames[i].astype(np.float32)
        small = max(int(size / (1 + 1.5 * a)), 8)
        g = cv2.resize(cv2.resize(f, (small, small), interpolation=cv2.INTER_AREA), (size, size), interpolation=cv2.INTER_LINEAR)
        g = cv2.GaussianBlur(g, (0, 0), 0.3 + 1.2 * a) * tint
        out[i] = np.clip(f * (1 - m) + g * m, 0, 255).astype(np.uint8)
    return out


def _gan_artefacts(frames: np.ndarray, sc: _Scene, vmask: np.ndarray, p: dict[str, Any], rng: np.random.Generator,
                   info: dict[str, Any]) -> np.ndarray:
    """Face-region artefacts of a face generator: upsampling from a low resolution, blur,
    per-frame brightness flicker, transposed-convolution checkerboard."""
    s = p["strength"]
    kinds = p["gan_kinds"]
    size = frames.shape[1]
    out = frames.copy()
    yy, xx = np.mgrid[0:size, 0:size]
    checker = np.where((yy + xx) % 2 == 0, 1.0, -1.0).astype(np.float32)[..., None]
    for i in np.flatnonzero(vmask):
        pose = sc.poses[i]
        m = region_mask(face_regions(sc.ident, pose, size)["face"], size, pose.roll, 3.0 * size / 160)[..., None]
        f = frames[i].astype(np.float32)
        g = f.copy()
        if "upsample" in kinds:
            small = max(int(size / (1.3 + 1.7 * s)), 8)
            g = cv2.resize(cv2.resize(g, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                           interpolation=cv2.INTER_NEAREST if s > 0.6 else cv2.INTER_LINEAR)
        if "blur" in kinds:
            g = cv2.GaussianBlur(g, (0, 0), 0.4 + 1.4 * s)
        if "flicker" in kinds:
            g = g * (1.0 + rng.normal(0, 0.06 * s))
        if "checker" in kinds:
            g = g + checker * (1.5 + 5.0 * s)
        out[i] = np.clip(f * (1 - m) + g * m, 0, 255).astype(np.uint8)
    info["gan_kinds"] = list(kinds)
    return out


def spoken_content(spec: ClipSpec, pool_seed: int) -> list[tuple[str, float, float]]:
    """The syllables heard in the clip's audio track as (label, start_s, end_s), without rendering:
    the base utterance, with the inserted utterance's syllables inside the audio fake periods when
    the manipulation changes the words (LAV-DF's `transcript`/`timestamps`)."""
    ident = make_identity(pool_seed, spec.identity)
    dur = spec.num_frames / FPS
    r_speech = np.random.default_rng(np.random.SeedSequence([pool_seed, spec.base_seed, 101]).spawn(5)[2])
    base = make_utterance(r_speech, ident.voice, dur)
    alt: Utterance | None = None
    if spec.audio_family == "tts" and not spec.params.get("keep_timing", False):
        alt = _other_utterance(ident.voice, dur, [pool_seed, spec.clip_seed, 3], regular=True)
    elif spec.audio_family == "splice" and spec.other is not None:
        alt = _other_utterance(make_identity(pool_seed, spec.other).voice, dur, [pool_seed, spec.clip_seed, 4])
    elif spec.audio_family == "audioswap":
        alt = _other_utterance(ident.voice, dur, [pool_seed, spec.clip_seed, 5])

    def inside(a: float, b: float) -> bool:
        mid = (a + b) / 2
        return any(s <= mid < e for s, e in spec.audio_periods)

    words = [(lab, a, b) for lab, (a, b) in zip(base.labels, base.syllables) if alt is None or not inside(a, b)]
    if alt is not None:
        words += [(lab, a, b) for lab, (a, b) in zip(alt.labels, alt.syllables) if inside(a, b)]
    return sorted(words, key=lambda w: w[1])
