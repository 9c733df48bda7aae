"""Eq. 19-20 (BCE on sample and frame logits) and the §3.4 heads, against numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from macbdf.models.heads import FrameHead, ProgressiveHead, SafeBatchNorm1d
from macbdf.models.losses import MACBCriterion, frame_bce, sample_bce
from macbdf.models.registry import create_model

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def np_bce(p, y):
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_eq19_sample_bce_matches_numpy():
    rng = np.random.default_rng(0)
    logit, y = rng.normal(size=9) * 3, rng.integers(0, 2, 9).astype(float)
    p = 1 / (1 + np.exp(-logit))
    assert float(sample_bce(torch.tensor(logit), torch.tensor(y))) == pytest.approx(np_bce(p, y), rel=1e-6)


def test_eq20_frame_bce_masked_matches_numpy():
    rng = np.random.default_rng(1)
    logit, y = rng.normal(size=(3, 7)) * 2, rng.integers(0, 2, (3, 7)).astype(float)
    mask = rng.random((3, 7)) > 0.3
    p = 1 / (1 + np.exp(-logit))
    want = np_bce(p[mask], y[mask])
    got = frame_bce(torch.tensor(logit), torch.tensor(y), torch.tensor(mask))
    assert float(got) == pytest.approx(want, rel=1e-6)
    # everything masked: 0, not NaN
    assert float(frame_bce(torch.tensor(logit), torch.tensor(y), torch.zeros(3, 7, dtype=torch.bool))) == 0.0


def test_bce_is_finite_for_extreme_logits():
    v = sample_bce(torch.tensor([1e4, -1e4]), torch.tensor([0.0, 1.0]))
    assert torch.isfinite(v) and float(v) == pytest.approx(1e4)


def test_criterion_losses_equal_the_formulas_on_model_outputs():
    m = create_model("tiny")
    crit = MACBCriterion(m.config)
    b = m.dummy_batch(4)
    out = m(b)
    losses = crit(out, b)
    sig = lambda t: torch.sigmoid(t.detach()).double().numpy()
    assert float(losses["multimodal"]) == pytest.approx(np_bce(sig(out["logit"]), b["label"].numpy()), rel=1e-5)
    assert float(losses["unimodal_audio"]) == pytest.approx(np_bce(sig(out["audio_logit"]), b["audio_label"].numpy()), rel=1e-5)
    mask = b["frame_mask"].numpy()
    want = np_bce(sig(out["frame_logit_video"])[mask], b["frame_label_video"].numpy()[mask])
    assert float(losses["frame_video"]) == pytest.approx(want, rel=1e-5)


def test_progressive_head_structure():
    head = ProgressiveHead(64, widths=(0.5, 0.25), dropout=0.3)
    lin = [l for l in head.net if isinstance(l, torch.nn.Linear)]
    assert [l.out_features for l in lin] == [32, 16, 1]            # progressive reduction
    assert sum(isinstance(l, torch.nn.BatchNorm1d) for l in head.net) == 2
    assert sum(isinstance(l, torch.nn.Dropout) for l in head.net) == 2
    assert head(torch.randn(5, 64)).shape == (5,)


def test_safe_batchnorm_batch_of_one():
    bn = SafeBatchNorm1d(3).train()
    x = torch.randn(1, 3)
    y = bn(x)   # plain BatchNorm1d raises here
    torch.testing.assert_close(y, (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps))
    bn(torch.randn(4, 3))    # normal batches still update the running statistics
    assert float(bn.num_batches_tracked) == 1


def test_frame_head_maps_time_tokens_to_frames():
    fh = FrameHead(8, tubelet=3)
    x = torch.randn(2, 4, 8)
    y = fh(x, num_frames=10)
    assert y.shape == (2, 10)
    full = fh.net(x).reshape(2, 12)
    torch.testing.assert_close(y, full[:, :10])   # frame f is predicted by time token f // tubelet


def test_unknown_modality_labels_are_left_out_of_the_losses():
    """DFDC fakes do not say which track is fake (label -1): those terms must be ignored, not fitted."""
    import torch

    from macbdf.models.contrastive import contrast_keys
    from macbdf.models.losses import frame_bce, sample_bce

    logit = torch.tensor([2.0, -1.0, 0.5, -3.0])
    target = torch.tensor([1.0, -1.0, 0.0, -1.0])
    known = target >= 0
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logit[known], target[known])
    assert torch.allclose(sample_bce(logit, target), ref)
    assert sample_bce(logit, torch.full_like(target, -1.0)).item() == 0.0
    flog = logit[:, None].repeat(1, 3)
    ftar = target[:, None].repeat(1, 3)
    mask = torch.ones(4, 3, dtype=torch.bool)
    assert torch.allclose(frame_bce(flog, ftar, mask), ref)
    keys = contrast_keys(torch.tensor([0.0, -1.0, 1.0, -1.0]), None)
    assert keys[0] == 0 and keys[2] == 1 and keys[1] != keys[3] and bool((keys[[1, 3]] < 0).all())


def test_criterion_is_finite_with_unknown_labels():
    import torch

    from macbdf import create_model
    from macbdf.models.losses import MACBCriterion

    m = create_model("tiny")
    batch = m.dummy_batch(batch_size=4)
    batch["audio_label"] = torch.tensor([-1.0, 0.0, -1.0, 1.0])
    batch["frame_label_audio"] = batch["audio_label"][:, None].expand_as(batch["frame_label_audio"]).clone()
    crit = MACBCriterion(m.config)
    losses = crit(m(batch), batch)
    total = crit.total(losses)
    assert torch.isfinite(total)
    total.backward()
