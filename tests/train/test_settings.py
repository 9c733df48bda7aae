"""Training settings have one source: TrainConfig's fields give `macbdf train`'s flags (and the training flags of
`macbdf ablate` / `macbdf demo`), an unknown setting is an error, and the demo's config embeds a TrainConfig."""
from __future__ import annotations

import argparse
import dataclasses
import importlib

import pytest

from macbdf_train.config import TrainConfig, TrainError

# the flags each command had before they were derived from TrainConfig (backwards compatibility)
OLD_FLAGS = {
    "train": ["--data", "--model", "--out", "--resume", "--epochs", "--steps", "--batch-size", "--lr", "--weight-decay",
              "--warmup", "--clip-grad", "--precision", "--balancer", "--lam0", "--kappa", "--pareto-unimodal",
              "--lr-scale", "--augment", "--ema", "--balance", "--eval-every", "--save-every", "--log-every",
              "--max-skip-fraction", "--seed", "--workers", "--device", "--train-split", "--val-split", "--set",
              "--no-progress", "--no-tensorboard", "--json"],
    "ablate": ["--data", "--out", "--grid", "--cells", "--model", "--steps", "--epochs", "--batch-size", "--seed",
               "--seeds", "--balancer", "--lr", "--warmup", "--lr-scale", "--checkpoint", "--device", "--json", "--list"],
    "demo": ["--out", "--quick", "--num-clips", "--steps", "--batch-size", "--model", "--seed", "--seeds", "--workers",
             "--parallel", "--checkpoint", "--device", "--models", "--json", "--preset", "--real-root", "--fpr"],
}


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"macbdf {command}")
    importlib.import_module(f"macbdf.commands.{command}").add_arguments(p)
    return p


@pytest.mark.parametrize("command", sorted(OLD_FLAGS))
def test_every_flag_is_kept_and_explained(command: str) -> None:
    actions = {s: a for a in _parser(command)._actions for s in a.option_strings}
    assert set(OLD_FLAGS[command]) <= set(actions)
    assert all(actions[f].help for f in OLD_FLAGS[command])


def test_train_flags_are_the_config_fields() -> None:
    p = _parser("train")
    args = p.parse_args(["--data", "c", "--out", "r", "--steps", "5", "--set", "ms_depth=0", "--lr-scale", "video_encoder=0.5",
                         "--no-tensorboard", "--batch-size", "4"])
    from macbdf_train.flags import values_from_args

    cfg = TrainConfig.from_settings(**values_from_args(args, TrainConfig))
    assert (cfg.steps, cfg.batch_size, cfg.overrides, cfg.lr_scales, cfg.tensorboard) == (5, 4, {"ms_depth": 0},
                                                                                          {"video_encoder": 0.5}, False)
    # every other setting keeps the dataclass default: the flags do not repeat defaults of their own
    base = TrainConfig(data="c", out="r")
    changed = {f.name for f in dataclasses.fields(TrainConfig) if getattr(cfg, f.name) != getattr(base, f.name)}
    assert changed == {"steps", "batch_size", "overrides", "lr_scales", "tensorboard"}
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "c", "--out", "r", "--steps", "5", "--epochs", "2"])   # one of the two


def test_an_unknown_setting_is_an_error() -> None:
    from macbdf_train.ablate import AblationError, make_train_config

    with pytest.raises(TrainError, match="did you mean 'warmup'"):
        TrainConfig.from_settings(data="c", out="r", warmpu=0.1)
    with pytest.raises(AblationError, match="unknown training setting 'epoch'"):
        make_train_config(data="c", out="r", epoch=3)
    assert make_train_config(data="c", out="r", steps=None, model_overrides={"ms_depth": 0}).overrides == {"ms_depth": 0}


def test_the_demo_config_embeds_a_train_config() -> None:
    from macbdf_train.demo import DEMO_TRAIN, DemoConfig, DemoError

    cfg = DemoConfig.make("x", steps=7, seed=3, num_clips=20)
    assert isinstance(cfg.train, TrainConfig) and cfg.train.steps == 7 and cfg.seed == cfg.train.seed == 3
    assert cfg.train.lr == DEMO_TRAIN["lr"] and cfg.num_clips == 20
    flat = cfg.flat()
    assert flat["steps"] == 7 and flat["lr_scales"] == {"video_encoder": 0.33} and "train" not in flat
    with pytest.raises(DemoError, match="unknown training setting"):
        DemoConfig.make("x", step=7)
    q = DemoConfig.quick_config("x", steps=2)
    assert (q.train.model, q.train.steps, q.quick) == ("tiny", 2, True)


def test_the_demo_presets() -> None:
    """The default preset is the 5-minute main job; "compare" is exactly the six-model demo that produced every
    comparison figure of the README (the settings below are those of its report.json, sessions 5-8)."""
    from macbdf_train.demo import MODELS, DemoConfig, DemoError

    main_job = DemoConfig.make("x")
    assert main_job.models == ("macbdf",) and main_job.preset == "synthetic"
    assert main_job.synth_opts == {"size": 128, "duration_range": (1.5, 2.5)}
    assert (main_job.train.steps, main_job.train.eval_every, main_job.num_clips) == (200, 50, 480)
    assert DemoConfig(out="x").flat() == main_job.flat()   # the dataclass defaults are the main job
    cmp = DemoConfig.make("x", "compare").flat()
    session8 = {"out": "x", "num_clips": 480, "checkpoint": "final", "workers": 2, "parallel": 0, "synth_opts": {},
                "prepare_opts": {}, "models": tuple(MODELS), "sync_dim": None, "quick": False, "seed": 0,
                "model": "small", "steps": 250, "batch_size": 16, "lr": 0.003, "warmup": 0.2,
                "lr_scales": {"video_encoder": 0.33}, "balancer": "ompareto", "device": "cpu"}
    assert {k: v for k, v in cmp.items() if k not in ("progress", "preset")} == session8
    # the user's settings win over the preset's
    assert DemoConfig.make("x", "compare", models=("macbdf", "concat"), steps=9).train.steps == 9
    with pytest.raises(DemoError, match="unknown demo preset"):
        DemoConfig.make("x", "fast")
