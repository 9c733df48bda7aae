"""macbdf.checkpoint: safetensors + config.json round trip, buffers, atomicity, clear errors, train state."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import macbdf
from macbdf.checkpoint import (
    CheckpointError,
    is_checkpoint,
    load_model,
    load_train_state,
    read_meta,
    save_model,
    save_train_state,
    unwrap_model,
)
from macbdf.models.registry import create_model


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    m = create_model("tiny")
    # make every persistent buffer differ from a fresh model's, so loading them is actually checked
    persistent = set(m.state_dict())
    with torch.no_grad():
        for name, b in m.named_buffers():
            if name in persistent and b.dtype.is_floating_point:
                # small positive factors keep variances positive and precision matrices definite
                b.mul_(1.0 + 0.05 * torch.rand(b.shape, generator=torch.Generator().manual_seed(len(name))))
                b.add_(0.01 * torch.rand(b.shape, generator=torch.Generator().manual_seed(len(name) + 1)))
    return m.eval()


def test_round_trip_weights_buffers_and_meta(tiny: nn.Module, tmp_path: Path) -> None:
    out = save_model(tiny, tmp_path / "ck", extra={"threshold": 0.37, "trained_on": "synth", "val_auc": 0.9})
    assert is_checkpoint(out)
    meta = json.loads((out / "config.json").read_text())
    assert meta["threshold"] == 0.37 and meta["trained_on"] == "synth" and meta["val_auc"] == 0.9
    assert meta["macbdf_version"] == macbdf.__version__
    assert meta["model"] == tiny.config.to_dict()
    assert "preprocess" in meta["model"]
    model, meta2 = load_model(out)
    assert meta2 == meta
    assert not model.training
    sd_a, sd_b = tiny.state_dict(), model.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k
    batch = tiny.dummy_batch(batch_size=2)
    with torch.no_grad():
        a, b = tiny(batch)["logit"], model(batch)["logit"]
    assert torch.isfinite(a).all() and torch.equal(a, b)
    # no temporary files left behind
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.safetensors", "model_card.json"]


def test_default_threshold_and_wrapped_model(tiny: nn.Module, tmp_path: Path) -> None:
    wrapped = nn.DataParallel(tiny)
    assert unwrap_model(wrapped) is tiny
    save_model(wrapped, tmp_path)
    meta = read_meta(tmp_path)
    assert meta["threshold"] == 0.5
    model, _ = load_model(tmp_path)
    assert set(model.state_dict()) == set(tiny.state_dict())  # no "module." prefixes


def test_overwrite_replaces_atomically(tiny: nn.Module, tmp_path: Path) -> None:
    save_model(tiny, tmp_path, extra={"threshold": 0.1})
    save_model(tiny, tmp_path, extra={"threshold": 0.9})
    assert read_meta(tmp_path)["threshold"] == 0.9
    assert not list(tmp_path.glob(".*tmp"))


def test_config_from_another_version_with_unknown_keys_loads(tiny: nn.Module, tmp_path: Path) -> None:
    save_model(tiny, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["model"]["a_field_from_the_future"] = 3
    meta["model"]["pretrained_video"] = "/nonexistent/weights.safetensors"  # must not be needed to load
    (tmp_path / "config.json").write_text(json.dumps(meta))
    model, _ = load_model(tmp_path)
    assert model.config.pretrained_video is None


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_errors_are_one_line(tiny: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "missing")
    assert "not found" in _one_line(e)

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CheckpointError) as e:
        load_model(f)
    assert "directory" in _one_line(e)

    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)  # empty directory
    assert "config.json" in _one_line(e)

    ck = tmp_path / "ck"
    save_model(tiny, ck)
    (ck / "model.safetensors").write_bytes((ck / "model.safetensors").read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError) as e:
        load_model(ck)
    assert "model.safetensors" in _one_line(e)

    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as e:
        load_model(ck)
    assert "no model.safetensors" in _one_line(e)

    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError) as e:
        load_model(ck)
    assert "corrupt" in _one_line(e)

    (ck / "config.json").write_text(json.dumps({"model": {"name": "tiny", "dim": 5, "heads": 2}}))
    save_model(tiny, tmp_path / "other")
    (ck / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as e:
        load_model(ck)  # dim 5 is not divisible by heads -> the config itself is rejected
    assert "cannot build" in _one_line(e)


def test_weights_that_do_not_match_the_config(tiny: nn.Module, tmp_path: Path) -> None:
    save_model(tiny, tmp_path / "a")
    other = create_model("tiny", dim=48, heads=2)
    save_model(other, tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "a")
    assert "do not match" in _one_line(e)


def test_train_state_round_trip_weights_only(tmp_path: Path) -> None:
    lin = nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": 7,
             "rng": torch.get_rng_state(), "python": [1, 2, 3], "best": None, "name": "x"}
    p = save_train_state(tmp_path / "train_state.pt", state)
    back = load_train_state(p)
    assert back["step"] == 7 and back["best"] is None and back["name"] == "x"
    assert torch.equal(back["rng"], state["rng"])
    opt2 = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert not list(tmp_path.glob(".*tmp"))


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - a pickle payload that would run code on load
        return (print, ("pwned",))


def test_train_state_refuses_pickled_code_and_garbage(tmp_path: Path) -> None:
    p = tmp_path / "bad.pt"
    torch.save({"x": _Evil()}, p)
    with pytest.raises(CheckpointError) as e:
        load_train_state(p)
    assert "corrupt training state" in _one_line(e)
    p.write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(CheckpointError):
        load_train_state(p)
    with pytest.raises(CheckpointError):
        load_train_state(tmp_path / "absent.pt")
