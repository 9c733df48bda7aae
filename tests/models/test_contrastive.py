"""Eq. 2-8 (MACL) against direct, independent computations (numpy / explicit loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macbdf.data.manifest import SampleRecord as R
from macbdf.data.methods import build_modality_vocabs, modality_methods
from macbdf.models.contrastive import (
    AdaptiveTemperature,
    attention_weights,
    basis_functions,
    contrast_keys,
    cross_modal_logits,
    sample_ids,
    cross_modal_loss,
    pair_features,
    supcon_loss,
)
from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model, get_model_config

# float(loss) on a graph tensor is fine in assertions
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)


def loop_cross_modal(anchor, cand, queue, pos_valid, k_neg, margin, tau):
    """Eq. 2/7 written out per anchor, in plain Python floats."""
    a, c = anchor.numpy(), cand.numpy()
    q = np.zeros((0, a.shape[1])) if queue is None else queue.numpy()
    total = 0.0
    for i in range(len(a)):
        forced, pool = [], []
        for j in range(len(c)):
            s = float(a[i] @ c[j])
            if j == i:
                if not pos_valid[i]:
                    forced.append(s)           # forged own pair: always a negative
            else:
                pool.append(s)
        pool += [float(a[i] @ qq) for qq in q]
        pool.sort(reverse=True)                # nearest = most similar
        negs = (forced + pool)[:k_neg]
        pos = float(a[i] @ c[i]) / tau if pos_valid[i] else 0.0
        logits = [pos] + [(s - margin) / tau for s in negs]
        total += -(pos - math.log(sum(math.exp(v) for v in logits)))
    return total / len(a)


@pytest.mark.parametrize("use_queue", [False, True])
@pytest.mark.parametrize("k_neg", [2, 5, 100])
def test_eq2_eq7_cross_modal_loss_matches_loop(use_queue, k_neg):
    a, v = _unit(6, 5, 1), _unit(6, 5, 2)
    queue = _unit(7, 5, 3) if use_queue else None
    pos_valid = torch.tensor([True, False, True, True, False, True])
    for margin, tau in ((0.0, 0.1), (0.2, 0.07), (0.5, 0.3)):
        got = cross_modal_loss(a, v, queue, pos_valid, k_neg, margin, tau)
        want = loop_cross_modal(a, v, queue, pos_valid.tolist(), k_neg, margin, tau)
        assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-9)
        # Eq. 7 is the same formula with the roles swapped
        got = cross_modal_loss(v, a, queue, pos_valid, k_neg, margin, tau)
        assert float(got) == pytest.approx(loop_cross_modal(v, a, queue, pos_valid.tolist(), k_neg, margin, tau), rel=1e-9)


def test_margin_is_subtracted_from_negatives_only():
    a, v = _unit(4, 3, 5), _unit(4, 3, 6)
    pos_valid = torch.ones(4, dtype=torch.bool)
    l0 = cross_modal_loss(a, v, None, pos_valid, 3, 0.0, 0.1)
    l1 = cross_modal_loss(a, v, None, pos_valid, 3, 0.3, 0.1)
    assert float(l1) < float(l0)   # negatives made cheaper -> lower loss


def test_forged_own_pair_is_a_negative_and_real_own_pair_the_positive():
    a, v = _unit(5, 6, 7), _unit(5, 6, 8)
    pos_valid = torch.tensor([True, True, False, False, True])
    pos, neg, valid = cross_modal_logits(a, v, None, pos_valid, k_neg=2, margin=0.1, tau=0.1)
    own = (a * v).sum(1)
    for i in range(5):
        if pos_valid[i]:
            assert float(pos[i]) == pytest.approx(float(own[i]) / 0.1)
            assert not any(float(n) == pytest.approx((float(own[i]) - 0.1) / 0.1) for n in neg[i])
        else:
            assert float(pos[i]) == 0.0   # null positive
            assert float(neg[i, 0]) == pytest.approx((float(own[i]) - 0.1) / 0.1)   # kept first among the K
    assert bool(valid.all())


def loop_supcon(z, keys, tau):
    z, keys = z.numpy(), keys.tolist()
    per = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and keys[p] == keys[i]]
        if not pos:
            continue
        denom = math.log(sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i))
        per.append(-sum(float(z[i] @ z[p]) / tau - denom for p in pos) / len(pos))
    return sum(per) / len(per)


def test_intra_modal_supcon_matches_loop():
    z = _unit(8, 4, 9)
    keys = torch.tensor([0, 0, 1, 2, 1, 0, 3, 2])   # key 3 has no positive: anchor skipped
    assert float(supcon_loss(z, keys, 0.2)) == pytest.approx(loop_supcon(z, keys, 0.2), rel=1e-9)


def test_intra_modal_without_positives_is_zero_with_graph():
    z = _unit(3, 4, 10).requires_grad_(True)
    loss = supcon_loss(z, torch.tensor([0, 1, 2]), 0.1)
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_contrast_keys_combine_authenticity_and_method():
    keys = contrast_keys(torch.tensor([0.0, 1.0, 1.0, 0.0]), torch.tensor([2, 2, 3, 0]))
    assert keys.tolist() == [0, 3, 4, 0]   # a real track is "real" whatever the sample's method


def test_eq3_pair_features_and_attention_weights():
    x, y = _unit(3, 4, 11), _unit(3, 4, 12)
    s = x @ y.t()
    feats = pair_features(x, y, s)
    xs, ys = x.numpy(), y.numpy()
    mean = float(np.mean(xs @ ys.T))
    for i in range(3):
        for j in range(3):
            sij = float(xs[i] @ ys[j])
            np.testing.assert_allclose(feats[i, j].numpy(), [sij, sij - mean, np.linalg.norm(xs[i] - ys[j])], rtol=1e-7)
    scores = torch.randn(3, 3, dtype=torch.float64)
    w = attention_weights(scores)
    e = np.exp(scores.numpy())
    np.testing.assert_allclose(w.numpy(), e / e.sum(), rtol=1e-10)


def test_eq4_basis_functions_and_tau_new():
    g = torch.Generator().manual_seed(13)
    s = torch.rand(4, 4, generator=g, dtype=torch.float64) * 2 - 1
    w = torch.softmax(torch.randn(16, generator=g, dtype=torch.float64), 0).view(4, 4)
    phi = basis_functions(s, w).numpy()
    sn, wn = s.numpy(), w.numpy()
    assert phi[0] == pytest.approx(np.var(sn))
    assert phi[1] == pytest.approx(float((wn * np.abs(sn - sn.mean()) ** 3).sum()))
    assert phi[2] == pytest.approx(float(-(wn * np.log(wn)).sum() / np.log(16)))
    # uniform weights have maximal (normalised) entropy 1
    assert float(basis_functions(s, torch.full_like(s, 1 / 16))[2]) == pytest.approx(1.0)

    temp = AdaptiveTemperature(0.07, 0.01, 1.0, hidden=4).double()
    x, y = _unit(4, 3, 14), _unit(4, 3, 15)
    with torch.no_grad():
        temp.beta.copy_(torch.tensor([0.5, -1.0, 2.0]))
    with torch.no_grad():
        tau_new, w, phi = temp.tau_new(x, y)
    assert float(tau_new) == pytest.approx(0.07 * math.exp(float((temp.beta.detach() * phi).sum())))
    with torch.no_grad():
        temp.beta.zero_()
        assert float(temp.tau_new(x, y)[0]) == pytest.approx(0.07)   # beta = 0 -> tau_new = tau0


def test_eq5_eq6_temporal_smoothing_and_state():
    temp = AdaptiveTemperature(0.07, 0.02, 0.5, hidden=4).double().train()
    with torch.no_grad():
        temp.beta.copy_(torch.tensor([3.0, 0.0, 1.0]))
        temp.tau_prev.fill_(0.1)
        temp.dtau_prev.fill_(0.004)
        temp.grad_prev.fill_(-2.5)
        temp.h_prev.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    x, y = _unit(5, 3, 16), _unit(5, 3, 17)
    # expected value, assembled directly from the pieces
    with torch.no_grad():
        tau_new = float(temp.tau_new(x, y)[0])
        sl = lambda v: math.copysign(math.log1p(abs(v)), v)
        xin = torch.tensor([math.log(0.1), sl(0.4), sl(-2.5)], dtype=torch.float64)
        h = temp.gru(xin[None], temp.h_prev[None])[0]
        gamma = float(torch.sigmoid(temp.gamma_mlp(torch.cat([h, xin[1:]]))))
    want = min(max(gamma * 0.1 + (1 - gamma) * tau_new, 0.02), 0.5)
    tau, logs = temp(x, y)
    assert float(tau.detach()) == pytest.approx(want, rel=1e-9)
    assert float(logs["gamma"]) == pytest.approx(gamma)
    # training-mode state update: tau_{t-1} <- tau_t, dtau <- tau_t - tau_{t-1}, h <- h_{t-1}
    assert float(temp.tau_prev) == pytest.approx(want)
    assert float(temp.dtau_prev) == pytest.approx(want - 0.1)
    torch.testing.assert_close(temp.h_prev, h)
    # grad_tau L is captured during backward (also through torch.autograd.grad)
    loss = (tau - 0.03) ** 2 * 10
    (g,) = torch.autograd.grad(loss, [temp.beta])
    assert float(temp.grad_prev) == pytest.approx(20 * (want - 0.03))
    # eval mode: same formula, no state change
    temp.eval()
    before = {k: v.clone() for k, v in temp.state_dict().items()}
    temp(x, y)
    for k, v in temp.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_tau_is_clamped():
    temp = AdaptiveTemperature(0.07, 0.05, 0.09, hidden=4).double()
    with torch.no_grad():
        temp.beta.fill_(50.0)
    tau, _ = temp(_unit(4, 3, 18), _unit(4, 3, 19))
    assert 0.05 <= float(tau.detach()) <= 0.09


def _criterion_and_batch(**overrides):
    model = create_model("tiny", **overrides)
    crit = MACBCriterion(model.config)
    batch = model.dummy_batch(6)
    return model, crit, batch


def test_eq8_lc_is_the_mean_of_the_four_terms():
    model, crit, batch = _criterion_and_batch()
    losses = crit(model(batch), batch)
    terms = [losses[f"log_{k}"] for k in ("L_av", "L_va", "L_vv", "L_aa")]
    assert float(losses["contrastive"]) == pytest.approx(float(sum(terms) / 4), rel=1e-6)


@pytest.mark.parametrize("switch,present", [("use_intra", ("L_av", "L_va")), ("use_cross", ("L_vv", "L_aa"))])
def test_eq8_ablations_average_the_remaining_terms(switch, present):
    model, crit, batch = _criterion_and_batch(**{switch: False})
    losses = crit(model(batch), batch)
    assert {k[4:] for k in losses if k.startswith("log_L_")} == set(present)
    want = sum(float(losses[f"log_{k}"]) for k in present) / 2
    assert float(losses["contrastive"]) == pytest.approx(want, rel=1e-6)


def test_criterion_uses_batch_labels_for_positives_and_fills_queue():
    model, crit, batch = _criterion_and_batch()
    crit.train()
    out = model(batch)
    losses = crit(out, batch)
    tau = float(losses["log_tau"])
    real = (batch["video_label"] < 0.5) & (batch["audio_label"] < 0.5)
    cfg = model.config
    want = cross_modal_loss(out["z_audio"].double(), out["z_video"].double(), None, real, cfg.k_neg, cfg.margin, tau)
    assert float(losses["log_L_av"]) == pytest.approx(float(want), rel=1e-4)
    assert int(crit.queue_video.count) == 6
    torch.testing.assert_close(crit.queue_audio.get()[0], out["z_audio"].detach())
    # the second step sees the first batch as extra negatives
    losses2 = crit(model(batch), batch)
    assert int(crit.queue_video.count) == 12
    assert float(losses2["log_L_av"]) != pytest.approx(float(losses["log_L_av"]))


def test_queue_is_fifo_with_fixed_size():
    cfg = get_model_config("tiny").replace(queue_size=5)
    crit = MACBCriterion(cfg)
    q = crit.queue_video
    q.push(torch.arange(3.0)[:, None].expand(3, cfg.contrast_dim))
    q.push(torch.arange(3.0, 7.0)[:, None].expand(4, cfg.contrast_dim))
    assert int(q.count) == 5 and q.items.shape == (5, cfg.contrast_dim)
    assert sorted(q.get()[0][:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]   # 0 and 1 were overwritten


def test_windows_of_the_same_video_are_never_negatives():
    a, v = _unit(4, 5, 30), _unit(4, 5, 31)
    queue = torch.cat([v[:1] * 0.999 + 0.001, _unit(3, 5, 32)])   # an older copy of sample 0's video
    pos_valid = torch.ones(4, dtype=torch.bool)
    ids = torch.tensor([7, 8, 7, -1])          # samples 0 and 2 are windows of one video; 3 unknown
    queue_ids = torch.tensor([7, 1, 2, -1])
    pos, neg, valid = cross_modal_logits(a, v, queue, pos_valid, 10, 0.0, 1.0, ids, queue_ids)
    sims_q = a @ queue.t()
    for i in (0, 2):
        used = set(round(float(x), 6) for x, ok in zip(neg[i], valid[i]) if ok)
        assert round(float(sims_q[i, 0]), 6) not in used                      # queued copy of video 7
        assert round(float(a[i] @ v[2 - i]), 6) not in used                    # the other window in the batch
    assert int(valid[3].sum()) == 3 + 4                                        # unknown id: everything else
    assert sample_ids({"video_id": ["a", "b", "a", None]}, torch.device("cpu")).tolist()[3] == -1
    ids2 = sample_ids({"video_id": ["a", "b", "a"]}, torch.device("cpu"))
    assert ids2[0] == ids2[2] != ids2[1] and bool((ids2 >= 0).all())


# --- per-modality method keys of L_vv / L_aa (issue 12) and Eq. 3 -> 4 by direct value ---

@pytest.mark.parametrize("rec,want", [
    (R("a", "a", label=1, video_label=1, audio_label=1, method="synth_faceswap-tts"), ("faceswap", "tts")),
    (R("a", "a", label=1, video_label=1, audio_label=0, method="synth_faceswap"), ("faceswap", "real")),
    (R("a", "a", label=1, video_label=0, audio_label=1, method="synth_voiceconv"), ("real", "voiceconv")),
    (R("a", "a", label=0, video_label=0, audio_label=0, method="real"), ("real", "real")),
    (R("a", "a", label=1, video_label=1, audio_label=1, method="faceswap-wav2lip", dataset="fakeavceleb"),
     ("faceswap-wav2lip", "rtvc")),
    (R("a", "a", label=1, video_label=0, audio_label=1, method="rtvc", dataset="fakeavceleb"), ("real", "rtvc")),
    (R("a", "a", label=1, video_label=1, audio_label=1, method="both_modified", dataset="lavdf"),
     ("modified", "modified")),
    (R("a", "a", label=1, video_label=1, audio_label=0, method="visual_modified", dataset="avdeepfake1m"),
     ("modified", "real")),
    (R("a", "a", label=1, video_label=1, audio_label=1, method="dfdc", dataset="dfdc"), ("dfdc", "dfdc")),
    (R("a", "a", label=1, video_label=1, audio_label=1, method="x", extra={"video_method": "gan", "audio_method": "tts"}),
     ("gan", "tts")),
    (R("a", "a", label=1, video_label=1, audio_label=None, method=None), ("fake", "fake")),
])
def test_modality_methods_readings(rec, want):
    assert modality_methods(rec) == want


def test_vocabs_group_video_by_video_method_only():
    recs = [R("a", "a", label=1, video_label=1, audio_label=1, method="synth_faceswap-tts"),
            R("b", "b", label=1, video_label=1, audio_label=0, method="synth_faceswap"),
            R("c", "c", label=1, video_label=0, audio_label=1, method="synth_tts")]
    vv, av = build_modality_vocabs(recs)
    assert vv == {"real": 0, "faceswap": 1} and av == {"real": 0, "tts": 1}


def test_criterion_intra_terms_use_per_modality_keys():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    crit = MACBCriterion(model.config).eval()
    batch = model.dummy_batch(6)
    # samples: faceswap+tts, faceswap+real, real+tts, real+real, faceswap+tts, real+tts
    vl = torch.tensor([1.0, 1, 0, 0, 1, 0])
    al = torch.tensor([1.0, 0, 1, 0, 1, 1])
    batch.update(video_label=vl, audio_label=al, label=torch.maximum(vl, al),
                 method_id=torch.tensor([1, 2, 3, 0, 1, 3]),            # joint: faceswap-tts / faceswap / tts
                 video_method_id=torch.tensor([1, 1, 0, 0, 1, 0]),      # faceswap
                 audio_method_id=torch.tensor([1, 0, 1, 0, 1, 1]))      # tts
    with torch.no_grad():
        out = model(batch)
        logs = crit(out, batch)
    tau = float(logs["log_tau"])
    zv, za = out["z_video"].double(), out["z_audio"].double()
    # direct keys: video grouped as {0,1,4} faceswap vs {2,3,5} real; audio {0,2,4,5} tts vs {1,3} real
    want_vv = loop_supcon(zv, torch.tensor([1, 1, 0, 0, 1, 0]), tau)
    want_aa = loop_supcon(za, torch.tensor([1, 0, 1, 0, 1, 1]), tau)
    assert float(logs["log_L_vv"]) == pytest.approx(want_vv, rel=1e-4)
    assert float(logs["log_L_aa"]) == pytest.approx(want_aa, rel=1e-4)
    # the joint keys (the former reading) give a different L_vv: faceswap+tts vs faceswap split apart
    joint_vv = loop_supcon(zv, torch.tensor([2, 3, 0, 0, 2, 0]), tau)
    assert abs(joint_vv - want_vv) > 1e-3
    # without the per-modality ids the criterion falls back to the joint method id
    del batch["video_method_id"], batch["audio_method_id"]
    with torch.no_grad():
        logs2 = crit(model(batch), batch)
    assert float(logs2["log_L_vv"]) == pytest.approx(joint_vv, rel=1e-4)


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf
    return x * 0.5 * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def test_eq3_to_eq4_tau_new_direct_value_and_uniform_w_fails():
    """tau_new = tau0 exp(sum_k beta_k phi_k(S, w)), with w = softmax over pairs of f_theta(features)."""
    torch.manual_seed(3)
    temp = AdaptiveTemperature(0.07, 0.01, 1.0, hidden=8).double()
    with torch.no_grad():
        temp.beta.copy_(torch.tensor([0.8, 40.0, -1.5]))   # a large beta_2: phi2 is O(1e-2)
        for p in temp.f_theta.parameters():                 # a non-trivial f_theta: w far from uniform
            p.mul_(6.0)
    x = F.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    y = F.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    with torch.no_grad():
        got, _, _ = temp.tau_new(x, y)
    # independent numpy computation of Eq. 3 and Eq. 4
    xn, yn = x.numpy(), y.numpy()
    s = xn @ yn.T
    feats = np.stack([s, s - s.mean(), np.linalg.norm(xn[:, None, :] - yn[None, :, :], axis=-1)], -1)
    W1, b1 = temp.f_theta[0].weight.detach().numpy(), temp.f_theta[0].bias.detach().numpy()
    W2, b2 = temp.f_theta[2].weight.detach().numpy(), temp.f_theta[2].bias.detach().numpy()
    f = (_gelu(feats @ W1.T + b1) @ W2.T + b2)[..., 0]          # f_theta(s_ij), (5, 5)
    w = np.exp(f - f.max())
    w = w / w.sum()                                               # Eq. 3
    dev = s - s.mean()
    phi1 = float((dev ** 2).mean())
    phi2 = float((w * np.abs(dev) ** 3).sum())
    phi3 = float(-(w * np.log(w)).sum() / math.log(s.size))
    beta = np.array([0.8, 40.0, -1.5])
    want = 0.07 * math.exp(beta @ np.array([phi1, phi2, phi3]))   # Eq. 4
    assert float(got) == pytest.approx(want, rel=1e-7)   # the library clamps w at 1e-12 inside log
    # the same formula with uniform w (the learned attention ignored) is a different value
    u = np.full_like(s, 1.0 / s.size)
    uniform = 0.07 * math.exp(beta @ np.array([phi1, float((u * np.abs(dev) ** 3).sum()), 1.0]))
    assert abs(uniform - want) / want > 1e-2
    assert float(got) != pytest.approx(uniform, rel=1e-3)
