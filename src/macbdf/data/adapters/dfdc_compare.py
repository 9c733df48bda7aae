"""Per-modality labels for DFDC fakes, derived by comparing each fake with its original.

DFDC labels say only REAL/FAKE per video, yet some fakes carry a swapped voice and some a swapped
face. Every fake names its ``original``; both are the same recording, so a track that still matches
the original's is taken as real and one that departs from it as fake:

* audio: log-magnitude spectrograms (16 kHz, 32 ms windows, 16 ms hop) of the first ``seconds``;
  the best Pearson correlation over small time shifts (re-encoding delays) is the similarity;
  below ``audio_threshold`` -> audio fake.
* video: ``num_frames`` frames spread over the first ``seconds`` at the same times, grey,
  downscaled to 160 px; the 99th percentile of the 8x8-block mean absolute difference is the
  difference; above ``video_threshold`` (grey levels) -> video fake. Re-encoding noise is spread
  thinly; a swapped face changes a compact region strongly.

The scores go to ``extra["dfdc_audio_similarity"]`` / ``extra["dfdc_video_difference"]`` so that
the thresholds can be revisited without decoding again. A fake whose original is missing, or a
file that cannot be decoded, keeps ``None`` labels for the undecided track (noted in
``extra["dfdc_compare_error"]``). This is a heuristic: the thresholds were checked on synthetic
clips (tests/data/test_dfdc_compare.py), not on DFDC itself.

Example:
    >>> recs = load_dataset("dfdc", root, modality_labels="compare")   # doctest: +SKIP
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from macbdf.data.manifest import SampleRecord

log = logging.getLogger("macbdf.data.adapters")

SAMPLE_RATE = 16000


def _log_spec(x: np.ndarray, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    """(frames, n_fft // 2 + 1) log-magnitude spectrogram."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(n_fft).astype(np.float32)
    return np.log1p(np.abs(np.fft.rfft(frames, axis=1)) * 10.0)


def audio_similarity(a: np.ndarray, b: np.ndarray, max_shift: int = 4) -> float:
    """Best correlation of two log spectrograms over shifts of up to ``max_shift`` hops.

    Example:
        >>> rng = np.random.default_rng(0); x = rng.standard_normal(16000).astype(np.float32)
        >>> round(audio_similarity(x, x), 3)
        1.0
    """
    sa, sb = _log_spec(a), _log_spec(b)
    best = -1.0
    for s in range(-max_shift, max_shift + 1):
        x = sa[max(s, 0):]
        y = sb[max(-s, 0):]
        n = min(len(x), len(y))
        if n < 4:
            continue
        u, v = x[:n].ravel() - x[:n].mean(), y[:n].ravel() - y[:n].mean()
        den = float(np.sqrt((u * u).sum() * (v * v).sum()))
        if den > 0:
            best = max(best, float((u * v).sum()) / den)
    return best


def video_difference(frames_a: list[np.ndarray], frames_b: list[np.ndarray], block: int = 8) -> float:
    """99th percentile of block-mean absolute grey differences over paired frames (0-255)."""
    vals = []
    for fa, fb in zip(frames_a, frames_b):
        h, w = min(fa.shape[0], fb.shape[0]), min(fa.shape[1], fb.shape[1])
        d = np.abs(fa[:h, :w].astype(np.float32) - fb[:h, :w].astype(np.float32))
        hb, wb = h // block, w // block
        if hb == 0 or wb == 0:
            continue
        # (hb*block, wb*block) -> (hb, wb) block means
        d = d[: hb * block, : wb * block].reshape(hb, block, wb, block).mean(axis=(1, 3))
        vals.append(d.ravel())
    if not vals:
        return float("nan")
    return float(np.percentile(np.concatenate(vals), 99))


def _frames(path: str, seconds: float, num_frames: int) -> list[np.ndarray]:
    from macbdf.media.decode import iter_video_frames

    fps = num_frames / seconds
    return [f.gray(160).copy() for _, f in iter_video_frames(path, fps, max_frames=num_frames)]


def _audio(path: str, seconds: float) -> np.ndarray | None:
    from macbdf.media.decode import AudioReader

    with AudioReader(path, SAMPLE_RATE) as r:
        if not r.has_audio:
            return None
        return r.read(0, int(seconds * SAMPLE_RATE))


def derive_modality_labels(records: list[SampleRecord], *, seconds: float = 4.0, num_frames: int = 8,
                           audio_threshold: float = 0.9, video_threshold: float = 12.0,
                           progress: bool = True) -> list[SampleRecord]:
    """Fill ``video_label`` / ``audio_label`` (and ``category``) of DFDC fakes in place."""
    from tqdm import tqdm

    by_id = {r.video_id: r for r in records}
    fakes = [r for r in records if r.label == 1]
    decided = 0
    for r in tqdm(fakes, desc="dfdc: comparing fakes with originals", unit="video", disable=not progress):
        orig = by_id.get(r.extra.get("original") or "")
        if orig is None or not Path(orig.path).is_file() or not Path(r.path).is_file():
            r.extra["dfdc_compare_error"] = "original not available"
            continue
        try:
            fa, fo = _audio(r.path, seconds), _audio(orig.path, seconds)
            if fa is not None and fo is not None:
                sim = audio_similarity(fa, fo)
                r.extra["dfdc_audio_similarity"] = round(sim, 4)
                r.audio_label = int(sim < audio_threshold)
            elif fa is None and fo is None:
                r.audio_label = 0  # no audio on either side: nothing was swapped
            diff = video_difference(_frames(r.path, seconds, num_frames), _frames(orig.path, seconds, num_frames))
            if np.isfinite(diff):
                r.extra["dfdc_video_difference"] = round(diff, 3)
                r.video_label = int(diff > video_threshold)
        except Exception as e:  # one bad file must not stop the others (prepare reports it later)
            r.extra["dfdc_compare_error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        if r.video_label is not None and r.audio_label is not None:
            if not (r.video_label or r.audio_label):
                # Labelled FAKE but both tracks match: keep the label, say the visual track is the
                # suspect (DFDC's usual manipulation), and flag it for inspection.
                r.video_label = 1
                r.extra["dfdc_compare_uncertain"] = True
            r.category = ("FV" if r.video_label else "RV") + ("FA" if r.audio_label else "RA")
            decided += 1
    log.info("dfdc: per-modality labels derived for %d of %d fakes", decided, len(fakes))
    return records
