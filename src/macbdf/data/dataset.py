"""Torch Dataset over a prepared cache, and ``collate`` -> the model's batch dict.

Each item is a fixed window of ``num_frames`` frames: a random window in training, the centred
window in evaluation (``eval_window="first"`` for the first one); clips shorter than the window are
padded and masked. Reads are memory-mapped slices of the safetensors sample files (only the
window's frames are read and copied once).

Batch dict (docs/architecture.md)::

    video             float32 (B, T, 3, S, S)   in [0, 1]
    audio             float32 (B, T * mel_per_frame, n_mels)
    frame_mask        bool    (B, T)            False on padding
    label, video_label, audio_label   float32 (B,)   -1 where the dataset gives no label
    frame_label_video, frame_label_audio  float32 (B, T)
    method_id         int64   (B,)              0 = real; see CacheDataset.method_vocab (joint method)
    video_method_id, audio_method_id  int64 (B,)  the modality's own manipulation, 0 = that track is
                      real in the window (keys of L_vv / L_aa; see macbdf.data.methods)
    audio_recorded    bool    (B,)              the fake audio is an unedited recording, fake only in its
                      pairing with the face (``extra["audio_recorded"]``, set by `macbdf forge` for
                      another speaker's / the same speaker's other words / an A/V offset): the
                      audio-only losses leave it out (models/losses.py, `audio_only_targets`)
    (+ video_id: list[str], start_frame: int64 (B,), num_valid: int64 (B,))

Training augmentation (``augment``, training only; every op keeps the labels true):

    flip   mirror the whole window left-right (p 0.5): seams, blending, mouth motion survive it
    color  one brightness/contrast change per window (x0.8-1.2 contrast, +-0.08 brightness): a face
           swap's colour mismatch is relative to the rest of the frame, which changes with it
    gain   one loudness change per window (+-6 dB, added to the log-mel of the real frames only)

Window labels: where a record has fake periods, the window's sample labels are the maximum of its
frame labels (a random crop of a partially faked clip may be entirely real); otherwise they are
the record's labels.

Example:
    >>> ds = CacheDataset("cache", split="train", num_frames=16, train=True)     # doctest: +SKIP
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate, num_workers=2)  # doctest: +SKIP
    >>> batch = next(iter(loader)); batch["video"].shape                          # doctest: +SKIP
    torch.Size([8, 16, 3, 96, 96])
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from macbdf.config import PreprocessConfig
from macbdf.data.cache import CacheError, load_cache_config, read_cache_manifest, read_window, verify_sample
from macbdf.data.manifest import SampleRecord
from macbdf.data.windows import pad_window, silence_logmel
from macbdf.data.methods import build_modality_vocabs, modality_methods

__all__ = ["CacheDataset", "collate", "build_method_vocab", "AUGMENTATIONS", "parse_augment"]

AUGMENTATIONS = ("flip", "color", "gain")


def parse_augment(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"flip,color"`` / ``["flip"]`` / ``"none"`` / ``None`` -> a checked tuple of op names.

    Example:
        >>> parse_augment("flip, gain"), parse_augment("none")
        (('flip', 'gain'), ())
    """
    if spec is None:
        return ()
    items = [x.strip() for x in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [x for x in items if x and x != "none"]
    bad = [x for x in items if x not in AUGMENTATIONS]
    if bad:
        raise ValueError(f"unknown augmentation {', '.join(bad)} (known: {', '.join(AUGMENTATIONS)}, or none)")
    return tuple(dict.fromkeys(items))


def build_method_vocab(records: Sequence[SampleRecord]) -> dict[str, int]:
    """``{"real": 0, <fake methods sorted>: 1..}``; fakes without a method share ``"fake"``.

    Example:
        >>> from macbdf.data.manifest import SampleRecord as R
        >>> build_method_vocab([R("a", "a", label=1, method="wav2lip"), R("b", "b", label=0, method="real")])
        {'real': 0, 'wav2lip': 1}
    """
    names = set()
    for r in records:
        if r.label == 1:
            names.add(r.method if r.method and r.method != "real" else "fake")
    return {"real": 0, **{m: i + 1 for i, m in enumerate(sorted(names))}}


def _lab(v: int | None) -> float:
    return -1.0 if v is None else float(v)


class CacheDataset(Dataset):
    """Windows of prepared samples from a cache directory.

    Args:
        cache_dir: made by ``macbdf prepare`` (manifest.jsonl or unmerged shard manifests).
        split: keep records of this split (or of any of these splits); None keeps all.
        num_frames: window length T in frames.
        train: random windows (else the centred / first window, deterministic).
        face_size: resize crops to this side when the cache's differs (the model's input size).
        method_vocab: method -> id (0 = real); default built from the cache's records. Methods not
            in a given vocabulary map to ``len(method_vocab)`` (one shared "other" id).
        eval_window: "center" or "first" (evaluation only).
        records: use these records instead of reading the manifest (e.g. a filtered subset).
        augment: training-only augmentations (see the module docstring), e.g. ``("flip", "color")``.
        verify: check each sample file once before its first use (checksum, finite values); a DataLoader
            worker reports what it checked (`collate`'s ``verified_files``) for `mark_verified`.
        modality_vocabs: (video method vocab, audio method vocab) for ``video_method_id`` /
            ``audio_method_id``; default built from the records (`macbdf.data.methods`).

    Bad samples (missing, unreadable, damaged, non-finite) are not fatal: the item is a
    ``{"bad_sample": file, "reason": ...}`` marker that `collate` drops and lists under ``"bad_samples"``.
    """

    def __init__(self, cache_dir: str | os.PathLike, split: str | Sequence[str] | None = None, num_frames: int = 16,
                 train: bool = False, face_size: int | None = None, method_vocab: dict[str, int] | None = None,
                 eval_window: str = "center", records: Sequence[SampleRecord] | None = None,
                 augment: str | Sequence[str] | None = None, verify: bool = True,
                 modality_vocabs: tuple[dict[str, int], dict[str, int]] | None = None):
        self.cache_dir = Path(cache_dir)
        self.cfg = load_cache_config(self.cache_dir) or PreprocessConfig()
        recs = list(records) if records is not None else read_cache_manifest(self.cache_dir)
        if split is not None:
            keep = {split} if isinstance(split, str) else set(split)
            recs = [r for r in recs if r.split in keep]
        self.records: list[SampleRecord] = [r for r in recs if r.file]
        if num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        if eval_window not in ("center", "first"):
            raise ValueError("eval_window must be 'center' or 'first'")
        self.num_frames = int(num_frames)
        self.train = bool(train)
        self.augment = parse_augment(augment) if self.train else ()
        self.eval_window = eval_window
        self.face_size = face_size
        self.method_vocab = dict(method_vocab) if method_vocab is not None else build_method_vocab(self.records)
        vv, av = modality_vocabs if modality_vocabs is not None else build_modality_vocabs(self.records)
        self.video_method_vocab, self.audio_method_vocab = dict(vv), dict(av)
        self.mel_per_frame = self.cfg.mel_per_frame
        self.pad_logmel = silence_logmel(self.cfg)   # padding reads as silence
        self.verify = bool(verify)
        self._verified: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def labels(self) -> np.ndarray:
        """Sample labels of all records (-1 unknown), e.g. for a balanced sampler."""
        return np.array([_lab(r.label) for r in self.records], np.float32)

    def _method_id(self, rec: SampleRecord, label: float) -> int:
        if label != 1.0:
            return 0
        name = rec.method if rec.method and rec.method != "real" else "fake"
        return int(self.method_vocab.get(name, len(self.method_vocab)))

    def _modality_method_ids(self, rec: SampleRecord, vl: float, al: float) -> tuple[int, int]:
        """Per-modality method ids; 0 where that track is not fake in the window (real or unknown)."""
        v, a = modality_methods(rec)
        vid = int(self.video_method_vocab.get(v, len(self.video_method_vocab))) if vl == 1.0 else 0
        aid = int(self.audio_method_vocab.get(a, len(self.audio_method_vocab))) if al == 1.0 else 0
        return vid, aid

    def _start(self, n: int) -> int:
        T = self.num_frames
        if n <= T:
            return 0
        if self.train:
            # torch's RNG: DataLoader workers are seeded distinctly and reproducibly.
            return int(torch.randint(0, n - T + 1, (1,)).item())
        return 0 if self.eval_window == "first" else (n - T) // 2

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """One window; a sample that cannot be used (missing, unreadable, damaged, NaN/Inf) gives
        ``{"bad_sample": file, "reason": one line}`` instead, which `collate` drops and reports."""
        rec = self.records[idx]
        try:
            return self._load(rec)
        except (CacheError, OSError, ValueError, RuntimeError) as e:
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            return {"bad_sample": str(rec.file), "reason": reason, "video_id": rec.video_id}

    def _load(self, rec: SampleRecord) -> dict[str, Any]:
        T, mpf = self.num_frames, self.mel_per_frame
        path = self.cache_dir / rec.file
        verified_now = False
        if self.verify and rec.file not in self._verified:
            # The whole file once: checksum (damaged bytes behind an intact header) and finite values;
            # later windows of it are read as slices. A DataLoader worker reports it in the item
            # (`collate` lists it as batch["verified_files"]) so that the trainer can `mark_verified` it in
            # the main process and the next epoch's fresh workers do not read the whole file again.
            verify_sample(path)
            self._verified.add(rec.file)
            verified_now = True
        win = read_window(path, T, mpf, self._start)
        s = win.start
        if not np.isfinite(win.logmel).all():   # also without verification: never train on NaN/Inf
            raise CacheError(f"sample file {path} holds non-finite values in 'logmel'")
        w = pad_window(win.frames, win.logmel, T, mpf, self.pad_logmel)   # the padding of evaluation/detection
        t = w.length
        out_video = torch.from_numpy(w.video).permute(0, 3, 1, 2).contiguous().float().div_(255.0)  # (T, 3, S, S)
        if self.face_size is not None and out_video.shape[-1] != self.face_size:
            out_video = F.interpolate(out_video, size=(self.face_size, self.face_size), mode="bilinear",
                                      align_corners=False, antialias=True).clamp_(0.0, 1.0)
        audio = torch.from_numpy(w.audio)                                # (T * mpf, M) float32
        mask = torch.from_numpy(w.mask)
        if self.augment and t > 0:
            self._augment(out_video[:t], audio[: min(int(win.logmel.shape[0]), t * mpf)])
        flv = torch.from_numpy(win.frame_label_video)
        fla = torch.from_numpy(win.frame_label_audio)
        flv_t = torch.zeros(T)
        flv_t[:t] = flv.float()
        fla_t = torch.zeros(T)
        fla_t[:t] = fla.float()

        has_periods = bool(rec.fake_periods) or rec.video_fake_periods is not None or rec.audio_fake_periods is not None
        if has_periods and t > 0:
            vl = float(flv_t[:t].max()) if rec.video_label is not None or bool(flv_t.any()) else -1.0
            al = float(fla_t[:t].max()) if rec.audio_label is not None or bool(fla_t.any()) else -1.0
            label = max(vl, al) if rec.label is not None else -1.0
        else:
            vl, al, label = _lab(rec.video_label), _lab(rec.audio_label), _lab(rec.label)
        vmid, amid = self._modality_method_ids(rec, vl, al)
        return {
            "video": out_video, "audio": audio, "frame_mask": mask,
            "label": torch.tensor(label), "video_label": torch.tensor(vl), "audio_label": torch.tensor(al),
            "frame_label_video": flv_t, "frame_label_audio": fla_t,
            "method_id": torch.tensor(self._method_id(rec, label), dtype=torch.int64),
            "video_method_id": torch.tensor(vmid, dtype=torch.int64),
            "audio_method_id": torch.tensor(amid, dtype=torch.int64),
            "audio_recorded": torch.tensor(bool(rec.extra.get("audio_recorded")) and al == 1.0),
            "start_frame": torch.tensor(s, dtype=torch.int64), "num_valid": torch.tensor(t, dtype=torch.int64),
            "video_id": rec.video_id, **({"verified_file": str(rec.file)} if verified_now else {}),
        }

    def mark_verified(self, files: Sequence[str] | None) -> None:
        """Record sample files as verified (checked by a DataLoader worker, see `collate`'s "verified_files")."""
        self._verified.update(files or ())

    def _augment(self, video: torch.Tensor, audio: torch.Tensor) -> None:
        """In place on the window's real frames: video (t, 3, S, S) in [0, 1], audio (t * mpf, M) log-mel.

        Uses torch's global RNG, which the trainer seeds per item (exact resume, distinct workers)."""
        r = torch.rand(4)
        if "flip" in self.augment and r[0] < 0.5:
            video.copy_(video.flip(-1))
        if "color" in self.augment:
            contrast = 0.8 + 0.4 * float(r[1])
            bright = 0.16 * float(r[2]) - 0.08
            mean = video.mean()
            video.sub_(mean).mul_(contrast).add_(mean + bright).clamp_(0.0, 1.0)
        if "gain" in self.augment and audio.numel():
            # log of mel power: a gain of g dB adds g / 10 * ln 10; the floor (log eps) moves too, as it
            # would for a quieter or louder recording.
            audio.add_((12.0 * float(r[3]) - 6.0) / 10.0 * float(np.log(10.0)))


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack per-sample dicts into the batch dict; non-tensor fields become lists.

    Items whose windows differ in face size are resized to the first item's size. Bad-sample markers
    (see `CacheDataset`) are left out and listed as ``batch["bad_samples"] = [(file, reason), ...]``
    (the key is present only when there are some; a batch of only bad samples has no other key). Files
    whose checksum an item's load verified are listed as ``batch["verified_files"]`` (present only then).

    Example:
        >>> import torch
        >>> it = {"video": torch.zeros(4, 3, 8, 8), "audio": torch.zeros(16, 64), "frame_mask": torch.ones(4, dtype=torch.bool),
        ...       "label": torch.tensor(1.0), "video_id": "a"}
        >>> b = collate([it, it]); b["video"].shape, b["video_id"]
        (torch.Size([2, 4, 3, 8, 8]), ['a', 'a'])
    """
    if not items:
        raise ValueError("collate of an empty list")
    bad = [(it["bad_sample"], it["reason"]) for it in items if "bad_sample" in it]
    checked = [it["verified_file"] for it in items if "verified_file" in it]
    items = [{k: v for k, v in it.items() if k != "verified_file"} if "verified_file" in it else it
             for it in items if "bad_sample" not in it]
    batch: dict[str, Any] = {"bad_samples": bad} if bad else {}
    if checked:
        batch["verified_files"] = checked
    if not items:
        return batch   # every sample of the batch was bad: only the report
    for key in items[0]:
        vals = [it[key] for it in items]
        if isinstance(vals[0], torch.Tensor):
            if key == "video":
                S = vals[0].shape[-1]
                vals = [v if v.shape[-1] == S else F.interpolate(v, size=(S, S), mode="bilinear",
                                                                align_corners=False, antialias=True) for v in vals]
            batch[key] = torch.stack(vals)
        else:
            batch[key] = vals
    return batch

