"""Render the clips of one source segment (its real copy and its fakes) to MP4.

Real copies and fakes take exactly the same path: cached face crops (decoded and cropped once per
source) -> optional video family -> optional audio family -> loudness normalisation (every clip
with audio) -> :func:`macbdf.synth.encode.write_mp4` with one codec, CRF, audio bitrate, 16 kHz and
25 fps; a clip planned without audio is written with no audio stream at all. So container, codec,
bitrate, duration and loudness carry no label.

Example:
    >>> from macbdf.forge.render import render_group     # doctest: +SKIP
    >>> render_group([plan.to_dict() for plan in clips_of_one_segment], settings, "out", "out/.forge_cache")  # doctest: +SKIP
    [('3f2a9c1d0b7e', None), ...]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from macbdf.forge.audio_fakes import apply_audio_family, normalize_loudness, shifted
from macbdf.forge.sources import FPS, SAMPLE_RATE, SegmentCache
from macbdf.forge.video_fakes import face_swap, mouth_retime, self_blend

_CACHE: SegmentCache | None = None


def _segment_cache(cache_dir: str) -> SegmentCache:
    global _CACHE
    if _CACHE is None or str(_CACHE.dir) != str(cache_dir):
        if _CACHE is not None:
            _CACHE.close()
        _CACHE = SegmentCache(cache_dir)
    return _CACHE


def render_clip(clip: dict[str, Any], cache: SegmentCache) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(frames (T, S, S, 3) uint8, audio float32 or None, video blend masks or None) of one planned clip."""
    src, j = clip["src_id"], clip["segment"]
    frames = cache.frames(src, j)
    masks = None
    vf = clip.get("video_family")
    if vf:
        lm = cache.landmarks(src, j)
        rng = np.random.default_rng(clip["video_params"]["seed"])
        if vf == "self_blend":
            frames, masks = self_blend(frames, lm, rng)
        elif vf == "mouth_retime":
            span = clip["video_params"].get("span")
            frames, masks = mouth_retime(frames, lm, int(clip["video_params"]["shift_frames"]),
                                         tuple(span) if span else None)
        elif vf == "face_swap":
            d = clip["video_donor"]
            frames, masks = face_swap(frames, lm, cache.frames(d["src_id"], d["segment"]),
                                      cache.landmarks(d["src_id"], d["segment"]), rng)
        else:
            raise ValueError(f"unknown video family {vf!r}")
    audio = None
    if clip["has_audio"]:
        n = clip["n_frames"] * SAMPLE_RATE // FPS
        start = clip["start_frame"] * SAMPLE_RATE // FPS
        clip_audio = cache.audio(src)
        af = clip.get("audio_family")
        if af:
            donor = None
            if clip.get("audio_donor"):
                d = clip["audio_donor"]
                donor_clip = cache.audio(d["src_id"])
                donor = donor_clip[d["start_sample"]:]
            audio = apply_audio_family(af, clip.get("audio_params") or {}, clip_audio=clip_audio, start=start, n=n,
                                       sr=SAMPLE_RATE, donor_audio=donor)
        else:
            audio = shifted(clip_audio, start, n, 0)
        audio = normalize_loudness(audio, SAMPLE_RATE)
    return frames, audio, masks


def render_group(clips: list[dict[str, Any]], settings: dict[str, Any], out_dir: str, cache_dir: str,
                 ) -> list[tuple[str, str | None]]:
    """Worker entry: write every clip of ``clips`` not yet on disk; [(clip_id, error or None)]."""
    from macbdf.synth.encode import write_mp4

    cache = _segment_cache(cache_dir)
    out = []
    for clip in clips:
        path = Path(out_dir) / clip["file"]
        if path.is_file():
            out.append((clip["clip_id"], None))
            continue
        try:
            frames, audio, _ = render_clip(clip, cache)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(path, frames, audio, fps=FPS, sample_rate=SAMPLE_RATE, crf=int(settings["crf"]),
                      audio_bitrate=int(settings["audio_bitrate"]))
            out.append((clip["clip_id"], None))
        except Exception as e:  # noqa: BLE001 - one bad clip must not abort the batch; it is reported
            out.append((clip["clip_id"], f"{type(e).__name__}: {e}"[:300]))
    return out
