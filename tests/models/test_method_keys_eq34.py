"""Per-modality method keys of L_vv / L_aa, and Eq. 3 -> 4 (tau_new) against an independent computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macbdf.data.manifest import SampleRecord as R
from macbdf.data.methods import build_modality_vocabs, modality_methods
from macbdf.models.contrastive import AdaptiveTemperature, supcon_loss
from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


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


def _loop_supcon(z: np.ndarray, keys: list[int], tau: float) -> float:
    per = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and keys[p] == keys[i]]
        if not pos:
            continue
        denom = math.log(sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i))
        per.append(-sum(float(z[i] @ z[p]) / tau - denom for p in pos) / len(pos))
    return sum(per) / len(per)


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
    zv = out["z_video"].double().numpy()
    za = out["z_audio"].double().numpy()
    # direct keys: video grouped as {0,1,4} faceswap vs {2,3,5} real; audio {0,2,4,5} tts vs {1,3} real
    want_vv = _loop_supcon(zv, [1, 1, 0, 0, 1, 0], tau)
    want_aa = _loop_supcon(za, [1, 0, 1, 0, 1, 1], tau)
    assert float(logs["log_L_vv"]) == pytest.approx(want_vv, rel=1e-4)
    assert float(logs["log_L_aa"]) == pytest.approx(want_aa, rel=1e-4)
    # the joint keys (the former reading) give a different L_vv: faceswap+tts vs faceswap split apart
    joint_vv = _loop_supcon(zv, [2, 3, 0, 0, 2, 0], tau)
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
