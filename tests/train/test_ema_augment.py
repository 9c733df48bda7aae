"""Weight EMA (`--ema`) and training augmentation (`--augment`): numerics against a direct
computation, what the trainer saves, and one-line errors."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from macbdf.checkpoint import load_model, load_train_state
from macbdf.cli import main
from macbdf.data.dataset import CacheDataset, parse_augment
from macbdf_train.ema import WeightEMA
from macbdf_train.trainer import TrainConfig, train

from test_trainer import _cfg  # tests/train is on sys.path (rootdir-less test folders)


def test_ema_matches_the_recurrence() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = WeightEMA(net, decay=0.9)
    ref = {k: v.clone().double() for k, v in net.state_dict().items()}
    for n in range(20):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(5, 3))  # moves the BatchNorm statistics and its counter
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in net.state_dict().items():
            ref[k] = d * ref[k] + (1 - d) * v.double() if v.dtype.is_floating_point else v.clone().double()
        ema.update(net)
    assert ema.updates == 20 and ema.current_decay() == pytest.approx(21 / 30)  # still ramping up
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.double(), ref[k], rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError):
        WeightEMA(net, decay=1.0)


def test_trainer_validates_and_saves_the_averaged_weights(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "ema"
    s = train(_cfg(tiny_cache, run, steps=6, eval_every=3, save_every=3, ema=0.9, augment="flip,color,gain"))
    st = load_train_state(run / "train_state.pt")
    assert st["ema"]["updates"] == 6
    saved = load_file(str(run / "model.safetensors"))
    avg, live = st["ema"]["module"], st["model"]
    assert saved.keys() == avg.keys()
    assert all(torch.equal(saved[k], avg[k]) for k in saved)
    assert any(not torch.equal(saved[k], live[k]) for k in saved if saved[k].dtype.is_floating_point)
    _, meta = load_model(run)
    assert meta["ema"] == 0.9 and meta["augment"] == "flip,color,gain"
    assert math.isfinite(s["final_val"]["auc"])


def _items(ds: CacheDataset, seed: int) -> list[dict]:
    torch.manual_seed(seed)
    return [ds[i] for i in range(len(ds))]


def test_augmentations_against_a_direct_computation(tiny_cache: Path) -> None:
    plain = CacheDataset(tiny_cache, split="train", num_frames=8, train=True)
    aug = CacheDataset(tiny_cache, split="train", num_frames=8, train=True, augment="flip,color,gain")
    flips = 0
    for i in range(len(plain)):
        torch.manual_seed(100 + i)
        a = plain[i]
        r = torch.rand(4)  # the draws the augmenting dataset makes right after choosing the window
        torch.manual_seed(100 + i)
        b = aug[i]
        assert int(a["start_frame"]) == int(b["start_frame"])  # same window
        t = int(a["num_valid"])
        v = a["video"][:t]
        if r[0] < 0.5:
            v = v.flip(-1)
            flips += 1
        c, br = 0.8 + 0.4 * float(r[1]), 0.16 * float(r[2]) - 0.08
        v = ((v - v.mean()) * c + v.mean() + br).clamp(0, 1)
        torch.testing.assert_close(b["video"][:t], v, rtol=0, atol=1e-6)
        assert torch.equal(b["video"][t:], a["video"][t:])  # padding untouched
        mpf = plain.mel_per_frame
        g = (12.0 * float(r[3]) - 6.0) / 10.0 * np.log(10.0)
        torch.testing.assert_close(b["audio"][: t * mpf], a["audio"][: t * mpf] + g, rtol=0, atol=1e-5)
        assert torch.equal(b["audio"][t * mpf:], a["audio"][t * mpf:])
        for k in ("label", "video_label", "audio_label", "frame_label_video", "frame_label_audio", "method_id"):
            assert torch.equal(a[k], b[k]), k
    assert 0 < flips < len(plain)
    # evaluation windows are never augmented
    ev_plain = CacheDataset(tiny_cache, split="val", num_frames=8)
    ev_aug = CacheDataset(tiny_cache, split="val", num_frames=8, augment="flip,color,gain")
    assert all(torch.equal(x["video"], y["video"]) for x, y in zip(_items(ev_plain, 0), _items(ev_aug, 0)))


def test_augment_and_ema_errors_are_one_line(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_augment(" flip,none,flip ") == ("flip",)
    with pytest.raises(ValueError, match="unknown augmentation blur"):
        parse_augment("flip,blur")
    with pytest.raises(Exception, match="--ema"):
        TrainConfig(data="d", out="o", ema=1.5).validate()
    for extra, needle in ((["--augment", "blur"], "unknown augmentation blur"), (["--ema", "-1"], "--ema")):
        argv = ["train", "--data", str(tiny_cache), "--model", "tiny", "--out", str(tmp_path / "x"), "--steps", "1", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.startswith("error: ") and err.count("\n") == 1, err
