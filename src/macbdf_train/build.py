"""Setting a run up: the run directory (new or resumed), the model, criterion, data sets, DDP wrapper,
optimizer, schedule, AMP and balancer, and the progress counters (restored from the train state on resume).

`BuildMixin` is one part of the trainer (`macbdf_train.trainer._Trainer`); it sets the attributes the
loop (`macbdf_train.loop`) and the run state (`macbdf_train.run_state`) use.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from macbdf.checkpoint import TRAIN_STATE_FILE, CheckpointError, load_train_state
from macbdf.optim.pareto import OMPareto
from macbdf_train import distributed as D
from macbdf_train.config import TrainError
from macbdf_train.ema import WeightEMA
from macbdf_train.epochs import balanced_index
from macbdf_train.optim import lr_factor, param_groups

__all__ = ["BuildMixin", "Joint", "read_cache_preprocess"]


class Joint(nn.Module):
    """model + criterion in one module so DDP synchronises the criterion's learnable parts too."""

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model, self.criterion = model, criterion

    def forward(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        out = self.model(batch)
        return out, self.criterion(out, batch)


def read_cache_preprocess(data_dir: Path) -> dict[str, Any] | None:
    from macbdf.data.cache import CacheError, load_cache_config

    try:
        pre = load_cache_config(data_dir)
    except CacheError as e:
        raise TrainError(str(e)) from None
    return None if pre is None else pre.to_dict()


class BuildMixin:
    """Run directory, model, data and optimiser set-up of the trainer."""

    def _check_run_dir(self) -> dict[str, Any] | None:
        cfg = self.cfg
        if cfg.resume and self.state_path.is_file():
            try:
                return load_train_state(self.state_path)
            except CheckpointError as e:
                raise TrainError(f"cannot resume: {e}") from None
        if not cfg.resume and self.run_dir.exists() and any(
            (self.run_dir / n).exists() for n in (TRAIN_STATE_FILE, "model.safetensors", "metrics.jsonl")
        ):
            raise TrainError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        if cfg.resume and self.info.is_main:
            print(f"note: nothing to resume in {self.run_dir}; starting a new run", file=sys.stderr)
        return None

    def _build(self, state: dict[str, Any] | None) -> None:
        from macbdf.models.config import ModelConfig
        from macbdf.models.losses import MACBCriterion
        from macbdf.models.registry import create_model

        cfg = self.cfg
        data = Path(cfg.data)
        from macbdf.data.cache import manifest_files

        if not manifest_files(data):   # merged, or the manifests of unmerged `prepare --shard` jobs
            raise TrainError(f"not a prepared cache (no manifest.jsonl): {data}; run `macbdf prepare` first")
        torch.manual_seed(cfg.seed)  # identical initialisation on every rank
        try:
            if state is not None:
                model_cfg = ModelConfig.from_dict(state["model_config"])
                if self.info.is_main and (cfg.overrides or cfg.model != model_cfg.name):
                    print(f"note: resuming: the model config ({model_cfg.name!r} with its overrides) comes from "
                          f"{self.state_path}; --model/--set are ignored", file=sys.stderr)
                self.model = create_model(model_cfg)
            else:
                overrides = dict(cfg.overrides)
                pre = read_cache_preprocess(data)
                if pre is not None and "preprocess" not in overrides:
                    # The checkpoint must record how its input was prepared: the cache's settings.
                    overrides["preprocess"] = pre
                self.model = create_model(cfg.model, **overrides)
        except (KeyError, ValueError, TypeError) as e:
            msg = e.args[0] if e.args else str(e)
            raise TrainError(f"cannot build model {cfg.model!r}: {msg}") from None
        self.model_cfg = self.model.config
        self.criterion = MACBCriterion(self.model_cfg)
        self.model.to(self.device)
        self.criterion.to(self.device)

        from macbdf.data.dataset import CacheDataset
        from macbdf.data.cache import CacheError

        T = int(self.model_cfg.num_frames)
        face = int(self.model_cfg.preprocess.face_size)
        try:
            self.train_ds = CacheDataset(cfg.data, split=cfg.train_split, num_frames=T, train=True, face_size=face,
                                         augment=cfg.augment)
            vocab = getattr(self.train_ds, "method_vocab", None)
            mvocabs = (self.train_ds.video_method_vocab, self.train_ds.audio_method_vocab)
            self.val_ds = CacheDataset(cfg.data, split=cfg.val_split, num_frames=T, train=False, face_size=face,
                                       method_vocab=vocab, modality_vocabs=mvocabs)
        except (OSError, ValueError, CacheError) as e:
            raise TrainError(f"cannot read cache {cfg.data}: {e}") from None
        from macbdf.data.dataset import collate

        self.collate = collate
        n_train = len(self.train_ds)
        if n_train < 2 * self.info.world_size:
            raise TrainError(f"split {cfg.train_split!r} of {cfg.data} has {n_train} samples; need at least "
                             f"{2 * self.info.world_size} (2 per process: the head's BatchNorm needs 2 per batch)")
        if len(self.val_ds) == 0 and self.info.is_main:
            print(f"warning: split {cfg.val_split!r} is empty: no validation, best checkpoint = final, threshold 0.5",
                  file=sys.stderr)

        # The average starts from the initial weights, on every rank (DDP keeps the ranks' weights equal).
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.joint: nn.Module = Joint(self.model, self.criterion)
        if self.info.distributed:
            self.joint = nn.parallel.DistributedDataParallel(
                self.joint,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self._ddp_find_unused(),
            )
        self.optimizer = torch.optim.AdamW(param_groups([self.model, self.criterion], cfg.weight_decay, cfg.lr,
                                                        cfg.lr_scales), lr=cfg.lr,
                                           betas=(0.9, 0.999))
        self.epoch_index = balanced_index(self.train_ds.labels()) if cfg.balance == "label" else list(range(n_train))
        self.batches_per_epoch = len(D.shard_epoch(len(self.epoch_index), cfg.batch_size, 0, cfg.seed, self.info.rank,
                                                   self.info.world_size))
        if cfg.steps is not None:
            self.total_steps = int(cfg.steps)
        else:
            self.total_steps = int(cfg.epochs or 10) * self.batches_per_epoch
        self.warmup_steps = int(round(cfg.warmup * self.total_steps)) if cfg.warmup < 1 else int(cfg.warmup)
        total, warm, mr = self.total_steps, self.warmup_steps, cfg.min_lr_ratio
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, total, warm, mr))

        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise TrainError("--precision fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.balancer = None
        if cfg.balancer == "ompareto":
            # grouping and per-modality gradient choice live in OMPareto.from_model (one default)
            self.balancer = OMPareto.from_model(self.model, self.criterion, unimodal=cfg.pareto_unimodal,
                                                lam0=cfg.lam0, kappa=cfg.kappa)

        # progress counters
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_auc: float | None = None
        self.best_step: int | None = None
        self.best_bce: float | None = None   # tie-break: on a small val split the AUC saturates at 1.0 early
        self.threshold = 0.5
        self.bad_steps = 0
        self.skipped = 0
        self.bad_files: set[str] = set()
        self.last_val: dict[str, Any] | None = None
        self.epoch_acc = self._zero_epoch_acc()
        if state is not None:
            self._load_state(state)

    def _ddp_find_unused(self) -> bool:
        """DDP's ``find_unused_parameters`` for this model: ``TrainConfig.ddp_find_unused`` when set, else
        False after freezing the parameters no loss reaches (`distributed.freeze_unused_parameters`)."""
        if self.cfg.ddp_find_unused is not None:
            return bool(self.cfg.ddp_find_unused)
        D.freeze_unused_parameters(self.joint, self.model, self.criterion, self.device, verbose=self.info.is_main)
        return False

    def _zero_epoch_acc(self) -> dict[str, float]:
        return {"loss_sum": 0.0, "correct": 0.0, "count": 0.0, "steps": 0.0}
