"""Eq. 10-18 pieces against direct computations: MSTLKA/MFTLKA, GSAU, the Eq. 11-14 block, Eq. 17-18, RFMF."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macbdf.models.fusion import RFMF, AttentionImportance, FusionWeights, importance_weights
from macbdf.models.multiscale import (
    GSAU,
    MSTLKA,
    STLKA,
    ChannelLayerNorm,
    FusionModulation,
    MultiScaleBlock,
    fuse_weighted,
    pool_to_time,
    split_sizes,
)

pytestmark = [pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad"),
              pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")]  # (12, 3): expected

CONV = {2: F.conv2d, 3: F.conv3d}


def same_dw(x, conv):
    """Depthwise conv with explicit 'same' padding (extra pad at the end when the total is odd)."""
    nd = x.dim() - 2
    k, d = conv.weight.shape[-1], conv.dilation[0]
    total = d * (k - 1)
    pad = []
    for _ in range(nd):
        pad += [total // 2, total - total // 2]
    return CONV[nd](F.pad(x, pad), conv.weight, conv.bias, dilation=d, groups=x.shape[1])


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("k,d", [(7, 2), (14, 3), (12, 3), (5, 1)])
def test_eq15_stlka_is_dw_then_dilated_dw_then_pw(nd, k, d):
    lka = STLKA(4, k, d, nd).double()
    assert lka.dw.kernel_size == (2 * d - 1,) * nd
    assert lka.dwd.kernel_size == (math.ceil(k / d),) * nd and lka.dwd.dilation == (d,) * nd
    shape = (2, 4, 5, 6, 7)[: 2 + nd]
    x = torch.randn(shape, dtype=torch.float64)
    want = CONV[nd](same_dw(same_dw(x, lka.dw), lka.dwd), lka.pw.weight, lka.pw.bias)
    torch.testing.assert_close(lka(x), want)


@pytest.mark.parametrize("nd,shape,k,d", [(3, (8, 3, 3), 5, 1), (3, (8, 3, 3), 3, 3), (3, (4, 2, 5), 4, 2),
                                          (2, (8, 4), 5, 1), (2, (7, 3), 4, 3), (3, (1, 1, 1), 3, 1)])
def test_depthwise_matrix_path_equals_convolution(monkeypatch, nd, shape, k, d):
    # the small-map path (a per-channel matrix built from shift operators) must be the convolution,
    # forwards and backwards, also for even kernels (asymmetric 'same' padding) and dilation
    import macbdf.models.multiscale as ms

    torch.manual_seed(0)
    conv = ms.DepthwiseSame(6, k, d, nd).double()
    x = torch.randn((3, 6, *shape), dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(ms, "_DENSE_LIMIT", 10**9)
    y = conv(x)
    want = same_dw(x, conv)
    torch.testing.assert_close(y, want)
    g = torch.randn_like(y)
    gx, gw, gb = torch.autograd.grad((y * g).sum(), (x, conv.weight, conv.bias))
    wx, ww, wb = torch.autograd.grad((want * g).sum(), (x, conv.weight, conv.bias))
    for got, exp in ((gx, wx), (gw, ww), (gb, wb)):
        torch.testing.assert_close(got, exp)
    monkeypatch.setattr(ms, "_DENSE_LIMIT", 0)   # and the convolution path gives the same
    torch.testing.assert_close(conv(x), want)


def test_split_sizes():
    assert split_sizes(10, 3) == [4, 3, 3] and sum(split_sizes(64, 3)) == 64 and split_sizes(6, 2) == [3, 3]


@pytest.mark.parametrize("nd", [2, 3])
def test_eq16_mstlka_groups_gate_times_lka(nd):
    specs = ((7, 2), (14, 3), (21, 3))
    m = MSTLKA(10, specs, nd).double()
    x = torch.randn((1, 10, 4, 5, 3)[: 2 + nd], dtype=torch.float64)
    parts, start = [], 0
    for size, lka, gate, (_, d) in zip(split_sizes(10, 3), m.lka, m.gate, specs):
        xi = x[:, start:start + size]
        assert gate.kernel_size == (2 * d - 1,) * nd and gate.groups == size   # depthwise gate
        parts.append(same_dw(xi, gate) * lka(xi))
        start += size
    torch.testing.assert_close(m(x), torch.cat(parts, 1))


def test_channel_layer_norm_matches_layer_norm_over_channels():
    ln = ChannelLayerNorm(6).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 3, 4, 5, dtype=torch.float64)
    want = F.layer_norm(x.movedim(1, -1), (6,), ln.weight, ln.bias, eps=ln.eps).movedim(-1, 1)
    torch.testing.assert_close(ln(x), want)


@pytest.mark.parametrize("nd", [2, 3])
def test_eq11_to_14_block_matches_direct_computation(nd):
    blk = MultiScaleBlock(8, nd, ((7, 2), (14, 3)), gsau_kernel=3, layer_scale_init=0.1).double()
    assert float(blk.lambda1) == pytest.approx(0.1) and blk.lambda1.numel() == 1   # learnable scalars
    h = torch.randn((2, 8, 5, 3, 4)[: 2 + nd], dtype=torch.float64)
    pw = lambda conv, x: CONV[nd](x, conv.weight, conv.bias)   # f_i: 1x1 convolutions
    n = blk.norm1(h)                                                                     # Eq. 11
    h1 = h + blk.lambda1 * pw(blk.f3, blk.mstlka(pw(blk.f1, n)) * pw(blk.f2, n))          # Eq. 12
    n = blk.norm2(h1)                                                                    # Eq. 13
    gsau = pw(blk.f4, n) * same_dw(pw(blk.f5, n), blk.gsau.dw)                            # GSAU(x, a) = x * DW(a)
    h2 = h1 + blk.lambda2 * pw(blk.f6, gsau)                                             # Eq. 14
    torch.testing.assert_close(blk(h), h2)
    with torch.no_grad():
        blk.lambda1.zero_()
        blk.lambda2.zero_()
    torch.testing.assert_close(blk(h), h)   # zero scales: identity


def test_gsau_gate():
    g = GSAU(3, 3, nd=3).double()
    x, a = torch.randn(1, 3, 4, 4, 4, dtype=torch.float64), torch.randn(1, 3, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(g(x, a), x * same_dw(a, g.dw))


@pytest.mark.parametrize("shape", [(1, 8, 3, 1, 1), (2, 8, 7, 5, 3), (1, 8, 1, 2, 9)])
def test_multiscale_block_keeps_odd_shapes(shape):
    blk = MultiScaleBlock(8, 3, ((7, 2), (14, 3), (21, 3)))
    assert blk(torch.randn(shape)).shape == shape
    blk2 = MultiScaleBlock(8, 2, ((7, 2), (14, 3)))
    assert blk2(torch.randn(shape[:4])).shape == shape[:4]


def test_pool_to_time():
    v = torch.randn(2, 5, 3, 4, 6)
    torch.testing.assert_close(pool_to_time(v), v.mean((3, 4)).transpose(1, 2))
    a = torch.randn(2, 5, 3, 7)
    torch.testing.assert_close(pool_to_time(a), a.mean(3).transpose(1, 2))


def test_eq17_weighted_fusion():
    v, a = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    w = torch.tensor([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    got = fuse_weighted(v, a, w)
    for i in range(3):
        torch.testing.assert_close(got[i], w[i, 0] * v[i] + w[i, 1] * a[i])


def test_eq18_modulation_identity_at_init_then_formula():
    mod = FusionModulation(5)
    k = torch.randn(2, 5, 4, 3, 3)
    x_fused = torch.randn(2, 4, 5)
    torch.testing.assert_close(mod(k, x_fused), k)   # identity at initialisation
    with torch.no_grad():
        mod.proj.weight.normal_()
        mod.proj.bias.normal_()
    gate = 1 + torch.tanh(x_fused @ mod.proj.weight.t() + mod.proj.bias)   # (B, T', C)
    want = k * gate.permute(0, 2, 1)[:, :, :, None, None]
    torch.testing.assert_close(mod(k, x_fused), want)
    k2 = torch.randn(2, 5, 4, 6)   # the audio map (B, C, T', F')
    torch.testing.assert_close(mod(k2, x_fused), k2 * gate.permute(0, 2, 1)[:, :, :, None])


def test_eq10_importance_weights_direct():
    rng = np.random.default_rng(0)
    att_v, att_a = rng.uniform(0, 2, 4), rng.uniform(0, 2, 4)
    d_v, d_a = rng.uniform(0.1, 2, 4), rng.uniform(0.1, 2, 4)
    gamma, eps = 0.3, 1e-6
    got = importance_weights(*(torch.tensor(t) for t in (att_v, att_a, d_v, d_a)), gamma=gamma, eps=eps).numpy()
    wv = gamma * att_v + (1 - gamma) / (d_v + eps)
    wa = gamma * att_a + (1 - gamma) / (d_a + eps)
    np.testing.assert_allclose(got[:, 0], wv / (wv + wa), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], wa / (wv + wa), rtol=1e-12)
    # a sample nearer its cluster centre (smaller D) gets more weight for that modality, all else equal
    w = importance_weights(torch.ones(1), torch.ones(1), torch.tensor([0.2]), torch.tensor([1.0]), gamma=0.5)
    assert float(w[0, 0]) > float(w[0, 1])


def test_eq10_attention_importance_is_relu_of_f_over_mha():
    torch.manual_seed(0)
    imp = AttentionImportance(8, 2).double()
    tokens = torch.randn(3, 6, 8, dtype=torch.float64)
    valid = torch.tensor([[True] * 6, [True] * 3 + [False] * 3, [True] + [False] * 5])
    kv = imp.norm(tokens)
    q = imp.query.expand(3, -1, -1)
    att, _ = imp.mha(q, kv, kv, key_padding_mask=~valid)
    want = torch.relu(imp.f(att[:, 0])).squeeze(-1)
    torch.testing.assert_close(imp(tokens, valid), want)
    assert bool((imp(tokens, valid) >= 0).all())
    # masked tokens do not matter
    t2 = tokens.clone()
    t2[1, 3:] = 100.0
    torch.testing.assert_close(imp(t2, valid)[1], imp(tokens, valid)[1])


def test_fusion_weights_module_uses_distances():
    fw = FusionWeights(8, 2, gamma=0.5)
    v, a = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    w_neutral = fw(v, a, None, None, None)
    w_near_v = fw(v, a, torch.tensor([[0.1, 1.0], [0.1, 1.0]]), None, None)
    assert bool((w_near_v[:, 0] > w_neutral[:, 0]).all())
    torch.testing.assert_close(w_near_v.sum(1), torch.ones(2))


def test_rfmf_tokens_and_embeddings():
    rf = RFMF(8, 2, depth=1, num_layers=3)
    toks = torch.randn(2, 3, 2, 8)
    out = rf(toks, [0, 1])
    assert out.shape == (2, 8)
    # modality embeddings make the order of the streams matter
    assert not torch.allclose(out, rf(toks.flip(2), [0, 1]))
    assert rf(toks[:, :, :1], [0]).shape == (2, 8)   # single-modality baseline


def test_attention_importance_mask_is_key_padding_bit_for_bit():
    # The padding goes in as a per-head additive mask (key_padding_mask's check imports sympy, ~1 s per
    # process): outputs and gradients equal the key_padding_mask form exactly, in training and in eval.
    import subprocess
    import sys

    torch.manual_seed(1)
    imp = AttentionImportance(16, 4)
    tokens = torch.randn(3, 7, 16, requires_grad=True)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] + [False] * 6])
    for train in (True, False):
        imp.train(train)
        kv = imp.norm(tokens)
        q = imp.query.expand(3, -1, -1)
        att, _ = imp.mha(q, kv, kv, key_padding_mask=~valid, need_weights=False)
        want = torch.relu(imp.f(att[:, 0])).squeeze(-1)
        got = imp(tokens, valid)
        assert torch.equal(got, want)
        gw = torch.autograd.grad(want.sum(), [tokens, *imp.parameters()])
        gg = torch.autograd.grad(got.sum(), [tokens, *imp.parameters()])
        assert all(torch.equal(a, b) for a, b in zip(gw, gg))
    code = ("import sys, torch; from macbdf.models.registry import create_model; m = create_model('tiny').eval(); "
            "b = m.dummy_batch(batch_size=2)\nwith torch.inference_mode(): m(b)\nprint('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
