"""Every parameter that should learn gets a gradient; no NaN/Inf in fp32 or bf16 autocast; it learns."""
from __future__ import annotations

import pytest
import torch

from macbdf.models.losses import MACBCriterion
from macbdf.models.registry import create_model

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

# Parameters whose gradient is legitimately zero *on the very first step* (checked on step 2 instead):
#  - mod_video/mod_audio (Eq. 18 gate) start at zero so the fused signal is an identity at init; the
#    fusion-weight network (Eq. 10 attention) reaches the loss only through that gate;
#  - temperature.f_theta reaches tau only through beta * phi with beta = 0 at init, and the gamma MLP /
#    GRU only through gamma * (tau_{t-1} - tau_new), which is 0 while tau_new = tau_0 = tau_{t-1}.
FIRST_STEP_ZERO = ("fusion_weights.", "temperature.f_theta", "temperature.gru", "temperature.gamma_mlp")
# Parameters that never get a gradient in the full model: none.
NEVER = ()


def _step(model, crit, batch, opt=None):
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    losses = crit(model(batch), batch)
    total = crit.total(losses)
    total.backward()
    if opt is not None:
        opt.step()
    return losses, total


def _named(model, crit):
    return list(model.named_parameters()) + [(f"criterion.{n}", p) for n, p in crit.named_parameters()]


def _without_grad(model, crit):
    return [n for n, p in _named(model, crit) if p.grad is None or not bool((p.grad != 0).any())]


def test_gradients_reach_every_parameter():
    model = create_model("tiny").train()
    crit = MACBCriterion(model.config).train()
    batch = model.dummy_batch(6)
    opt = torch.optim.SGD(list(model.parameters()) + list(crit.parameters()), lr=0.05)
    _step(model, crit, batch, opt)
    missing_first = _without_grad(model, crit)
    assert all(any(k in n for k in FIRST_STEP_ZERO) for n in missing_first), missing_first
    _step(model, crit, batch, opt)
    missing = [n for n in _without_grad(model, crit) if not any(k in n for k in NEVER)]
    assert missing == [], f"no gradient for: {missing}"
    for n, p in _named(model, crit):
        assert torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize("overrides", [dict(modality="audio"), dict(fusion="concat"), dict(use_fusion_weights=False)])
def test_gradients_reach_the_parameters_of_variants(overrides):
    model = create_model("tiny", **overrides).train()
    crit = MACBCriterion(model.config).train()
    _step(model, crit, model.dummy_batch(4))
    missing = _without_grad(model, crit)
    # no unused parameter in any variant (DDP-safe); with L_C on, the temperature networks get their
    # first gradient on step 2 (see FIRST_STEP_ZERO)
    assert all(any(k in n for k in FIRST_STEP_ZERO) for n in missing), missing
    if not model.config.contrastive_active:
        assert list(crit.parameters()) == []


def _inputs(model, kind):
    b = model.dummy_batch(4)
    if kind == "constant":
        b["video"] = torch.full_like(b["video"], 0.5)
        b["audio"] = torch.full_like(b["audio"], -5.0)
    elif kind == "zeros":
        b["video"] = torch.zeros_like(b["video"])
        b["audio"] = torch.zeros_like(b["audio"])
    elif kind == "extreme":
        b["video"] = (torch.rand_like(b["video"]) > 0.5).float()
        b["audio"] = torch.randn_like(b["audio"]) * 1e3
    return b


@pytest.mark.parametrize("kind", ["random", "constant", "zeros", "extreme"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_no_nan_or_inf(kind, dtype):
    model = create_model("tiny", cluster_every=1).train()
    crit = MACBCriterion(model.config).train()
    for step in range(3):   # several steps: clusters get fitted, the queue fills, tau moves
        batch = _inputs(model, kind)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = model(batch)
            losses = crit(out, batch)
            total = crit.total(losses)
        for k, v in list(out.items()) + list(losses.items()):
            assert torch.isfinite(v).all(), (kind, dtype, step, k)
        model.zero_grad()
        crit.zero_grad()
        total.backward()
        for n, p in _named(model, crit):
            assert p.grad is None or torch.isfinite(p.grad).all(), (kind, dtype, step, n)
    assert model.clusters_video.fitted
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out = model(_inputs(model, kind))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_tiny_model_fits_a_small_batch():
    torch.manual_seed(0)
    model = create_model("tiny").train()
    crit = MACBCriterion(model.config).train()
    batch = model.dummy_batch(8)
    opt = torch.optim.AdamW(list(model.parameters()) + list(crit.parameters()), lr=3e-3)
    first, _ = _step(model, crit, batch, opt)
    for _ in range(25):
        last, _ = _step(model, crit, batch, opt)
    assert float(last["multimodal"]) < 0.5 * float(first["multimodal"])
    assert float(last["frame_video"]) < float(first["frame_video"])
