"""The training loop: epochs of seeded batches, one optimiser step (OM-Pareto or summed loss, AMP, clipping,
skipped non-finite steps that leave no trace), logging, validation and checkpoint cadence, the summary.

`LoopMixin` is one part of the trainer (`macbdf_train.trainer._Trainer`, which brings `_evaluate`).
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor

from macbdf.checkpoint import save_model
from macbdf.filemode import atomic_write_text
from macbdf.models.unwrap import unwrap_model
from macbdf_train import distributed as D
from macbdf_train.config import TrainError
from macbdf_train.epochs import SeededItems, item_seed
from macbdf_train.logger import MetricsLogger, finite_or_none
from macbdf_train.rng import seed_training, set_rng_state

__all__ = ["LoopMixin", "to_device"]


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, Tensor) else v) for k, v in batch.items()}


class LoopMixin:
    """The training loop of the trainer."""

    def _note_bad_samples(self, bad: list[tuple[str, str]] | None) -> None:
        """Log each unusable sample once per run (metrics.jsonl and stderr); training goes on without it."""
        for file, reason in bad or []:
            if file in self.bad_files:
                continue
            self.bad_files.add(file)
            if self.info.is_main or self.info.distributed:
                self.logger.log({"kind": "bad_sample", "step": self.step, "epoch": self.epoch, "file": file,
                                 "reason": reason})
                print(f"warning: skipping sample {file}: {reason}", file=sys.stderr)

    def _buffers(self) -> list[Tensor]:
        return [b for m in (self.model, self.criterion) for b in unwrap_model(m).buffers()]

    def _skip_limit(self) -> None:
        if self.skipped > self.cfg.max_skip_fraction * self.total_steps:
            raise TrainError(
                f"training failed: {self.skipped} of {self.total_steps} steps skipped by step {self.step} (more than "
                f"max_skip_fraction={self.cfg.max_skip_fraction:g}); check the data: bad samples and skipped steps "
                f"are listed in {self.run_dir / 'metrics.jsonl'}")

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _train_step(self, batch: dict[str, Any]) -> dict[str, Any]:
        cfg = self.cfg
        self.joint.train()
        self.optimizer.zero_grad(set_to_none=True)
        # The forward updates buffers (BatchNorm statistics, cluster bank, queues) before we know
        # whether the step is usable; a skipped step puts them back, so a NaN input leaves no trace.
        saved = [b.detach().clone() for b in self._buffers()]
        with self._autocast():
            out, losses = self.joint(batch)
        losses = {k: (v.float() if isinstance(v, Tensor) else v) for k, v in losses.items()}
        if self.balancer is not None:
            diag = self.balancer.backward(losses, scaler=self.scaler)
            total = diag.pop("total")
        else:
            total = self.criterion.total(losses)
            (self.scaler.scale(total) if self.scaler is not None else total).backward()
            diag = {}
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.clip_grad > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        else:
            grads = [p.grad for p in params if p.grad is not None]
            gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])) if grads else torch.zeros(())
        finite = bool(torch.isfinite(gnorm).item() and torch.isfinite(total).item())
        skipped = False
        if self.scaler is not None:
            scale_before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)  # skips by itself on inf/NaN
            self.scaler.update()
            skipped = not finite or self.scaler.get_scale() < scale_before
        elif finite:
            self.optimizer.step()
        else:
            skipped = True
        if skipped:
            with torch.no_grad():
                for b, v in zip(self._buffers(), saved):
                    b.copy_(v)
        if self.ema is not None and not skipped:
            self.ema.update(self.model)
        self.scheduler.step()
        with torch.no_grad():
            logit = out["logit"].detach().float()
            correct = ((logit > 0).float() == batch["label"].float()).float().sum()
        return {"total": total.detach(), "losses": losses, "diag": diag, "gnorm": gnorm.detach(),
                "skipped": skipped, "correct": correct, "n": int(logit.shape[0])}

    def _do_eval(self, pbar: Any) -> None:
        t0 = time.perf_counter()
        vm = self._evaluate()
        if not vm:
            return
        self.last_val = vm
        self.threshold = vm["val/threshold"]
        rec = {"kind": "val", "step": self.step, "epoch": self.epoch, **vm, "val/time_s": time.perf_counter() - t0}
        self.logger.log(rec)
        auc = vm["val/auc"]
        bce = vm.get("val/bce")
        bce = float(bce) if bce is not None and math.isfinite(float(bce)) else None
        # equal AUC (e.g. 1.0 on a few dozen clips): the lower validation BCE wins, so `best/` is not
        # simply the first checkpoint that happened to rank the small val split perfectly
        tie_better = (self.best_auc is not None and auc == self.best_auc and bce is not None
                      and (self.best_bce is None or bce < self.best_bce))
        if math.isfinite(auc) and (self.best_auc is None or auc > self.best_auc or tie_better):
            self.best_auc, self.best_step, self.best_bce = auc, self.step, bce
            if self.info.is_main:
                self._check_finite("best/")
                save_model(self._shipped(), self.run_dir / "best", extra=self._meta_extra(), card=self._card())
            D.barrier()
        if pbar is not None:
            pbar.set_postfix_str(f"val_auc={auc:.3f}", refresh=False)

    def _epoch_loader(self, epoch: int, start: int) -> Iterator[dict[str, Any]]:
        cfg = self.cfg
        batches = D.shard_epoch(len(self.epoch_index), cfg.batch_size, epoch, cfg.seed, self.info.rank,
                                self.info.world_size)[start:]
        batches = [[self.epoch_index[i] for i in b] for b in batches]
        loader = torch.utils.data.DataLoader(
            SeededItems(self.train_ds, cfg.seed, epoch), batch_sampler=batches, num_workers=cfg.workers,
            collate_fn=self.collate, pin_memory=self.device.type == "cuda",
            # Own generator: creating the iterator must not consume the global RNG (exact resume).
            generator=torch.Generator().manual_seed(item_seed(cfg.seed, epoch, -1)),
            persistent_workers=False,
        )
        return iter(loader)

    def _log_train(self, res: dict[str, Any], t_step: float) -> None:
        rec: dict[str, Any] = {"kind": "train", "step": self.step, "epoch": self.epoch,
                               "lr": self.optimizer.param_groups[0]["lr"], "train/loss": float(res["total"]),
                               "train/grad_norm": float(res["gnorm"]), "train/step_time_s": t_step}
        for k, v in res["losses"].items():
            if isinstance(v, Tensor) and v.numel() == 1:
                rec[f"train/{k}"] = float(v.detach())
        for k, v in res["diag"].items():
            rec[f"pareto/{k}"] = float(v)
        self.logger.log(rec)

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        state = self._check_run_dir()
        resume_step = int(state["step"]) if state is not None else None
        self._build(state)
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        D.barrier()
        self.logger = MetricsLogger(self.run_dir, self.info.is_main, cfg.tensorboard, resume_step)
        if self.info.is_main and state is None:
            atomic_write_text(self.run_dir / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        # Training randomness (dropout, ...) differs per rank; restored exactly on resume.
        seed_training(cfg.seed, self.info.rank)
        if getattr(self, "_pending_rng", None) is not None:
            set_rng_state(self._pending_rng)
        t_start = time.perf_counter()
        pbar = None
        if self.info.is_main and cfg.progress:
            from tqdm.auto import tqdm

            pbar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        evaluated_at = -1
        try:
            while self.step < self.total_steps:
                it = self._epoch_loader(self.epoch, self.batch_in_epoch)
                for batch in it:
                    t0 = time.perf_counter()
                    # checksums a worker verified: the next epoch's fresh workers need not read those files whole
                    self.train_ds.mark_verified(batch.pop("verified_files", None))
                    self._note_bad_samples(batch.pop("bad_samples", None))
                    usable = "video" in batch and int(batch["video"].shape[0]) >= 2
                    if self.info.distributed:   # every rank must take the same branch (collectives)
                        flag = torch.tensor([0.0 if usable else 1.0], device=self.device)
                        D.all_reduce_sum(flag)
                        usable = float(flag.item()) == 0.0
                    if usable:
                        batch = to_device(batch, self.device)
                        res = self._train_step(batch)
                    else:
                        # Fewer than 2 usable samples (BatchNorm needs 2): the step is skipped.
                        self.scheduler.step()
                        res = {"total": torch.tensor(float("nan")), "losses": {}, "diag": {},
                               "gnorm": torch.tensor(float("nan")), "skipped": True, "correct": 0.0, "n": 0,
                               "why": "fewer than 2 usable samples in the batch"}
                    self.step += 1
                    self.batch_in_epoch += 1
                    if res["skipped"]:
                        self.skipped += 1
                        self.bad_steps += 1
                        self.logger.log({"kind": "skip", "step": self.step, "epoch": self.epoch,
                                         "reason": res.get("why", "non-finite loss or gradient"),
                                         "train/loss": finite_or_none(float(res["total"]))})
                        self._skip_limit()
                        if self.bad_steps > cfg.max_bad_steps:
                            raise TrainError(f"training diverged: {self.bad_steps} consecutive non-finite steps at step "
                                             f"{self.step} (lower --lr, use fp32, or check the data)")
                    else:
                        self.bad_steps = 0
                        self.epoch_acc["loss_sum"] += float(res["total"])
                        self.epoch_acc["steps"] += 1
                    self.epoch_acc["correct"] += float(res["correct"])
                    self.epoch_acc["count"] += res["n"]
                    if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                        self._log_train(res, time.perf_counter() - t0)
                    if pbar is not None:
                        pbar.update(1)
                        if self.step % cfg.log_every == 0:
                            pbar.set_postfix_str(f"loss={float(res['total']):.4f}", refresh=False)
                    end_of_epoch = self.batch_in_epoch >= self.batches_per_epoch
                    # Evaluate while the step still belongs to its epoch, then close the epoch, then save
                    # (a checkpoint taken at an epoch boundary resumes at the next epoch's first batch).
                    if (cfg.eval_every and self.step % cfg.eval_every == 0) or (not cfg.eval_every and end_of_epoch):
                        self._do_eval(pbar)
                        evaluated_at = self.step
                    if end_of_epoch:
                        self._end_epoch()
                    if (cfg.save_every and self.step % cfg.save_every == 0) or (not cfg.save_every and end_of_epoch):
                        if self.step < self.total_steps:
                            self._save()
                    if self.step >= self.total_steps or end_of_epoch:
                        break
                del it
            if evaluated_at != self.step:
                self._do_eval(pbar)
            agree = D.ranks_agree(unwrap_model(self.model), self.device)
            if self.best_step is None:
                # No usable validation: the final model is also the "best" one.
                self.best_step = self.step
            self._save()
            if self.info.is_main and (self.best_auc is None or not (self.run_dir / "best").exists()):
                self._check_finite("best/")
                save_model(self._shipped(), self.run_dir / "best", extra=self._meta_extra(), card=self._card())
            D.barrier()
        finally:
            if pbar is not None:
                pbar.close()
            self.logger.close()
        summary = {
            "run_dir": str(self.run_dir),
            "model": self.model_cfg.name,
            "steps": self.step,
            "epochs": self.step / max(1, self.batches_per_epoch),
            "batches_per_epoch": self.batches_per_epoch,
            "world_size": self.info.world_size,
            "ranks_agree": agree,
            "balancer": cfg.balancer,
            "precision": cfg.precision,
            "skipped_steps": self.skipped,
            "best_val_auc": finite_or_none(self.best_auc),
            "best_step": self.best_step,
            "threshold": self.threshold,
            "final_val": {k.split("/", 1)[1]: finite_or_none(v) for k, v in (self.last_val or {}).items()},
            "train_time_s": time.perf_counter() - t_start,
            "resumed_from_step": (int(state["step"]) if state is not None else None),
        }
        if self.info.is_main:
            from macbdf.detect import finite_json

            atomic_write_text(self.run_dir / "summary.json", json.dumps(finite_json(summary), indent=2, allow_nan=False) + "\n")
        return summary

    def _end_epoch(self) -> None:
        ea = self.epoch_acc
        rec = {"kind": "epoch", "step": self.step, "epoch": self.epoch,
               "train/loss": ea["loss_sum"] / max(1.0, ea["steps"]),
               "train/acc": ea["correct"] / max(1.0, ea["count"]), "lr": self.optimizer.param_groups[0]["lr"]}
        # Accuracy counts are per rank; sum them so the epoch figure covers the whole data set.
        if self.info.distributed:
            t = torch.tensor([ea["loss_sum"], ea["steps"], ea["correct"], ea["count"]], dtype=torch.float64,
                             device=self.device)
            D.all_reduce_sum(t)
            rec["train/loss"] = float(t[0] / t[1].clamp_min(1))
            rec["train/acc"] = float(t[2] / t[3].clamp_min(1))
        self.logger.log(rec)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_acc = self._zero_epoch_acc()
