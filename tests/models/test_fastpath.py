"""Inference fast paths (macbdf.models.fastpath) give the reference path's outputs to float rounding.

The reference path is the one autograd uses (gradients on); the fast paths run only without autograd
(``torch.inference_mode`` / ``torch.no_grad``) in eval mode. Weights and BatchNorm statistics are
randomised so that every fold (BatchNorm into a convolution, the input standardisation and the grey
conversion into a first convolution, composed depthwise operators) is exercised with non-trivial values.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from macbdf.models.encoders import ConvStem
from macbdf.models.fusion import AttentionImportance
from macbdf.models.multiscale import MSTLKA, DepthwiseSame, MultiScaleBlock
from macbdf.models.registry import create_model
from macbdf.models.sync import SyncAudioNet, SyncVideoNet

FLOAT_KEYS_SKIP = ()


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 2 + 0.2)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
        for name, p in model.named_parameters():
            if "lambda" in name or "mod_" in name:      # layer scales and zero-initialised modulations
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
            elif "norm" in name:                         # LayerNorm affines (folded into the 1x1 maps)
                p.add_(torch.randn(p.shape, generator=g) * 0.2)
            elif name.endswith("query"):                 # the fusion weights' learned queries
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _reference(model: nn.Module, batch: dict) -> dict:
    with torch.enable_grad():
        return {k: v.detach() for k, v in model(batch).items()}


def _assert_same(ref: dict, fast: dict, atol: float = 1e-5) -> None:
    assert set(ref) == set(fast)
    for k in ref:
        if ref[k].is_floating_point():
            torch.testing.assert_close(fast[k], ref[k], atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(fast[k], ref[k]), k


@pytest.mark.parametrize("name,overrides", [("tiny", {}), ("small", {}), ("small", {"sync_region": "mouth"}),
                                            ("tiny", {"video_stem": 8, "audio_stem": 8, "sync_dim": 8})])
def test_model_inference_path_matches_reference(one_torch_thread, name, overrides):
    torch.manual_seed(0)
    model = _randomise(create_model(name, **overrides)).eval()
    batch = model.dummy_batch(batch_size=3)     # the second sample is partly padded
    ref = _reference(model, batch)
    with torch.inference_mode():
        fast = model(batch)
        again = model(batch)                     # from the caches
    _assert_same(ref, fast)
    _assert_same(fast, again, atol=0.0)
    with torch.no_grad():
        _assert_same(ref, model(batch))


@pytest.mark.parametrize("name,overrides", [("small", {}), ("small", {"fusion": "concat"}), ("small", {"modality": "audio"}),
                                            ("small", {"modality": "video"})])
@pytest.mark.parametrize("face,frames,batch_size", [(80, 9, 2), (100, 5, 3), (112, 19, 2), (64, 2, 1)])
def test_inference_path_matches_reference_on_odd_windows(one_torch_thread, name, overrides, face, frames, batch_size):
    # faces that are not a multiple of the patch (or smaller than one), windows shorter or longer than the
    # configured T and not a multiple of the tubelet, padded frames, and a silent audio track
    model = _randomise(create_model(name, **overrides)).eval()
    pp = model.config.preprocess
    g = torch.Generator().manual_seed(face * 100 + frames)
    batch = {"video": torch.rand(batch_size, frames, 3, face, face, generator=g),
             "audio": torch.randn(batch_size, frames * pp.mel_per_frame, pp.n_mels, generator=g) * 2 - 5,
             "frame_mask": torch.ones(batch_size, frames, dtype=torch.bool)}
    if batch_size > 1:
        batch["frame_mask"][1, max(1, frames // 2):] = False
        batch["audio"][-1] = torch.log(torch.tensor(pp.log_eps))
    ref = _reference(model, batch)
    with torch.inference_mode():
        _assert_same(ref, model(batch))


def test_caches_follow_weight_changes(one_torch_thread):
    torch.manual_seed(0)
    model = _randomise(create_model("small")).eval()
    batch = model.dummy_batch(batch_size=2)
    with torch.inference_mode():
        model(batch)                             # fill the caches
    # an optimizer-style in-place update, then a load_state_dict of other weights
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.05)
    with torch.inference_mode():
        fast = model(batch)
    _assert_same(_reference(model, batch), fast)
    other = _randomise(create_model("small"), seed=1)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        fast = model(batch)
    _assert_same(_reference(model, batch), fast)
    # back to training: the reference path (and its gradients) again, BatchNorm on batch statistics
    model.train()
    out = model(batch)
    out["logit"].sum().backward()
    assert model.video_encoder.stem.net[0].weight.grad is not None


def test_training_mode_and_grad_never_take_the_fast_path():
    torch.manual_seed(0)
    stem = _randomise(ConvStem(3, 16, 2, layers=3))
    x = torch.rand(4, 3, 32, 32)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    with torch.no_grad():                         # train mode: batch statistics, no fold
        y_train = stem(x, mean, std)
        want = stem.net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    torch.testing.assert_close(y_train, want)
    assert "_frozen_cache" not in stem.__dict__
    stem.eval()
    with torch.inference_mode():
        fast = stem(x, mean, std)
    torch.testing.assert_close(fast, stem.net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)), atol=1e-5, rtol=1e-4)
    assert "_frozen_cache" in stem.__dict__


@pytest.mark.parametrize("size,region", [((96, 96), "face"), ((45, 52), "face"), ((96, 96), "mouth"), ((33, 31), "mouth")])
def test_sync_video_fold_of_grey_and_pooling(size, region):
    torch.manual_seed(0)
    net = _randomise(SyncVideoNet(16, width=16, region=region)).eval()
    video = torch.rand(2, 5, 3, *size)
    with torch.enable_grad():
        ref = net(video).detach()
    with torch.inference_mode():
        fast = net(video)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)


def test_sync_audio_fold():
    torch.manual_seed(0)
    net = _randomise(SyncAudioNet(4, 16, 8)).eval()
    audio = torch.randn(2, 40, 16)
    with torch.enable_grad():
        ref = net(audio, 10).detach()
    with torch.inference_mode():
        fast = net(audio, 10)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("nd,shape", [(3, (8, 3, 3)), (2, (8, 4)), (3, (5, 2, 3))])
def test_mstlka_composed_operator(nd, shape):
    torch.manual_seed(0)
    m = MSTLKA(10, ((5, 2), (9, 3)), nd).double()
    x = torch.randn(2, 10, *shape, dtype=torch.float64)
    with torch.enable_grad():
        ref = m(x).detach()
    with torch.no_grad():
        fast = m(x)
        assert "_frozen_cache" in m.__dict__
    torch.testing.assert_close(fast, ref)
    dw = DepthwiseSame(6, 3, 1, nd)
    y = torch.randn(1, 6, *shape)
    with torch.enable_grad():
        r = dw(y).detach()
    with torch.inference_mode():
        torch.testing.assert_close(dw(y), r)


@pytest.mark.parametrize("nd,shape,k,d", [(3, (8, 3, 3), 5, 1), (3, (8, 3, 3), 3, 3), (3, (8, 3, 3), 3, 2),
                                          (2, (8, 4), 9, 3), (2, (17, 5), 4, 2), (3, (1, 1, 1), 5, 2),
                                          (3, (2, 3, 4), 2, 1)])
def test_depthwise_operator_written_without_autograd_is_the_product(nd, shape, k, d):
    # Without autograd the per-channel operator is written entry by entry instead of computed as
    # (C, k^nd) x (k^nd, N^2): bit-identical, and it is still the 'same'-padded dilated convolution.
    torch.manual_seed(k * 10 + d)
    m = DepthwiseSame(6, k, d, nd)
    dense = m._build_matrix(shape, torch.device("cpu"), torch.float32).detach()   # autograd on: the product
    with torch.no_grad():
        written = m._build_matrix(shape, torch.device("cpu"), torch.float32)
    assert torch.equal(dense, written)
    x = torch.randn(2, 6, *shape)
    conv = nn.functional.conv3d if nd == 3 else nn.functional.conv2d
    ref = conv(nn.functional.pad(x, _same_pad(k, d, nd)), m.weight, m.bias, dilation=d, groups=6)
    with torch.no_grad():
        y = m(x)
    assert torch.allclose(y, ref, atol=1e-5)


def _same_pad(k: int, d: int, nd: int) -> tuple[int, ...]:
    left = d * (k - 1) // 2
    right = d * (k - 1) - left
    return (left, right) * nd


@pytest.mark.parametrize("nd,shape,batch", [(3, (8, 3, 3), 1), (3, (8, 3, 3), 3), (2, (8, 4), 1), (2, (5, 7), 2)])
def test_multiscale_block_inference_path(nd, shape, batch):
    # Eq. 11-14 on the inference path: LayerNorm affines and layer scales folded into the 1x1 maps, f1/f2 and
    # f4/f5 fused, MSTLKA's groups stacked into one operator, the map as (B*N, C) tokens
    torch.manual_seed(nd * 10 + batch)
    blk = MultiScaleBlock(12, nd, ((5, 2), (9, 3)))
    with torch.no_grad():
        for name, p in blk.named_parameters():
            p.add_(torch.randn(p.shape) * (0.3 if "lambda" in name or "norm" in name else 0.05))
    x = torch.randn(batch, 12, *shape)
    with torch.enable_grad():
        ref = blk(x).detach()
    with torch.inference_mode():
        fast = blk(x)
        again = blk(x)
    assert "_frozen_cache" in blk.__dict__
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    assert torch.equal(fast, again)
    with torch.no_grad():                        # a weight update rebuilds the folds
        blk.lambda1.mul_(2.0)
        blk.norm2.weight.add_(0.5)
    with torch.enable_grad():
        ref2 = blk(x).detach()
    with torch.inference_mode():
        torch.testing.assert_close(blk(x), ref2, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("padded", [False, True])
def test_attention_importance_inference_path(padded):
    # one learned query: the score and value products folded into (C, H) and (hidden, H*C) maps
    torch.manual_seed(int(padded))
    att = AttentionImportance(16, 4)
    with torch.no_grad():
        att.query.add_(torch.randn(att.query.shape))
        att.norm.weight.add_(torch.randn(16) * 0.3)
        att.norm.bias.add_(torch.randn(16) * 0.3)
        att.mha.in_proj_bias.add_(torch.randn(48) * 0.1)
        att.mha.out_proj.bias.add_(torch.randn(16) * 0.1)
    att.eval()
    tokens = torch.randn(3, 10, 16)
    valid = torch.ones(3, 10, dtype=torch.bool)
    if padded:
        valid[1, 6:] = False
        valid[2, 1:] = False
    with torch.enable_grad():
        ref = att(tokens, valid).detach()
        ref_none = att(tokens, None).detach()
    with torch.inference_mode():
        torch.testing.assert_close(att(tokens, valid), ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(att(tokens, None), ref_none, atol=1e-5, rtol=1e-4)
    assert (ref > 0).any()                       # not a dead ReLU: the comparison means something



@pytest.mark.parametrize("widths", [(0.5, 0.25), (), (1.0,)])
def test_progressive_head_inference_path(widths):
    from macbdf.models.heads import ProgressiveHead

    torch.manual_seed(len(widths))
    head = _randomise(ProgressiveHead(24, widths, dropout=0.3)).eval()
    x = torch.randn(5, 24)
    with torch.enable_grad():
        ref = head(x).detach()
    with torch.inference_mode():
        fast = head(x)
    assert fast.shape == (5,)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    assert "_frozen_cache" in head.__dict__
