"""The MACB-DF trainer: AdamW + warm-up/cosine, OM-Pareto, AMP, DDP, exact resume, logs, best checkpoint.

``train(TrainConfig(...))`` (or ``macbdf train``) trains a model on a prepared cache and writes::

    RUN_DIR/model.safetensors, config.json   final model (+ calibrated threshold), see macbdf.checkpoint
    RUN_DIR/best/                            the checkpoint with the best validation AUC
    RUN_DIR/train_state.pt                   everything --resume needs (weights_only loadable)
    RUN_DIR/metrics.jsonl                    one JSON record per line: kind = train | val | epoch | skip
    RUN_DIR/tb/                              TensorBoard event files
    RUN_DIR/summary.json                     the dict train() returns

The trainer is split by responsibility: `macbdf_train.config` (TrainConfig, validation, flags),
`build` (run directory, model, data, optimiser set-up), `loop` (epochs, one step, logging, cadence),
`run_state` (checkpoints, train state, resume), `optim` (parameter groups, lr schedule), `epochs`
(balanced index, per-sample seeds), `rng` (global RNG state), `logger` (metrics.jsonl, TensorBoard),
`distributed` (DDP). This module holds the validation pass and `train()`.

Determinism and exact resume: the data order of an epoch depends only on ``(seed, epoch)``; each
sample's random crop is drawn under a seed derived from ``(seed, epoch, index)`` (so worker count and
resume point do not matter); the model's own randomness uses the global torch RNG whose state is saved
in every checkpoint. On CPU a run killed at any point and resumed with ``--resume`` ends with the same
weights and metrics as an uninterrupted run.

Example:
    >>> from macbdf_train.trainer import TrainConfig, train
    >>> s = train(TrainConfig(data="cache", model="tiny", out="runs/a", steps=50, batch_size=8))  # doctest: +SKIP
    >>> s["final_val"]["auc"], s["threshold"]                                                     # doctest: +SKIP
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from macbdf.checkpoint import TRAIN_STATE_FILE
from macbdf_train import distributed as D
from macbdf_train.build import BuildMixin
from macbdf_train.config import TrainConfig, TrainError, parse_overrides
from macbdf_train.epochs import balanced_index
from macbdf_train.loop import LoopMixin
from macbdf_train.loop import to_device as _to_device
from macbdf_train.optim import lr_factor
from macbdf_train.run_state import StateMixin

__all__ = ["TrainConfig", "TrainError", "train", "parse_overrides", "lr_factor", "balanced_index"]

# Deterministic mode (the CPU default) also fills every new tensor with NaN, a guard against reading
# uninitialised memory: ~5,000 fills per `small` step, ~5 % of a CPU training step (the same steps
# alternating with and without the fill in one process: 1.03 vs 1.10 s median). Nothing in training reads
# uninitialised memory (a run's weights and metrics are bit-identical with and without the fill:
# tests/train/test_trainer.py::test_no_nan_fill_changes_nothing), so the fill is off while train() runs.
FILL_UNINITIALIZED = False


class _Trainer(BuildMixin, StateMixin, LoopMixin):
    """One training run: set-up (`BuildMixin`), checkpoints and resume (`StateMixin`), the loop
    (`LoopMixin`) and, here, the validation pass."""

    def __init__(self, cfg: TrainConfig, info: D.DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.device = info.device
        self.run_dir = Path(cfg.out)
        self.state_path = self.run_dir / TRAIN_STATE_FILE

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any]:
        from macbdf.inference import sigmoid   # the detector's and evaluate's logits -> probabilities
        from macbdf.metrics.sample import best_threshold, binary_metrics, roc_auc

        n = len(self.val_ds)
        if n == 0:
            return {}
        self.joint.eval()
        model = self._shipped()
        idx = list(range(self.info.rank, n, self.info.world_size))
        bs = self.cfg.batch_size
        batches = [idx[i : i + bs] for i in range(0, len(idx), bs)]
        loader = torch.utils.data.DataLoader(self.val_ds, batch_sampler=batches, num_workers=self.cfg.workers,
                                             collate_fn=self.collate, pin_memory=self.device.type == "cuda",
                                             generator=torch.Generator().manual_seed(self.cfg.seed))
        rows = []
        for b_idx, batch in zip(batches, loader):
            self.val_ds.mark_verified(batch.pop("verified_files", None))
            bad = batch.pop("bad_samples", None)
            if bad:
                self._note_bad_samples(bad)
                gone = {f for f, _ in bad}
                b_idx = [i for i in b_idx if str(self.val_ds.records[i].file) not in gone]
                if not b_idx:
                    continue
            batch = _to_device(batch, self.device)
            with self._autocast():
                out = model(batch)
            cols = [torch.tensor(b_idx, dtype=torch.float64, device=self.device)]
            for k in ("logit", "audio_logit", "video_logit"):
                cols.append(out[k].detach().double())
            for k in ("label", "audio_label", "video_label"):
                cols.append(batch[k].detach().double())
            rows.append(torch.stack(cols, 1))
        local = torch.cat(rows, 0) if rows else torch.zeros((0, 7), dtype=torch.float64, device=self.device)
        allr = D.all_gather_rows(local).cpu().numpy()
        allr = allr[np.argsort(allr[:, 0], kind="stable")]
        logit, la, lv, y, ya, yv = (allr[:, i] for i in range(1, 7))
        prob = sigmoid(logit)
        thr = best_threshold(y, prob, "acc")
        thr = float(thr) if math.isfinite(float(thr)) else 0.5
        m = binary_metrics(y, prob, threshold=thr)
        bce = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logit), torch.from_numpy(y)).item())
        return {
            "val/n": int(m["n"]),
            "val/auc": float(m["auc"]),
            "val/acc": float(m["acc"]),
            "val/acc_thr": float(m["acc_thr"]),
            "val/threshold": thr,
            "val/ap": float(m["ap"]),
            "val/eer": float(m["eer"]),
            "val/bce": bce,
            # per-modality AUC over the samples whose track label is known (unknown = -1)
            "val/audio_auc": float(roc_auc(ya[ya >= 0], sigmoid(la[ya >= 0]))),
            "val/video_auc": float(roc_auc(yv[yv >= 0], sigmoid(lv[yv >= 0]))),
        }



def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train per ``cfg``; returns the summary dict (also written to ``RUN_DIR/summary.json``).

    Raises :class:`TrainError` with a one-line message for usage/data problems. Under torchrun
    every process calls this; rank 0 writes the files.

    Example:
        >>> summary = train(TrainConfig(data="cache", out="runs/small", model="small", epochs=5))  # doctest: +SKIP
    """
    cfg.validate()
    try:
        info = D.init_distributed(cfg.device)
    except RuntimeError as e:
        raise TrainError(str(e)) from None
    det = cfg.deterministic if cfg.deterministic is not None else info.device.type == "cpu"
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    if det:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = FILL_UNINITIALIZED
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        return _Trainer(cfg, info).run()
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill
        D.cleanup_distributed()
