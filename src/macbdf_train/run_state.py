"""What a run saves: the model checkpoint (+ model card, metadata) and ``train_state.pt`` (weights, optimiser,
scheduler, RNG, counters), the finiteness check before every save, and the exact restore of a resumed run.

`StateMixin` is one part of the trainer (`macbdf_train.trainer._Trainer`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from macbdf.checkpoint import NonFiniteWeights, check_finite_state, save_model, save_train_state
from macbdf.models.unwrap import unwrap_model
from macbdf_train import distributed as D
from macbdf_train.config import TrainError
from macbdf_train.logger import finite_or_none
from macbdf_train.rng import rng_state

__all__ = ["StateMixin", "STATE_VERSION"]

STATE_VERSION = 1


class StateMixin:
    """Checkpoints and train state of the trainer."""

    def _state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.cfg.to_dict(),
            "model": {k: v.detach().cpu() for k, v in unwrap_model(self.model).state_dict().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "criterion": {k: v.detach().cpu() for k, v in self.criterion.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_auc": self.best_auc,
            "best_step": self.best_step,
            "best_bce": self.best_bce,
            "threshold": self.threshold,
            "bad_steps": self.bad_steps,
            "skipped": self.skipped,
            "last_val": {k: finite_or_none(v) for k, v in (self.last_val or {}).items()} or None,
            "epoch_acc": dict(self.epoch_acc),
            "world_size": self.info.world_size,
        }

    def _load_state(self, st: dict[str, Any]) -> None:
        if int(st.get("version", 0)) != STATE_VERSION:
            raise TrainError(f"{self.state_path} has state version {st.get('version')}, this macbdf writes {STATE_VERSION}")
        if int(st.get("world_size", 1)) != self.info.world_size:
            raise TrainError(f"the run was trained with {st.get('world_size')} processes; resume it with the same number "
                             f"(now {self.info.world_size}): the data order depends on it")
        try:
            unwrap_model(self.model).load_state_dict(st["model"], strict=True)
            self.criterion.load_state_dict(st["criterion"], strict=True)
            self.optimizer.load_state_dict(st["optimizer"])
            self.scheduler.load_state_dict(st["scheduler"])
            if self.ema is not None and st.get("ema"):
                self.ema.load_state_dict(st["ema"])
            elif self.ema is not None:
                # resuming a run saved without EMA: the average starts from the resumed weights
                self.ema.module.load_state_dict(unwrap_model(self.model).state_dict())
        except (RuntimeError, KeyError, ValueError) as e:
            raise TrainError(f"{self.state_path} does not match this model: {str(e).splitlines()[0]}") from None
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.step, self.epoch, self.batch_in_epoch = int(st["step"]), int(st["epoch"]), int(st["batch_in_epoch"])
        self.best_auc, self.best_step = st.get("best_auc"), st.get("best_step")
        self.best_bce = st.get("best_bce")
        self.threshold = float(st.get("threshold", 0.5))
        self.bad_steps, self.skipped = int(st.get("bad_steps", 0)), int(st.get("skipped", 0))
        self.last_val = st.get("last_val")
        self.epoch_acc = {k: float(v) for k, v in st.get("epoch_acc", self._zero_epoch_acc()).items()}
        self._pending_rng = st["rng"]

    def _check_finite(self, where: str) -> None:
        """Weights and buffers (BatchNorm statistics, cluster banks, queues) of everything that is
        saved must be finite: a NaN never reaches a checkpoint (the last good one stays)."""
        try:
            for what, module in (("model", self.model), ("criterion", self.criterion), ("shipped model", self._shipped())):
                check_finite_state(unwrap_model(module).state_dict(), what)
        except NonFiniteWeights as e:
            raise TrainError(f"training failed: {e} at step {self.step}; not saving {where} (the last checkpoint "
                             f"in {self.run_dir} is kept; check the data or lower --lr)") from None

    def _save(self) -> None:
        """Model checkpoint (inference) + train state (resume); rank 0 writes, others wait."""
        if self.info.is_main:
            self._check_finite("the checkpoint")
            extra = self._meta_extra()
            save_model(self._shipped(), self.run_dir, extra=extra, card=self._card())
            save_train_state(self.state_path, self._state_dict())
        D.barrier()

    def _shipped(self) -> nn.Module:
        """The weights that are validated and saved: the EMA when on, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    def _card(self) -> dict[str, Any]:
        """The model card's facts known to the trainer: the cache it trained on and the val figures."""
        if getattr(self, "_cache_summary", None) is None:
            from macbdf.modelcard import cache_summary

            try:
                self._cache_summary = cache_summary(self.cfg.data, (self.cfg.train_split, self.cfg.val_split))
            except Exception:  # noqa: BLE001 - a card must never stop a save; say what is unknown
                self._cache_summary = {"data": str(Path(self.cfg.data).resolve()), "note": "cache manifest unreadable"}
        from macbdf.modelcard import recipe_of

        lv = self.last_val or {}
        figs = {"step": self.step, "val_auc": finite_or_none(lv.get("val/auc")),
                "val_acc": finite_or_none(lv.get("val/acc"))}
        return {"recipe": recipe_of(self._cache_summary), "trained_on": self._cache_summary,
                "figures": {k: v for k, v in figs.items() if v is not None},
                "model": {"name": self.model_cfg.name, "parameters": int(sum(p.numel() for p in self.model.parameters()))}}

    def _meta_extra(self) -> dict[str, Any]:
        lv = self.last_val or {}
        return {
            "threshold": float(self.threshold),
            "trained_on": str(Path(self.cfg.data).resolve()),
            "step": self.step,
            "epoch": self.epoch,
            "val_auc": finite_or_none(lv.get("val/auc")),
            "val_acc": finite_or_none(lv.get("val/acc")),
            "balancer": self.cfg.balancer,
            "pareto_unimodal": self.cfg.pareto_unimodal if self.cfg.balancer == "ompareto" else None,
            "precision": self.cfg.precision,
            "ema": self.cfg.ema or None,
            "augment": self.cfg.augment,
        }
