"""The trainer (`macbdf train` / `macbdf_train.trainer.train`): outputs, CLI errors, NaN guard, exact
resume after SIGKILL, and two-process DDP on CPU (gloo)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from macbdf.checkpoint import load_model, load_train_state
from macbdf.cli import main
from macbdf_train.trainer import TrainConfig, lr_factor, parse_overrides, train

REPO = Path(__file__).resolve().parents[2]


# Most tests run `tiny` without its multi-scale blocks (the costliest part on CPU); one runs the full model.
FAST = {"ms_depth": 0}


def _cfg(data: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(data=str(data), out=str(out), model="tiny", steps=8, batch_size=4, eval_every=4,
                                save_every=4, log_every=1, progress=False, seed=0, overrides=dict(FAST))
    base.update(kw)
    return TrainConfig(**base)


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_lr_schedule_and_overrides() -> None:
    f = [lr_factor(s, 100, 10, 0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # cosine decays monotonically
    assert lr_factor(100, 100, 10, 0.01) == pytest.approx(0.01)
    assert parse_overrides(["a=1", "b=false", "c=x y", "d=[1,2]", "e=None", "f=0.5"]) == {
        "a": 1, "b": False, "c": "x y", "d": [1, 2], "e": None, "f": 0.5}


def test_train_writes_checkpoints_logs_and_threshold(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    s = train(_cfg(tiny_cache, run, steps=6, eval_every=3, save_every=3, overrides={}))  # the full tiny model
    assert s["steps"] == 6 and s["world_size"] == 1 and s["skipped_steps"] == 0
    assert s["final_val"]["n"] == 12  # the whole val split
    assert 0.0 <= s["final_val"]["auc"] <= 1.0
    # final and best checkpoints load; config.json carries the calibrated threshold and the cache's preprocess
    model, meta = load_model(run)
    assert meta["threshold"] == pytest.approx(s["threshold"])
    assert meta["model"]["preprocess"]["face_size"] == 32 and meta["model"]["name"] == "tiny"
    assert meta["step"] == 6 and meta["balancer"] == "ompareto" and meta["model"]["ms_depth"] == 2
    best, bmeta = load_model(run / "best")
    assert bmeta["val_auc"] == pytest.approx(s["best_val_auc"])
    assert bmeta["step"] == s["best_step"]
    st = load_train_state(run / "train_state.pt")
    assert st["step"] == 6 and "optimizer" in st and "rng" in st
    recs = _records(run)
    kinds = {r["kind"] for r in recs}
    assert {"train", "val", "epoch"} <= kinds
    tr = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in tr] == list(range(1, 7))
    for key in ("train/loss", "lr", "train/multimodal", "train/unimodal_audio", "pareto/audio/cos",
                "pareto/video/alpha_m", "pareto/audio/lambda_orth", "pareto/video/norm_u"):
        assert key in tr[0], key
    assert all(math.isfinite(r["train/loss"]) for r in tr)
    ep = [r for r in recs if r["kind"] == "epoch"]
    assert ep and "train/acc" in ep[0] and ep[0]["epoch"] == 0  # 24 train samples / 4 = 6 steps per epoch
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    assert not list(run.glob(".*tmp"))


def test_sum_balancer_overrides_and_existing_run(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    argv = ["train", "--data", str(tiny_cache), "--model", "tiny", "--out", str(run), "--steps", "3",
            "--batch-size", "4", "--balancer", "sum", "--set", "use_contrastive=false", "--set", "ms_depth=0",
            "--no-tensorboard", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["balancer"] == "sum" and out["steps"] == 3
    meta = json.loads((run / "config.json").read_text())
    assert meta["model"]["use_contrastive"] is False and meta["model"]["ms_depth"] == 0
    recs = _records(run)
    assert not any(k.startswith("pareto/") for r in recs for k in r)
    # the run is never overwritten without --resume
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and err.count("\n") == 1
    # --resume of a finished run: nothing more to do, same result
    assert main(argv + ["--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--set", "no_such_field=1"], "unknown ModelConfig field"),
        (["--set", "oops"], "key=value"),
        (["--model", "nope"], "unknown model"),
        (["--precision", "fp16", "--device", "cpu"], "needs a CUDA device"),
    ],
)
def test_cli_usage_errors_are_one_line(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       extra: list[str], needle: str) -> None:
    argv = ["train", "--data", str(tiny_cache), "--model", "tiny", "--out", str(tmp_path / "x"), "--steps", "1", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("error: ") and err.count("\n") == 1


def test_cli_missing_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not a prepared cache" in capsys.readouterr().err


def test_nan_guard_skips_the_step(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from macbdf.models.losses import MACBCriterion

    orig = MACBCriterion.forward
    calls = {"n": 0}

    def poisoned(self: MACBCriterion, out: dict, batch: dict) -> dict:
        losses = orig(self, out, batch)
        calls["n"] += 1  # the criterion runs once per training step
        if calls["n"] == 3:
            losses["multimodal"] = losses["multimodal"] * float("nan")
        return losses

    monkeypatch.setattr(MACBCriterion, "forward", poisoned)
    run = tmp_path / "nan"
    s = train(_cfg(tiny_cache, run, steps=5, eval_every=0, save_every=0))
    assert s["skipped_steps"] == 1 and s["steps"] == 5
    skips = [r for r in _records(run) if r["kind"] == "skip"]
    assert [r["step"] for r in skips] == [3]
    model, _ = load_model(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _run_cli_subprocess(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "macbdf", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(tiny_cache: Path, tmp_path: Path) -> None:
    # 6 steps per epoch: the checkpoint at step 5 is mid-epoch; the resumed run then crosses an epoch end
    steps, save_every = 9, 5
    common = ["--data", str(tiny_cache), "--model", "tiny", "--steps", str(steps), "--batch-size", "4",
              "--save-every", str(save_every), "--eval-every", "4", "--log-every", "1", "--no-tensorboard",
              "--seed", "3", "--set", "ms_depth=0", "--ema", "0.9", "--augment", "flip,color,gain"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    proc = _run_cli_subprocess(["train", *common, "--out", str(killed)])
    state = killed / "train_state.pt"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if state.exists() and proc.poll() is None:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    at = int(load_train_state(state)["step"])
    assert at == 5  # mid-epoch

    cfg = dict(steps=steps, save_every=save_every, eval_every=4, seed=3, tensorboard=False, ema=0.9,
               augment="flip,color,gain")
    s_ref = train(_cfg(tiny_cache, ref, **cfg))
    s_res = train(_cfg(tiny_cache, killed, resume=True, **cfg))
    assert s_res["resumed_from_step"] == at
    w_ref, w_res = _weights(ref), _weights(killed)
    assert w_ref.keys() == w_res.keys()
    for k in w_ref:
        assert torch.equal(w_ref[k], w_res[k]), k
    for k in ("final_val", "best_val_auc", "best_step", "threshold", "steps", "skipped_steps"):
        assert s_ref[k] == s_res[k], k

    def strip(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in recs]

    assert strip(_records(ref)) == strip(_records(killed))  # the log has no gap and no duplicate
    assert json.loads((ref / "best" / "config.json").read_text())["step"] == \
        json.loads((killed / "best" / "config.json").read_text())["step"]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "macbdf", "train", "--data", str(tiny_cache), "--model", "tiny", "--out", str(run),
           "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--save-every", "2", "--device", "cpu",
           "--no-tensorboard", "--json", "--set", "ms_depth=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    assert s["world_size"] == 2
    assert s["ranks_agree"] is True  # OM-Pareto's update was identical on both ranks
    assert s["batches_per_epoch"] == 3  # 24 samples / (2 ranks x 4)
    assert s["final_val"]["n"] == 12  # validation gathered from both ranks, no duplicates
    model, meta = load_model(run)
    assert meta["step"] == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_pareto_sample_only_variant(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "sample"
    s = train(_cfg(tiny_cache, run, steps=2, eval_every=2, save_every=0, pareto_unimodal="sample"))
    assert s["steps"] == 2
    assert json.loads((run / "config.json").read_text())["pareto_unimodal"] == "sample"
    tr = [r for r in _records(run) if r["kind"] == "train"]
    assert all("pareto/video/cos" in r and math.isfinite(r["pareto/video/cos"]) for r in tr)
    with pytest.raises(Exception, match="pareto-unimodal"):
        TrainConfig(data="d", out="o", pareto_unimodal="frames").validate()


def test_balanced_epochs_repeat_the_authentic_samples(tiny_cache: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import macbdf_train.trainer as T
    from macbdf.data.dataset import CacheDataset

    assert T.balanced_index([0, 1, 1, 1, -1, 1]) == [0, 1, 2, 3, 4, 5, 0, 0, 0]
    assert T.balanced_index([1, 1]) == [0, 1] and T.balanced_index([0, 0, 1]) == [0, 1, 2]
    with pytest.raises(Exception, match="balance"):
        TrainConfig(data="d", out="o", balance="yes").validate()
    labels = CacheDataset(tiny_cache, split="train").labels()
    seen: list[int] = []
    real_loader = T._Trainer._epoch_loader

    def spy(self: Any, epoch: int, start: int) -> Any:
        seen.extend(self.epoch_index)
        return real_loader(self, epoch, start)

    monkeypatch.setattr(T._Trainer, "_epoch_loader", spy)
    s = train(_cfg(tiny_cache, tmp_path / "bal", steps=2, eval_every=2, save_every=0, balance="label"))
    assert s["steps"] == 2 and seen
    idx = seen[: len(T.balanced_index(labels))]
    n_real = sum(1 for i in idx if labels[i] == 0)
    n_fake = sum(1 for i in idx if labels[i] == 1)
    assert sorted(set(idx)) == list(range(len(labels)))            # every sample still seen
    assert n_real > sum(1 for y in labels if y == 0)                # authentic ones repeated
    assert abs(n_real - n_fake) <= max(1, n_fake // 2)              # about balanced


def test_best_checkpoint_ties_go_to_the_lower_val_loss(tiny_cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import macbdf_train.trainer as T

    script = iter([(0.9, 0.6), (1.0, 0.5), (1.0, 0.3), (1.0, 0.4), (0.95, 0.1)])

    def fake_eval(self: Any) -> dict[str, float]:
        auc, bce = next(script)
        return {"val/auc": auc, "val/bce": bce, "val/threshold": 0.5, "val/acc": 0.5, "val/n": 4}

    monkeypatch.setattr(T._Trainer, "_evaluate", fake_eval)
    run = tmp_path / "ties"
    s = train(_cfg(tiny_cache, run, steps=5, eval_every=1, save_every=0))
    assert s["best_step"] == 3 and s["best_val_auc"] == 1.0          # the second 1.0, with the lower BCE
    assert json.loads((run / "best" / "config.json").read_text())["step"] == 3


def test_lr_scales_give_a_module_its_own_learning_rate(tiny_cache: Path, tmp_path: Path) -> None:
    from macbdf.models.registry import create_model
    from macbdf_train.config import TrainError
    from macbdf_train.optim import param_groups

    m = create_model("tiny")
    groups = param_groups([m], 0.05, lr=1e-3, lr_scales={"video_encoder": 0.25})
    video = {id(p) for p in m.video_encoder.parameters()}
    for g in groups:
        inside = [id(p) in video for p in g["params"]]
        assert all(inside) or not any(inside)
        assert g["lr"] == pytest.approx(2.5e-4 if all(inside) else 1e-3)
        assert g["weight_decay"] == (0.05 if g["params"][0].ndim >= 2 else 0.0)
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    with pytest.raises(Exception, match="lr-scale"):
        TrainConfig(data="d", out="o", lr_scales={"video_encoder": 0}).validate()
    with pytest.raises(TrainError, match="match no model parameter"):
        param_groups([m], 0.05, lr=1e-3, lr_scales={"video_encodr": 0.5})
    s = train(_cfg(tiny_cache, tmp_path / "scaled", steps=2, eval_every=2, save_every=0,
                   lr_scales={"video_encoder": 0.5}))
    assert s["steps"] == 2
    assert json.loads((tmp_path / "scaled" / "train_config.json").read_text())["lr_scales"] == {"video_encoder": 0.5}


def test_no_nan_fill_changes_nothing(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training leaves out deterministic mode's NaN fill of new tensors (a quarter of a CPU step): the
    weights, metrics and validation figures are bit-identical to a run with the fill, and the global flag
    is restored afterwards."""
    import macbdf_train.trainer as T
    from safetensors.torch import load_file

    before = torch.utils.deterministic.fill_uninitialized_memory
    runs = {}
    for fill in (True, False):
        monkeypatch.setattr(T, "FILL_UNINITIALIZED", fill)
        run = tmp_path / f"fill_{fill}"
        s = train(_cfg(tiny_cache, run, steps=6, eval_every=3, save_every=0, overrides={}))
        assert torch.utils.deterministic.fill_uninitialized_memory == before
        runs[fill] = (s, load_file(str(run / "model.safetensors")),
                      [{k: v for k, v in r.items() if "time" not in k} for r in _records(run)])
    (s1, w1, m1), (s0, w0, m0) = runs[True], runs[False]
    assert w1.keys() == w0.keys() and all(torch.equal(w1[k], w0[k]) for k in w1)
    assert m1 == m0 and s1["final_val"] == s0["final_val"]
