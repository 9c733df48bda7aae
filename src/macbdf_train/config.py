"""Training settings, one source: `TrainConfig`'s fields carry their defaults, validation (`validate`, in
one place) and command-line form (`macbdf_train.flags.setting`), so `macbdf train`, `macbdf ablate` and
`macbdf demo` derive their training flags from them; `from_settings` refuses a name that is not a field.
`parse_overrides` / `parse_lr_scales` read ``--set KEY=VALUE`` / ``--lr-scale PREFIX=X``."""
from __future__ import annotations

import dataclasses
import json
import difflib
from dataclasses import dataclass
from typing import Any

from macbdf.data.dataset import parse_augment
from macbdf.optim.pareto import DEFAULT_KAPPA, DEFAULT_LAM0, DEFAULT_UNIMODAL, UNIMODAL_GROUPINGS
from macbdf_train.flags import setting

__all__ = ["TrainConfig", "TrainError", "parse_overrides", "parse_lr_scales", "PRECISIONS", "BALANCERS", "PARETO_UNIMODAL",
           "BALANCE_MODES"]

PRECISIONS = ("fp32", "bf16", "fp16")
BALANCERS = ("ompareto", "sum")
PARETO_UNIMODAL = tuple(UNIMODAL_GROUPINGS)
BALANCE_MODES = ("none", "label")


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

    data: str = setting(help="prepared cache (from `macbdf prepare`)", metavar="CACHE_DIR")
    out: str = setting(help="run directory (checkpoints, logs)", metavar="RUN_DIR")
    model: str = setting("small", help="named model config (tiny, small, base, ...)", metavar="NAME")
    resume: bool = setting(False, help="continue the run in RUN_DIR from its last checkpoint")
    epochs: int | None = setting(None, help="passes over the training split", default_text="10", group="length")
    steps: int | None = setting(None, help="optimizer steps (when given, instead of epochs)", group="length")
    batch_size: int = setting(16, help="samples per step per process")
    lr: float = setting(1e-3, help="peak learning rate")
    weight_decay: float = setting(0.05, help="AdamW weight decay on matrices")
    warmup: float = setting(0.05, help="warm-up: a fraction of all steps if < 1, else a number of steps")
    min_lr_ratio: float = setting(0.01, help="the cosine ends at lr * this", cli=False)
    clip_grad: float = setting(1.0, help="max gradient norm; 0 disables")
    precision: str = setting("fp32", help="fp32; bf16/fp16 autocast on GPU (fp16 needs CUDA)", choices=PRECISIONS)
    balancer: str = setting("ompareto", help="OM-Pareto gradient balancing (paper §3.5) or the plain summed loss",
                            choices=BALANCERS)
    lam0: float = setting(DEFAULT_LAM0, help="OM-Pareto λ0 of Eq. 23")
    kappa: float = setting(DEFAULT_KAPPA, help="OM-Pareto κ of Eq. 23")
    # OM-Pareto's g_u: unimodal sample losses (Eq. 19), or sample + frame losses
    pareto_unimodal: str = setting(
        DEFAULT_UNIMODAL, choices=PARETO_UNIMODAL,
        help="OM-Pareto's unimodal objectives per encoder: the unimodal sample losses of Eq. 19 (sample: those "
             "heads read only their own encoder; the frame heads read the fused multi-scale maps, so their losses "
             "count as multimodal) or sample + frame losses")
    eval_every: int = setting(0, help="validate every N steps; 0 = every epoch")
    save_every: int = setting(0, help="checkpoint every N steps; 0 = every epoch")
    log_every: int = setting(10, help="write a train record every N steps")
    seed: int = setting(0, help="random seed")
    workers: int = setting(0, help="data-loading worker processes")
    device: str = setting("auto", help="auto, cpu, cuda, cuda:1, ...")
    train_split: str = setting("train", help="split to train on")
    val_split: str = setting("val", help="split to validate on")
    overrides: dict[str, Any] = setting(
        default_factory=dict, flag="--set", metavar="KEY=VALUE", parse=lambda items: parse_overrides(items),
        help="model config override, repeatable (e.g. --set ms_depth=4 --set use_contrastive=false)")
    progress: bool = setting(True, help="no progress bar")
    tensorboard: bool = setting(True, help="no TensorBoard event files")
    # None: on for CPU, off (cudnn.benchmark) on GPU
    deterministic: bool | None = setting(None, help="deterministic algorithms", cli=False)
    max_bad_steps: int = setting(20, help="consecutive non-finite steps before giving up", cli=False)
    # A run that skips more than this share of its steps (non-finite loss, batches without 2 usable
    # samples) fails with a clear message instead of shipping a model trained on what was left.
    max_skip_fraction: float = setting(0.25, metavar="F",
                                       help="fail (exit 1) when more than this share of the steps is skipped "
                                            "(non-finite loss, batches without 2 usable samples)")
    # None: probe for parameters no loss reaches, freeze them
    ddp_find_unused: bool | None = setting(None, help="DDP find_unused_parameters", cli=False)
    # "label": each epoch repeats the authentic training samples so that real and fake are about equally
    # frequent (an epoch gets longer); "none": every sample once per epoch.
    balance: str = setting("none", choices=BALANCE_MODES,
                           help="label: repeat the authentic training samples in every epoch so that real and fake "
                                "windows are about equally frequent (none: each sample once per epoch)")
    # Learning-rate multipliers for parameter groups by module-name prefix, e.g. {"video_encoder": 0.33}
    # (the prefix is matched against model parameter names; the criterion's parameters keep 1.0).
    lr_scales: dict[str, float] = setting(
        default_factory=dict, flag="--lr-scale", metavar="PREFIX=X", parse=lambda items: parse_lr_scales(items),
        help="learning-rate multiplier for the model parameters whose name starts with PREFIX, repeatable "
             "(e.g. --lr-scale video_encoder=0.33)")
    # Training augmentation: comma-separated ops of macbdf.data.dataset.AUGMENTATIONS ("flip,color,gain") or "none".
    augment: str = setting("none", metavar="OPS",
                           help="training augmentation, comma-separated: flip (mirror the window), color (one "
                                "brightness/contrast change per window), gain (+-6 dB loudness)")
    # Weight EMA decay (0 = off). When on, validation, best/ and the final model use the averaged weights.
    ema: float = setting(0.0, metavar="DECAY",
                         help="keep an exponential moving average of the weights with this decay (e.g. 0.99) and "
                              "validate/save the averaged weights; 0 = off")

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

    @classmethod
    def from_settings(cls, **settings: Any) -> "TrainConfig":
        """A validated config from keyword settings; a name that is not a field is an error.

        Example:
            >>> TrainConfig.from_settings(data="c", out="r", batch_size=4).batch_size
            4
            >>> TrainConfig.from_settings(data="c", out="r", batchsize=4)
            Traceback (most recent call last):
            ...
            macbdf_train.config.TrainError: unknown training setting 'batchsize' (did you mean 'batch_size'?)
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = []
        for k in settings:
            if k not in names:
                close = difflib.get_close_matches(k, names, n=1)
                unknown.append(repr(k) + (f" (did you mean {close[0]!r}?)" if close else ""))
        if unknown:
            raise TrainError(f"unknown training setting {', '.join(unknown)}")
        return cls(**settings).validate()


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


def parse_lr_scales(items: list[str] | None) -> dict[str, float]:
    """``["video_encoder=0.33"]`` -> ``{"video_encoder": 0.33}``; TrainError with a one-line message otherwise.

    Example:
        >>> parse_lr_scales(["video_encoder=0.33"])
        {'video_encoder': 0.33}
    """
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise TrainError(f"--lr-scale takes PREFIX=NUMBER, got {item!r}")
        if not (out[key.strip()] > 0 and out[key.strip()] != float("inf")):
            raise TrainError(f"--lr-scale multipliers must be > 0 and finite, got {item!r}")
    return out
