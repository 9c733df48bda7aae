"""The MACB-DF trainer: AdamW + warm-up/cosine, OM-Pareto, AMP, DDP, exact resume, logs, best checkpoint.

``train(TrainConfig(...))`` (or ``macbdf train``) trains a model on a prepared cache and writes::

    RUN_DIR/model.safetensors, config.json   final model (+ calibrated threshold), see macbdf.checkpoint
    RUN_DIR/best/                            the checkpoint with the best validation AUC
    RUN_DIR/train_state.pt                   everything --resume needs (weights_only loadable)
    RUN_DIR/metrics.jsonl                    one JSON record per line: kind = train | val | epoch | skip
    RUN_DIR/tb/                              TensorBoard event files
    RUN_DIR/summary.json                     the dict train() returns

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

import contextlib
import dataclasses
import hashlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from macbdf.checkpoint import (
    TRAIN_STATE_FILE,
    CheckpointError,
    NonFiniteWeights,
    check_finite_state,
    atomic_write_text,
    load_train_state,
    save_model,
    save_train_state,
    unwrap_model,
)
from macbdf.optim.pareto import DEFAULT_KAPPA, DEFAULT_LAM0, DEFAULT_UNIMODAL, UNIMODAL_GROUPINGS, OMPareto
from macbdf.data.dataset import parse_augment
from macbdf_train import distributed as D
from macbdf_train.ema import WeightEMA

__all__ = ["TrainConfig", "TrainError", "train", "parse_overrides", "lr_factor"]

PRECISIONS = ("fp32", "bf16", "fp16")
BALANCERS = ("ompareto", "sum")
PARETO_UNIMODAL = tuple(UNIMODAL_GROUPINGS)
BALANCE_MODES = ("none", "label")


def balanced_index(labels: "np.ndarray | list[float]") -> list[int]:
    """Dataset indices of one class-balanced epoch: every sample once, authentic ones (label 0)
    repeated so that they are about as frequent as the fakes (label 1); unknown labels count once.

    Example:
        >>> balanced_index([0, 1, 1, 1, 1, 1, 1])
        [0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0]
    """
    labels = [float(x) for x in labels]
    real = [i for i, y in enumerate(labels) if y == 0.0]
    n_fake = sum(1 for y in labels if y == 1.0)
    reps = max(1, round(n_fake / len(real))) if real else 1
    return list(range(len(labels))) + real * (reps - 1)
STATE_VERSION = 1


class TrainError(RuntimeError):
    """A usage or data problem that stops training; the message is one line."""


@dataclass
class TrainConfig:
    """Every trainer setting; mirrors ``macbdf train`` (``--batch-size`` -> ``batch_size`` etc.).

    ``epochs`` / ``steps``: give one (``steps`` wins when both are set; neither -> 10 epochs).
    ``warmup``: a fraction of the total steps when < 1, else a number of steps.
    ``eval_every`` / ``save_every``: in optimizer steps; 0 = at the end of every epoch.
    ``overrides``: ModelConfig fields (``--set ms_depth=4``).
    """

    data: str
    out: str
    model: str = "small"
    resume: bool = False
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    min_lr_ratio: float = 0.01
    clip_grad: float = 1.0
    precision: str = "fp32"
    balancer: str = "ompareto"
    lam0: float = DEFAULT_LAM0
    kappa: float = DEFAULT_KAPPA
    pareto_unimodal: str = DEFAULT_UNIMODAL  # OM-Pareto's g_u: unimodal sample losses (Eq. 19), or sample + frame losses
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    tensorboard: bool = True
    deterministic: bool | None = None  # None: on for CPU, off (cudnn.benchmark) on GPU
    max_bad_steps: int = 20            # consecutive non-finite steps before giving up
    # A run that skips more than this share of its steps (non-finite loss, batches without 2 usable
    # samples) fails with a clear message instead of shipping a model trained on what was left.
    max_skip_fraction: float = 0.25
    ddp_find_unused: bool | None = None  # None: probe for parameters no loss reaches, freeze them
    # "label": each epoch repeats the authentic training samples so that real and fake are about equally
    # frequent (an epoch gets longer); "none": every sample once per epoch.
    balance: str = "none"
    # Learning-rate multipliers for parameter groups by module-name prefix, e.g. {"video_encoder": 0.33}
    # (the prefix is matched against model parameter names; the criterion's parameters keep 1.0).
    lr_scales: dict[str, float] = field(default_factory=dict)
    # Training augmentation: comma-separated ops of macbdf.data.dataset.AUGMENTATIONS ("flip,color,gain") or "none".
    augment: str = "none"
    # Weight EMA decay (0 = off). When on, validation, best/ and the final model use the averaged weights.
    ema: float = 0.0

    def validate(self) -> "TrainConfig":
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.balancer not in BALANCERS:
            problems.append(f"--balancer must be one of {', '.join(BALANCERS)}")
        if any(not (isinstance(v, (int, float)) and v > 0) for v in self.lr_scales.values()):
            problems.append("--lr-scale multipliers must be > 0")
        try:
            parse_augment(self.augment)
        except ValueError as e:
            problems.append(f"--augment: {e}")
        if not (self.ema == 0.0 or 0.0 < self.ema < 1.0):
            problems.append("--ema must be 0 (off) or a decay in (0, 1), e.g. 0.99")
        if self.balance not in BALANCE_MODES:
            problems.append(f"--balance must be one of {', '.join(BALANCE_MODES)}")
        if self.pareto_unimodal not in PARETO_UNIMODAL:
            problems.append(f"--pareto-unimodal must be one of {', '.join(PARETO_UNIMODAL)}")
        for k in ("batch_size", "log_every"):
            if int(getattr(self, k)) < 1:
                problems.append(f"{k} must be >= 1")
        for k in ("eval_every", "save_every", "workers", "max_bad_steps"):
            if int(getattr(self, k)) < 0:
                problems.append(f"{k} must be >= 0")
        if self.steps is not None and self.steps < 1:
            problems.append("--steps must be >= 1")
        if self.epochs is not None and self.epochs < 1:
            problems.append("--epochs must be >= 1")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.warmup >= 0 and self.clip_grad >= 0):
            problems.append("need lr > 0, weight_decay >= 0, warmup >= 0, clip_grad >= 0")
        if not (0.0 <= self.min_lr_ratio <= 1.0):
            problems.append("min_lr_ratio must lie in [0, 1]")
        if not (0.0 <= self.max_skip_fraction <= 1.0):
            problems.append("--max-skip-fraction must lie in [0, 1]")
        if problems:
            raise TrainError("; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["ms_depth=4", "use_contrastive=false"]`` -> ``{"ms_depth": 4, "use_contrastive": False}``.

    Values are read as JSON when they parse (numbers, true/false, null, lists), else kept as strings.

    Example:
        >>> parse_overrides(["ms_depth=4", "fusion=concat", "use_contrastive=false"])
        {'ms_depth': 4, 'fusion': 'concat', 'use_contrastive': False}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TrainError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise TrainError(f"--set expects key=value, got {item!r}")
        low = v.strip()
        if low in ("True", "False", "None"):
            low = low.lower().replace("none", "null")
        try:
            out[k] = json.loads(low)
        except json.JSONDecodeError:
            out[k] = v
    return out


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up, then cosine to ``min_ratio``.

    Example:
        >>> [round(lr_factor(s, 10, 2, 0.0), 3) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, max(0.0, (step - warmup) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def _item_seed(seed: int, epoch: int, index: int) -> int:
    h = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFF_FFFF_FFFF_FFFF


class _SeededItems(torch.utils.data.Dataset):
    """Reads ``ds[i]`` with every RNG seeded from ``(seed, epoch, i)``, restoring the callers' RNGs.

    Random crops/augmentations then depend on the sample, not on call order, worker or resume point.
    """

    def __init__(self, ds: Any, seed: int, epoch: int) -> None:
        self.ds, self.seed, self.epoch = ds, seed, epoch

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        s = _item_seed(self.seed, self.epoch, int(i))
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                random.seed(s)
                np.random.seed(s % (2**32))
                return self.ds[i]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class _Joint(nn.Module):
    """model + criterion in one module so DDP synchronises the criterion's learnable parts too."""

    def __init__(self, model: nn.Module, criterion: nn.Module) -> None:
        super().__init__()
        self.model, self.criterion = model, criterion

    def forward(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        out = self.model(batch)
        return out, self.criterion(out, batch)


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if isinstance(v, Tensor) else v) for k, v in batch.items()}


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: Mapping[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    py = st["python"]
    random.setstate((py[1], tuple(int(x) for x in py[0]), py[2]))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different GPU count: keep the fresh CUDA RNG
            torch.cuda.set_rng_state_all(st["cuda"])


def _finite_or_none(x: Any) -> Any:
    """JSON-safe floats: NaN/inf (e.g. an undefined AUC) become None."""
    if isinstance(x, Tensor):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _param_groups(modules: list[nn.Module], weight_decay: float, lr: float = 1e-3,
                  lr_scales: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases, norms, scales and other vectors (standard practice); parameters
    of the first module whose name starts with a key of ``lr_scales`` get ``lr * scale``."""
    scales = dict(lr_scales or {})
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for k, m in enumerate(modules):
        for name, p in m.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            scale = next((v for pre, v in scales.items() if k == 0 and name.startswith(pre)), 1.0)
            groups.setdefault((p.ndim >= 2, float(scale)), []).append(p)
    names = [n for n, _ in modules[0].named_parameters()] if modules else []
    unmatched = [pre for pre in scales if not any(n.startswith(pre) for n in names)]
    if unmatched:
        raise TrainError(f"--lr-scale prefix(es) {', '.join(unmatched)} match no model parameter "
                         f"(top-level modules: {', '.join(sorted({n.split('.')[0] for n in names}))})")
    out = []
    for (is_matrix, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        out.append({"params": params, "weight_decay": weight_decay if is_matrix else 0.0, "lr": lr * scale})
    return out


class _Logger:
    """metrics.jsonl (append, flushed per record) + TensorBoard; only rank 0 writes."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # Records written after the checkpoint we resume from will be produced again.
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                if isinstance(rec, dict) and int(rec.get("step", 0)) <= resume_step:
                    keep.append(json.dumps(rec))
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=(resume_step + 1) if resume_step is not None else None)
            except Exception as e:  # tensorboard missing or broken: JSONL still works
                print(f"warning: TensorBoard logging disabled ({type(e).__name__}: {e})", file=sys.stderr)

    def log(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: _finite_or_none(v) for k, v in rec.items()}
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()
        if self.tb is not None:
            step = int(rec.get("step", 0))
            for k, v in clean.items():
                if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._f.close()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def _read_cache_preprocess(data_dir: Path) -> dict[str, Any] | None:
    from macbdf.data.cache import CacheError, load_cache_config

    try:
        pre = load_cache_config(data_dir)
    except CacheError as e:
        raise TrainError(str(e)) from None
    return None if pre is None else pre.to_dict()


class _Trainer:
    def __init__(self, cfg: TrainConfig, info: D.DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.device = info.device
        self.run_dir = Path(cfg.out)
        self.state_path = self.run_dir / TRAIN_STATE_FILE

    # ------------------------------------------------------------------ set-up
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
                pre = _read_cache_preprocess(data)
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
        self.joint: nn.Module = _Joint(self.model, self.criterion)
        if self.info.distributed:
            self.joint = nn.parallel.DistributedDataParallel(
                self.joint,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self._ddp_find_unused(),
            )
        self.optimizer = torch.optim.AdamW(_param_groups([self.model, self.criterion], cfg.weight_decay, cfg.lr,
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
        """DDP's ``find_unused_parameters`` for this model; freezes parameters no loss ever reaches.

        Some variants build modules whose output no loss uses (e.g. the Eq. 9-10 fusion-weight networks
        with ``ms_depth=0``). DDP's usual answer, ``find_unused_parameters=True``, routes every output
        through its sink node, so OM-Pareto's partial ``autograd.grad`` would walk the whole graph (and
        fire hooks meant for the full backward). Instead a probe step on the model's dummy batch (all
        state restored afterwards) finds the parameters that get no gradient; in MACB-DF's variants the
        graph's structure does not depend on the data, so they never get one: freezing them changes
        nothing in training, and DDP runs without the sink. ``TrainConfig.ddp_find_unused`` forces the flag.
        """
        if self.cfg.ddp_find_unused is not None:
            return bool(self.cfg.ddp_find_unused)
        joint = self.joint
        saved = {k: v.detach().clone() for k, v in joint.state_dict().items()}
        was_training = joint.training
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                joint.train()
                batch = self.model.dummy_batch(batch_size=4, device=self.device)
                out, losses = joint(batch)
                self.criterion.total(losses).backward()
            unused = [(n, p) for n, p in joint.named_parameters() if p.requires_grad and p.grad is None]
        finally:
            joint.zero_grad(set_to_none=True)
            joint.load_state_dict(saved)
            joint.train(was_training)
        for _, p in unused:
            p.requires_grad_(False)
        if unused and self.info.is_main:
            print(f"note: {len(unused)} parameter tensors get no gradient in this configuration "
                  f"(e.g. {unused[0][0]}); frozen for DDP", file=sys.stderr)
        return False

    def _zero_epoch_acc(self) -> dict[str, float]:
        return {"loss_sum": 0.0, "correct": 0.0, "count": 0.0, "steps": 0.0}

    # ------------------------------------------------------------------ state
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
            "rng": _rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_auc": self.best_auc,
            "best_step": self.best_step,
            "best_bce": self.best_bce,
            "threshold": self.threshold,
            "bad_steps": self.bad_steps,
            "skipped": self.skipped,
            "last_val": {k: _finite_or_none(v) for k, v in (self.last_val or {}).items()} or None,
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
        figs = {"step": self.step, "val_auc": _finite_or_none(lv.get("val/auc")),
                "val_acc": _finite_or_none(lv.get("val/acc"))}
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
            "val_auc": _finite_or_none(lv.get("val/auc")),
            "val_acc": _finite_or_none(lv.get("val/acc")),
            "balancer": self.cfg.balancer,
            "pareto_unimodal": self.cfg.pareto_unimodal if self.cfg.balancer == "ompareto" else None,
            "precision": self.cfg.precision,
            "ema": self.cfg.ema or None,
            "augment": self.cfg.augment,
        }

    # ------------------------------------------------------------------ one step
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

    # ------------------------------------------------------------------ main loop
    def _epoch_loader(self, epoch: int, start: int) -> Iterator[dict[str, Any]]:
        cfg = self.cfg
        batches = D.shard_epoch(len(self.epoch_index), cfg.batch_size, epoch, cfg.seed, self.info.rank,
                                self.info.world_size)[start:]
        batches = [[self.epoch_index[i] for i in b] for b in batches]
        loader = torch.utils.data.DataLoader(
            _SeededItems(self.train_ds, cfg.seed, epoch), batch_sampler=batches, num_workers=cfg.workers,
            collate_fn=self.collate, pin_memory=self.device.type == "cuda",
            # Own generator: creating the iterator must not consume the global RNG (exact resume).
            generator=torch.Generator().manual_seed(_item_seed(cfg.seed, epoch, -1)),
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
        self.logger = _Logger(self.run_dir, self.info.is_main, cfg.tensorboard, resume_step)
        if self.info.is_main and state is None:
            atomic_write_text(self.run_dir / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        # Training randomness (dropout, ...) differs per rank; restored exactly on resume.
        torch.manual_seed(cfg.seed * 1000 + 1 + self.info.rank)
        random.seed(cfg.seed * 1000 + 2 + self.info.rank)
        np.random.seed((cfg.seed * 1000 + 3 + self.info.rank) % (2**32))
        if getattr(self, "_pending_rng", None) is not None:
            _set_rng_state(self._pending_rng)
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
                    self._note_bad_samples(batch.pop("bad_samples", None))
                    usable = "video" in batch and int(batch["video"].shape[0]) >= 2
                    if self.info.distributed:   # every rank must take the same branch (collectives)
                        flag = torch.tensor([0.0 if usable else 1.0], device=self.device)
                        D.all_reduce_sum(flag)
                        usable = float(flag.item()) == 0.0
                    if usable:
                        batch = _to_device(batch, self.device)
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
                                         "train/loss": _finite_or_none(float(res["total"]))})
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
            "best_val_auc": _finite_or_none(self.best_auc),
            "best_step": self.best_step,
            "threshold": self.threshold,
            "final_val": {k.split("/", 1)[1]: _finite_or_none(v) for k, v in (self.last_val or {}).items()},
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
    if det:
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        return _Trainer(cfg, info).run()
    finally:
        torch.use_deterministic_algorithms(prev_det)
        D.cleanup_distributed()
