"""The temporal synchrony extension (models/sync.py) against explicit loops, and its wiring in the model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model
from macbdf.models.sync import SyncAudioNet, SyncVideoNet, shift_mask, sync_features, sync_loss, sync_similarity

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _rand_s(b, t, seed):
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(b, t, 6, generator=g), dim=-1)
    v = F.normalize(torch.randn(b, t, 6, generator=g), dim=-1)
    return a, v, sync_similarity(a, v)


def test_similarity_is_the_cosine_of_each_step_pair():
    a, v, s = _rand_s(2, 5, 0)
    for b in range(2):
        for t in range(5):
            for u in range(5):
                assert math.isclose(float(s[b, t, u]), float(a[b, t] @ v[b, u]), abs_tol=1e-6)


def test_shift_mask_excludes_near_steps_and_padding():
    valid = torch.tensor([[True, True, True, True, False]])
    m = shift_mask(valid, 2)[0].numpy()
    for t in range(5):
        for u in range(5):
            assert m[t, u] == (abs(t - u) >= 2 and t < 4 and u < 4)


def test_features_match_a_loop():
    _, _, s = _rand_s(3, 6, 1)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[1, 4:] = False
    got = sync_features(s, valid, min_shift=2).numpy()
    for b in range(3):
        sb, vb = s[b].numpy(), valid[b].numpy()
        steps = [t for t in range(6) if vb[t]]
        diag = [sb[t, t] for t in steps]
        mr, mc = [], []
        for t in steps:
            far = [u for u in steps if abs(u - t) >= 2]
            mr.append(sb[t, t] - max(sb[t, u] for u in far) if far else 0.0)
            mc.append(sb[t, t] - max(sb[u, t] for u in far) if far else 0.0)
        want = [np.mean(diag), np.min(diag), np.mean(mr), np.mean(mc)]
        np.testing.assert_allclose(got[b], want, atol=1e-5)


def test_loss_matches_a_loop_and_skips_forged_windows():
    _, _, s = _rand_s(3, 5, 2)
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[0, 4] = False
    authentic = torch.tensor([True, False, True])
    tau, m = 0.1, 0.2
    got = float(sync_loss(s, valid, authentic, tau, m, min_shift=2))
    terms = {"row": [], "col": []}
    for b in (0, 2):
        sb = s[b].numpy().astype(np.float64)
        steps = [t for t in range(5) if valid[b, t]]
        for t in steps:
            far = [u for u in steps if abs(u - t) >= 2]
            if not far:
                continue
            for key, mat in (("row", sb), ("col", sb.T)):
                logits = [mat[t, t] / tau] + [(mat[t, u] - m) / tau for u in far]
                terms[key].append(np.log(np.sum(np.exp(logits))) - mat[t, t] / tau)
    want = 0.5 * (np.mean(terms["row"]) + np.mean(terms["col"]))
    assert math.isclose(got, want, rel_tol=1e-5)


def test_loss_is_zero_without_authentic_windows_and_prefers_synchrony():
    _, _, s = _rand_s(2, 6, 3)
    s = s.clone().requires_grad_(True)
    none = sync_loss(s, torch.ones(2, 6, dtype=torch.bool), torch.tensor([False, False]), 0.1, 0.1)
    assert float(none) == 0.0
    none.backward()   # keeps the graph
    valid = torch.ones(1, 6, dtype=torch.bool)
    sync = sync_loss(torch.eye(6)[None], valid, torch.tensor([True]), 0.1, 0.1)
    shifted = sync_loss(torch.roll(torch.eye(6), 3, dims=1)[None], valid, torch.tensor([True]), 0.1, 0.1)
    assert float(sync) < 0.01 < float(shifted)


def test_front_ends_give_one_unit_vector_per_frame_at_any_face_size():
    v = SyncVideoNet(8)
    for size in (64, 96, 112):
        z = v(torch.rand(2, 5, 3, size, size))
        assert z.shape == (2, 5, 8)
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(2, 5))
    a = SyncAudioNet(mel_per_frame=4, n_mels=16, out_dim=8)
    z = a(torch.randn(2, 20, 16), 5)
    assert z.shape == (2, 5, 8)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2, 5))
    assert a(torch.randn(2, 13, 16), 5).shape == (2, 5, 8)      # a short track is padded, not an error


def test_audio_front_end_is_causal_per_frame_block():
    """Frame t's vector depends on the log-mel frames under frames t-1..t+1 only (kernel 3, two convs: t-2..t+2)."""
    a = SyncAudioNet(mel_per_frame=4, n_mels=8, out_dim=4).eval()
    x = torch.randn(1, 40, 8)
    y = x.clone()
    y[0, 36:] += 5.0                      # change the last video frame's mel frames only
    d = (a(x, 10) - a(y, 10)).abs().sum(-1)[0]
    assert float(d[:7].max()) == 0.0 and float(d[9]) > 0


def test_model_with_sync_trains_every_parameter_and_reports_the_loss():
    m = create_model("tiny", sync_dim=8)
    crit = MACBCriterion(m.config)
    batch = m.dummy_batch(batch_size=4)
    out = m(batch)
    t_tok = out["sync_sim"].shape[1]
    assert out["sync_sim"].shape == (4, t_tok, t_tok) and out["sync_features"].shape == (4, 4)
    losses = crit(out, batch)
    assert "sync" in losses and float(losses["sync"]) > 0
    base = crit.total({k: v for k, v in losses.items() if k != "sync"})
    torch.testing.assert_close(crit.total(losses), base + m.config.lambda_sync * losses["sync"])
    crit.total(losses).backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("override", [{"modality": "audio"}, {"modality": "video"}, {}])
def test_unimodal_baselines_and_the_paper_configs_have_no_sync(override):
    """Sync compares the two tracks: a single-modality model has nothing to compare, so sync_dim is inert."""
    m = create_model("tiny", sync_dim=8, **override) if override else create_model("base")
    assert m.sync_embed is None and not any(n.startswith("sync_") for n, _ in m.named_parameters())
    assert not m.config.sync_active
    if override:
        out = m(m.dummy_batch(batch_size=2))
        assert "sync_sim" not in out


def test_silent_audio_carries_no_sync_evidence() -> None:
    """A window whose audio is the log-eps floor (no track, or muted) gets zero sync statistics,
    so the missing track cannot move the fused embedding by itself, and the sync loss skips it."""
    import math

    import torch

    from macbdf import create_model
    from macbdf.models.losses import MACBCriterion
    from macbdf.models.sync import audio_present

    torch.manual_seed(0)
    m = create_model("small").eval()
    b = m.dummy_batch(batch_size=2)
    floor = math.log(m.config.preprocess.log_eps)
    b["audio"][1] = floor                                      # second clip: no audio track
    with torch.no_grad():
        out = m(b)
    assert out["audio_present"].tolist() == [True, False]
    assert torch.all(out["sync_features"][1] == 0) and torch.any(out["sync_features"][0] != 0)
    # direct computation of the presence test: max log-mel above the floor + 2
    assert audio_present(b["audio"], m.config.preprocess.log_eps).tolist() == \
        [bool(b["audio"][i].max() > floor + 2.0) for i in range(2)]
    # the sync loss over a batch whose only authentic window is silent is exactly zero
    b["video_label"][:] = torch.tensor([1.0, 0.0])
    b["audio_label"][:] = 0.0
    b["label"][:] = torch.tensor([1.0, 0.0])
    m.train()
    losses = MACBCriterion(m.config)(m(b), b)
    assert float(losses["sync"]) == 0.0


def test_mouth_region_reads_only_the_lower_middle_of_the_crop() -> None:
    """sync_region="mouth": pixels outside rows 50-95 % / columns 20-80 % cannot change the output."""
    import torch

    from macbdf.models.sync import SyncVideoNet

    torch.manual_seed(0)
    net = SyncVideoNet(8, region="mouth").eval()
    v = torch.rand(1, 4, 3, 64, 64)
    w = v.clone()
    w[..., :30, :] = torch.rand_like(w[..., :30, :])       # above the mouth region (row 32)
    w[..., :, :10] = 0.0                                     # left of it (column 12)
    with torch.no_grad():
        a, b = net(v), net(w)
    assert torch.allclose(a, b)
    w[..., 40, 30] += 0.5                                    # inside: changes it
    with torch.no_grad():
        assert not torch.allclose(a, net(w))
    from macbdf import create_model

    m = create_model("tiny", sync_dim=8, sync_region="mouth")
    assert m(m.dummy_batch(batch_size=2))["sync_features"].shape == (2, 4)
    import pytest

    with pytest.raises(ValueError, match="sync_region"):
        create_model("tiny", sync_region="lips")


def test_concat_baseline_gets_the_sync_extension_like_the_full_model():
    """A fair fusion comparison: concat + sync has the same sync modules, features and loss as MACB + sync."""
    m = create_model("tiny", sync_dim=8, fusion="concat")
    assert m.config.sync_active and m.rfmf is None and m.sync_embed is not None
    crit = MACBCriterion(m.config)
    batch = m.dummy_batch(batch_size=4)
    out = m(batch)
    losses = crit(out, batch)
    assert "sync" in losses and float(losses["sync"]) > 0
    torch.testing.assert_close(crit.total(losses), crit.total({k: v for k, v in losses.items() if k != "sync"})
                               + m.config.lambda_sync * losses["sync"])
    # the window statistics enter the fused embedding: emb_fused = concat_proj(...) + sync_embed(features)
    m.eval()
    out = m(batch)
    share = m.sync_embed(out["sync_features"])
    m.sync_embed.weight.data.zero_()
    m.sync_embed.bias.data.zero_()
    out0 = m(batch)
    torch.testing.assert_close(out["emb_fused"] - out0["emb_fused"], share)
    crit.total(crit(m.train()(batch), batch)).backward()
    assert [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None
            and n.startswith(("sync_", "concat_proj"))] == []


def test_old_concat_configs_load_without_sync_weights():
    """Configs saved before schema 2 had no sync modules in concat models (whatever sync_dim said)."""
    from macbdf.models.config import ModelConfig

    cfg = create_model("tiny", sync_dim=8, fusion="concat").config
    d = cfg.to_dict()
    assert ModelConfig.from_dict(d).sync_dim == 8
    old = {k: v for k, v in d.items() if k != "schema"}
    assert ModelConfig.from_dict(old).sync_dim == 0
    old_macb = {k: v for k, v in create_model("tiny", sync_dim=8).config.to_dict().items() if k != "schema"}
    assert ModelConfig.from_dict(old_macb).sync_dim == 8
