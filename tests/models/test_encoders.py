"""§3.1 encoders: token layout, folded normalisation, masking, log-mel standardisation, odd sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from einops import rearrange

from macbdf.models.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Attention,
    AudioEncoder,
    VideoEncoder,
    normalise_logmel,
    time_tokens_valid,
)
from macbdf.models.registry import get_model_config


def test_video_tokens_equal_explicit_normalise_patch_embed():
    cfg = get_model_config("tiny").replace(video_depth=0, patch_size=16)
    enc = VideoEncoder(cfg).double()
    video = torch.rand(2, 5, 3, 40, 33, dtype=torch.float64)     # T, H, W not multiples of 2 / 16
    mask = torch.ones(2, 5, dtype=torch.bool)
    got, valid = enc(video, mask)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 1, 3, 1, 1)
    x = (video - mean) / std
    # explicit reading of the padding: raw zeros beyond the frame / face borders
    pad_val = ((0 - mean) / std)
    full = pad_val.expand(2, 6, 3, 48, 48).clone()
    full[:, :5, :, :40, :33] = x
    patches = rearrange(full, "b (t pt) c (h ph) (w pw) -> b t (h w) (pt c ph pw)", pt=2, ph=16, pw=16)
    # the 6x6 spatial embedding is resized to the 3x3 grid; a shorter window uses the first time embeddings
    pos_sp = torch.nn.functional.interpolate(rearrange(enc.pos_space, "(h w) c -> 1 c h w", h=6), size=(3, 3),
                                             mode="bilinear", align_corners=False)
    tok = enc.embed(patches) + rearrange(pos_sp, "1 c h w -> (h w) c")[None, None] + enc.pos_time[:3][None, :, None]
    # atol: the buffers hold the ImageNet constants in fp32 precision
    torch.testing.assert_close(got, enc.norm(tok), atol=1e-6, rtol=1e-6)
    assert got.shape == (2, 3, 9, cfg.dim) and valid.shape == (2, 3) and bool(valid.all())


def test_time_token_validity():
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    v = time_tokens_valid(mask, tubelet=2, t_tokens=3)
    assert v.tolist() == [[True, True, True], [True, True, False], [True, False, False]]  # first always valid


def test_attention_key_mask_equals_attention_over_the_subset():
    torch.manual_seed(0)
    att = Attention(8, 2).double().eval()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    keep = torch.tensor([[True, True, False, True, False, True]])
    full = att(x, keep)
    sub = x[:, keep[0]]
    q, k, v = rearrange(att.qkv(x), "n l (three h d) -> three n h l d", three=3, h=2)
    ks, vs = k[:, :, keep[0]], v[:, :, keep[0]]
    w = torch.softmax(q @ ks.transpose(-1, -2) / math.sqrt(4), -1)
    want = att.proj(rearrange(w @ vs, "n h l d -> n l (h d)"))
    torch.testing.assert_close(full, want)
    assert sub.shape[1] == 4


def test_logmel_standardisation_matches_numpy_and_handles_constants():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 12, 5)) * 3 - 4
    rows = np.ones((2, 12), dtype=bool)
    rows[1, 8:] = False
    got = normalise_logmel(torch.tensor(a), torch.tensor(rows)).numpy()
    for i in range(2):
        v = a[i][rows[i]]
        np.testing.assert_allclose(got[i][rows[i]], (v - v.mean()) / np.sqrt(v.var() + 1e-5), rtol=1e-6)
        assert np.all(got[i][~rows[i]] == 0)
    const = normalise_logmel(torch.full((1, 4, 3), -7.0), torch.ones(1, 4, dtype=torch.bool))
    assert torch.equal(const, torch.zeros_like(const))


@pytest.mark.parametrize("t,length,mels", [(8, 32, 64), (7, 25, 23), (3, 40, 64), (1, 4, 10)])
def test_audio_encoder_shapes_at_odd_sizes(t, length, mels):
    cfg = get_model_config("tiny")
    enc = AudioEncoder(cfg)
    tok, valid = enc(torch.randn(2, length, mels), torch.ones(2, t, dtype=torch.bool))
    tp = math.ceil(t / cfg.tubelet)
    assert tok.shape == (2, tp, math.ceil(mels / cfg.audio_patch_mels), cfg.dim)
    assert valid.shape == (2, tp) and torch.isfinite(tok).all()


def test_audio_and_video_share_the_time_axis():
    cfg = get_model_config("small")
    v, _ = VideoEncoder(cfg)(torch.rand(1, 16, 3, 96, 96), torch.ones(1, 16, dtype=torch.bool))
    a, _ = AudioEncoder(cfg)(torch.randn(1, 64, 64), torch.ones(1, 16, dtype=torch.bool))
    assert v.shape[1] == a.shape[1] == 8          # T' = T / tubelet for both streams
    assert v.shape[2] == 9 and a.shape[2] == 4    # 3x3 face patches of 32 px, 64 mels / 16


def test_video_stem_uses_batch_statistics():
    # BatchNorm (not a per-sample norm) is what lets the stem see *how much* fine detail a face has:
    # scaling one sample's high-frequency content must change its features relative to the others.
    torch.manual_seed(0)
    from macbdf.models.encoders import ConvStem

    stem = ConvStem(3, 16, 2, layers=3)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in stem.modules())
    x = torch.rand(4, 3, 32, 32)
    smooth = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    x2 = torch.cat([x[:2], smooth[2:]])        # two samples lose all their detail
    y = stem(x2).abs().mean(dim=(1, 2, 3))
    assert y[:2].min() > y[2:].max()           # detail shows up as larger activations


def test_conv_stems_keep_token_layout_and_validate():
    base = get_model_config("tiny")
    stem = base.replace(video_stem=8, audio_stem=8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    v = torch.rand(2, 8, 3, 96, 96)
    a = torch.randn(2, 8 * base.preprocess.mel_per_frame, base.preprocess.n_mels)
    # same token grid with and without the stem, so every later module is unchanged
    assert VideoEncoder(stem)(v, mask)[0].shape == VideoEncoder(base)(v, mask)[0].shape
    assert AudioEncoder(stem)(a, mask)[0].shape == AudioEncoder(base)(a, mask)[0].shape
    assert stem.validate() is stem
    deep = base.replace(video_stem=8, video_stem_layers=5)   # stride 32 = patch_size: one cell per token
    assert VideoEncoder(deep)(v, mask)[0].shape == VideoEncoder(base)(v, mask)[0].shape
    assert get_model_config("tiny").video_stem == 0 and get_model_config("base").video_stem == 0
    assert get_model_config("small").video_stem > 0  # the CPU demo config needs it (RESULTS.md)
    with pytest.raises(ValueError, match="patch_size divisible by"):
        base.replace(video_stem=8, patch_size=30).validate()
    with pytest.raises(ValueError, match="patch_size divisible by"):
        base.replace(video_stem=8, video_stem_layers=6).validate()
    with pytest.raises(ValueError, match="video_stem / audio_stem"):
        base.replace(audio_stem=1).validate()
