"""OM-Pareto (§3.5, Eq. 21-24): closed form vs PGD, branches, Eq. 24 magnitude, edge cases, the balancer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from macbdf.optim.pareto import UNIMODAL_KEYS_SAMPLE_FRAME, OMPareto, combine, lambda_orth, pgd_alpha, solve_alpha


def _l_aug(a: float, mm: float, uu: float, mu: float, lam: float) -> float:
    """Eq. 21 objective + the Eq. 22 orthogonal term, written directly."""
    b = 1.0 - a
    return a * a * mm + b * b * uu + 2 * a * b * mu + lam * a * b * abs(mu)


# ---------------------------------------------------------------- Eq. 21-23 scalars
def test_closed_form_matches_pgd_on_random_conflicts() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        d = int(rng.integers(2, 20))
        gm = rng.normal(size=d) * rng.uniform(0.01, 10)
        gu = rng.normal(size=d) * rng.uniform(0.01, 10)
        mm, uu, mu = gm @ gm, gu @ gu, gm @ gu
        cos = mu / math.sqrt(mm * uu)
        lam = lambda_orth(cos, lam0=float(rng.uniform(0, 1.9)), kappa=float(rng.uniform(0.5, 10)))
        a_cf, u_cf = solve_alpha(mm, uu, mu, lam)
        a_pgd, u_pgd = pgd_alpha(mm, uu, mu, lam)
        assert a_cf + u_cf == pytest.approx(1.0)
        assert 0.0 <= a_cf <= 1.0
        assert a_cf == pytest.approx(a_pgd, abs=1e-6)
        assert u_cf == pytest.approx(u_pgd, abs=1e-6)
        checked += cos < 0
    assert checked > 50  # plenty of conflict cases among them


def test_closed_form_is_the_global_minimum_even_when_nonconvex() -> None:
    # A large λ makes the 1-D quadratic concave; the closed form must then pick the better end point.
    rng = np.random.default_rng(1)
    grid = np.linspace(0.0, 1.0, 20001)
    for _ in range(100):
        gm, gu = rng.normal(size=5), rng.normal(size=5)
        mm, uu, mu = gm @ gm, gu @ gu, gm @ gu
        lam = float(rng.uniform(0, 20))
        a, _ = solve_alpha(mm, uu, mu, lam)
        best = min(_l_aug(g, mm, uu, mu, lam) for g in grid)
        assert _l_aug(a, mm, uu, mu, lam) <= best + 1e-9


def test_solve_alpha_tensor_and_float_agree() -> None:
    a_f, u_f = solve_alpha(4.0, 1.0, -1.5, 0.3)
    a_t, u_t = solve_alpha(torch.tensor(4.0), torch.tensor(1.0), torch.tensor(-1.5), torch.tensor(0.3))
    assert float(a_t) == pytest.approx(a_f) and float(u_t) == pytest.approx(u_f)


def test_lambda_orth_eq23() -> None:
    for cos in (-1.0, -0.3, 0.0, 0.4, 1.0):
        assert lambda_orth(cos, 0.7, 3.0) == pytest.approx(0.7 / (1 + math.exp(3.0 * cos)))
    # no overflow for extreme κ cos θ
    assert lambda_orth(-1.0, 1.0, 1e4) == pytest.approx(1.0)
    assert lambda_orth(1.0, 1.0, 1e4) == pytest.approx(0.0)
    t = lambda_orth(torch.tensor([-1.0, 0.0]), 1.0, 2.0)
    assert torch.allclose(t, torch.tensor([1 / (1 + math.exp(-2.0)), 0.5]))


# ---------------------------------------------------------------- Eq. 24 and the cos θ branch
def test_non_conflict_branch_uniform_weights_plain_sum() -> None:
    gm, gu = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.5, 0.0, 2.0])  # cos > 0
    h, d = combine(gm, gu, lam0=0.8, kappa=4.0)
    assert float(d["conflict"]) == 0.0
    assert float(d["alpha_m"]) == 0.5 and float(d["alpha_u"]) == 0.5
    assert float(d["lambda_orth"]) == pytest.approx(0.08)  # λ_orth <- 0.1 λ0
    assert torch.allclose(h, gm + gu)


def test_conflict_branch_eq24_on_known_vectors() -> None:
    gm, gu = torch.tensor([3.0, 0.0]), torch.tensor([-1.0, 2.0])
    # By hand: mm=9, uu=5, mu=-3, cos=-1/sqrt(5); with λ0=0: α_m=(uu-mu)/(mm+uu-2mu)=8/20=0.4.
    h, d = combine(gm, gu, lam0=0.0)
    cos = -1.0 / math.sqrt(5.0)
    assert float(d["conflict"]) == 1.0
    assert float(d["cos"]) == pytest.approx(cos)
    assert float(d["alpha_m"]) == pytest.approx(0.4)
    mag = (1 + abs(cos) / (1 + 3.0 / math.sqrt(5.0))) * math.hypot(2.0, 2.0)  # Eq. 24
    direction = torch.tensor([0.6, 1.2]) / math.hypot(0.6, 1.2)
    assert torch.allclose(h, direction * mag, atol=1e-6)
    assert float(d["norm_out"]) == pytest.approx(mag, rel=1e-6)


def test_conflict_branch_uses_eq23_lambda_in_the_solve() -> None:
    gm, gu = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 1.0])
    lam0, kappa = 1.2, 3.0
    _, d = combine(gm, gu, lam0=lam0, kappa=kappa)
    cos = float(gm @ gu) / (float(gm.norm()) * float(gu.norm()))
    lam = lambda_orth(cos, lam0, kappa)
    assert float(d["lambda_orth"]) == pytest.approx(lam)
    a_ref, _ = pgd_alpha(float(gm @ gm), float(gu @ gu), float(gm @ gu), lam)
    assert float(d["alpha_m"]) == pytest.approx(a_ref, abs=1e-6)


def test_list_input_equals_flat_input() -> None:
    g = torch.Generator().manual_seed(3)
    gm = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    gu = [-x + 0.1 * torch.randn(x.shape, generator=g) for x in gm]
    h_list, d1 = combine(gm, gu)
    h_flat, d2 = combine(torch.cat([x.flatten() for x in gm]), torch.cat([x.flatten() for x in gu]))
    assert torch.allclose(torch.cat([x.flatten() for x in h_list]), h_flat, atol=1e-6)
    assert float(d1["alpha_m"]) == pytest.approx(float(d2["alpha_m"]))


@pytest.mark.parametrize(
    "gm,gu",
    [
        ([0.0, 0.0], [0.0, 0.0]),      # both zero
        ([0.0, 0.0], [1.0, -2.0]),     # g_m zero
        ([3.0, 1.0], [0.0, 0.0]),      # g_u zero
        ([1.0, 2.0], [1.0, 2.0]),      # identical
        ([1.0, 2.0], [-1.0, -2.0]),    # exactly opposite, equal norms
        ([2.0, 4.0], [-1.0, -2.0]),    # opposite, different norms
        ([1e-30, 0.0], [-1e-30, 1e-30]),  # tiny
        ([1e20, 0.0], [-1e20, 1e20]),     # huge
    ],
)
def test_edge_cases_never_nan(gm: list[float], gu: list[float]) -> None:
    tm, tu = torch.tensor(gm), torch.tensor(gu)
    h, d = combine(tm, tu)
    assert torch.isfinite(h).all()
    assert all(torch.isfinite(v).all() for v in d.values())
    if float(tm.norm()) == 0 or float(tu.norm()) == 0:
        assert torch.allclose(h, tm + tu)  # no direction to compare: plain sum
    if gm == gu:
        assert torch.allclose(h, 2 * tm)
    if gm == [1.0, 2.0] and gu == [-1.0, -2.0]:
        assert torch.allclose(h, torch.zeros(2))  # no common descent direction


def test_pgd_and_solve_with_zero_gradients() -> None:
    assert solve_alpha(0.0, 0.0, 0.0, 0.5) == (0.5, 0.5)
    assert pgd_alpha(0.0, 0.0, 0.0, 0.5) == (0.5, 0.5)
    assert solve_alpha(0.0, 1.0, 0.0) == (1.0, 0.0)  # g_m = 0 is the min-norm point
    assert solve_alpha(1.0, 0.0, 0.0) == (0.0, 1.0)


# ---------------------------------------------------------------- the balancer on a toy model
class Toy(nn.Module):
    """Two encoders, a fusion layer, unimodal heads on the encoders, a multimodal head.

    ``cross_frame``: the video frame head reads the fused feature (touches the audio encoder too),
    like MACB-DF's frame heads after the multi-scale fusion.
    """

    def __init__(self, cross_frame: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc_a, self.enc_v = nn.Linear(4, 6), nn.Linear(5, 6)
        self.unused_a = nn.Parameter(torch.ones(3))  # in the audio group, never used
        self.fuse = nn.Linear(12, 6)
        self.head, self.head_a, self.head_v = nn.Linear(6, 1), nn.Linear(6, 1), nn.Linear(6, 1)
        self.frame_a, self.frame_v = nn.Linear(6, 1), nn.Linear(6, 1)
        self.cross_frame = cross_frame

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"audio": [*self.enc_a.parameters(), self.unused_a], "video": list(self.enc_v.parameters())}

    def losses(self, xa: torch.Tensor, xv: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        ea, ev = torch.tanh(self.enc_a(xa)), torch.tanh(self.enc_v(xv))
        f = torch.tanh(self.fuse(torch.cat([ea, ev], -1)))
        bce = nn.functional.binary_cross_entropy_with_logits
        return {
            "multimodal": bce(self.head(f).squeeze(-1), y),
            "unimodal_audio": bce(self.head_a(ea).squeeze(-1), y),
            "unimodal_video": bce(self.head_v(ev).squeeze(-1), 1 - y),
            "frame_audio": bce(self.frame_a(ea).squeeze(-1), y),
            "frame_video": bce(self.frame_v(f if self.cross_frame else ev).squeeze(-1), 1 - y),
            "contrastive": (ea - ev).pow(2).mean(),
            "log_tau": torch.tensor(0.1),
        }


W_FRAME, W_C = 0.7, 0.3


def _total(L: dict[str, torch.Tensor]) -> torch.Tensor:
    return (L["multimodal"] + L["unimodal_audio"] + L["unimodal_video"]
            + W_FRAME * (L["frame_audio"] + L["frame_video"]) + W_C * L["contrastive"])


def _data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, 5, generator=g), (torch.rand(n, generator=g) > 0.5).float()


def _reference(model: Toy, data: tuple, lam0: float, kappa: float) -> dict[str, torch.Tensor]:
    """Independent computation: separate autograd passes per objective, then combine()."""
    params = dict(model.named_parameters())
    L = model.losses(*data)
    tot = _total(L)
    g_tot = dict(zip(params, torch.autograd.grad(tot, list(params.values()), retain_graph=True, allow_unused=True)))
    out = {k: (v if v is not None else None) for k, v in g_tot.items()}
    uni = {"audio": L["unimodal_audio"] + W_FRAME * L["frame_audio"],
           "video": L["unimodal_video"] + W_FRAME * L["frame_video"]}
    for mod, plist in model.modality_parameters().items():
        names = [n for n, p in params.items() if any(p is q for q in plist)]
        used = [n for n in names if g_tot[n] is not None]
        gu = torch.autograd.grad(uni[mod], [params[n] for n in used], retain_graph=True, allow_unused=True)
        gu = [g if g is not None else torch.zeros_like(params[n]) for g, n in zip(gu, used)]
        gm = [g_tot[n] - u for n, u in zip(used, gu)]
        h, _ = combine(gm, gu, lam0=lam0, kappa=kappa)
        for n, hv in zip(used, h):
            out[n] = hv
    return out


@pytest.mark.parametrize("cross_frame,per_group", [(False, False), (False, True), (True, True)])
def test_balancer_matches_independent_reference(cross_frame: bool, per_group: bool) -> None:
    model = Toy(cross_frame)
    data = _data(seed=3)  # with this draw the audio encoder is in conflict, the video one is not
    ref = _reference(model, data, lam0=0.6, kappa=4.0)
    bal = OMPareto(model.modality_parameters(), total_fn=_total, lam0=0.6, kappa=4.0, per_group_grad=per_group,
                    unimodal_keys=UNIMODAL_KEYS_SAMPLE_FRAME)
    model.zero_grad(set_to_none=True)
    diag = bal.backward(model.losses(*data))
    for name, p in model.named_parameters():
        if ref[name] is None:
            assert p.grad is None, name  # unused parameter: left alone
        else:
            assert torch.allclose(p.grad, ref[name], atol=1e-6, rtol=1e-5), name
    assert {"total", "audio/cos", "audio/alpha_m", "audio/alpha_u", "audio/lambda_orth", "audio/norm_m",
            "audio/norm_u", "video/cos", "video/conflict"} <= set(diag)
    # both branches of §3.5 were exercised
    assert float(diag["audio/conflict"]) == 1.0 and float(diag["audio/cos"]) < 0
    assert float(diag["video/conflict"]) == 0.0 and float(diag["video/cos"]) > 0


def test_single_grad_call_is_inexact_when_a_unimodal_objective_crosses_encoders() -> None:
    # Documents why the trainer asks for per-group gradients with MACB-DF (frame heads after fusion).
    model = Toy(cross_frame=True)
    data = _data(seed=3)
    ref = _reference(model, data, lam0=0.6, kappa=4.0)
    OMPareto(model.modality_parameters(), total_fn=_total, lam0=0.6, kappa=4.0, per_group_grad=False,
             unimodal_keys=UNIMODAL_KEYS_SAMPLE_FRAME).backward(model.losses(*data))
    assert not torch.allclose(model.enc_a.weight.grad, ref["enc_a.weight"], atol=1e-6)


def test_heads_get_the_plain_summed_gradient() -> None:
    model = Toy()
    data = _data()
    L = model.losses(*data)
    plain = torch.autograd.grad(_total(L), [model.head.weight, model.fuse.weight, model.head_v.weight])
    model.zero_grad(set_to_none=True)
    OMPareto(model.modality_parameters(), total_fn=_total).backward(model.losses(*data))
    for p, g in zip([model.head.weight, model.fuse.weight, model.head_v.weight], plain):
        assert torch.allclose(p.grad, g, atol=1e-7)


def test_balancer_with_scaler_is_linear_in_the_scale() -> None:
    class FakeScaler:  # the part of GradScaler the balancer uses
        def scale(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1024.0

    model, data = Toy(), _data()
    OMPareto(model.modality_parameters(), total_fn=_total).backward(model.losses(*data))
    g1 = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    OMPareto(model.modality_parameters(), total_fn=_total).backward(model.losses(*data), scaler=FakeScaler())
    for n, p in model.named_parameters():
        if n in g1:
            assert torch.allclose(p.grad / 1024.0, g1[n], atol=1e-6, rtol=1e-5), n


def test_empty_group_frozen_params_and_default_total() -> None:
    model = Toy()
    model.enc_v.bias.requires_grad_(False)
    bal = OMPareto({"audio": [], "video": list(model.enc_v.parameters())})
    diag = bal.backward(model.losses(*_data()))  # default total = plain sum of non-log_ terms
    assert model.enc_v.bias.grad is None
    assert model.enc_v.weight.grad is not None and torch.isfinite(model.enc_v.weight.grad).all()
    assert "audio/cos" not in diag and "video/cos" in diag
    with pytest.raises(ValueError, match="no unimodal objectives"):
        OMPareto({"depth": []})


def test_zero_unimodal_losses_do_not_break_the_balancer() -> None:
    # e.g. an audio-only baseline: the video objectives are constant zeros without a graph
    model = Toy()
    L = model.losses(*_data())
    L["unimodal_video"] = torch.zeros(())
    L["frame_video"] = torch.zeros(())
    OMPareto(model.modality_parameters(), total_fn=_total).backward(L)
    for p in model.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


# ---------------------------------------------------------------- DDP: every rank applies the full-batch update
class _ToyLosses(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.toy = Toy(cross_frame=True)

    def forward(self, xa: torch.Tensor, xv: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.toy.losses(xa, xv, y)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net = _ToyLosses()
        # unused_a never gets a gradient: DDP must be told (the trainer probes for this)
        ddp = nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
        xa, xv, y = _data(seed=3)
        half = xa.shape[0] // world
        sl = slice(rank * half, (rank + 1) * half)
        bal = OMPareto(net.toy.modality_parameters(), total_fn=_total, lam0=0.6, kappa=4.0, per_group_grad=True,
                       unimodal_keys=UNIMODAL_KEYS_SAMPLE_FRAME)
        bal.backward(ddp(xa[sl], xv[sl], y[sl]))
        grads = {n: p.grad.clone() for n, p in net.toy.named_parameters() if p.grad is not None}
        torch.save(grads, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_apply_the_full_batch_update(tmp_path) -> None:  # noqa: ANN001
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    g0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    g1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    model = Toy(cross_frame=True)
    ref = _reference(model, _data(seed=3), lam0=0.6, kappa=4.0)  # one process, the whole batch
    assert g0.keys() == g1.keys() and g0
    for n in g0:
        assert torch.equal(g0[n], g1[n]), n  # identical on both ranks
        assert torch.allclose(g0[n], ref[n], atol=1e-6, rtol=1e-5), n  # = single-process full batch


def test_balancer_on_the_real_model_matches_separate_gradients() -> None:
    """MACB-DF tiny: the trainer's balancer (from_model) equals combine() of separately taken gradients."""
    from macbdf.models.losses import MACBCriterion
    from macbdf.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("tiny").train()
    crit = MACBCriterion(model.config).train()
    bal = OMPareto.from_model(model, crit, unimodal="sample+frame")
    assert bal.per_group_grad  # the frame heads read the fused maps: per-modality gradients needed
    batch = model.dummy_batch(batch_size=4)
    L = crit(model(batch), batch)
    groups = model.modality_parameters()
    enc = [p for ps in groups.values() for p in ps]
    g_tot = torch.autograd.grad(crit.total(L), enc, retain_graph=True, allow_unused=True)
    lf = model.config.lambda_frame
    ref: dict[int, torch.Tensor] = {}
    off = 0
    for mod, plist in groups.items():
        u = L[f"unimodal_{mod}"] + lf * L[f"frame_{mod}"]
        gu = torch.autograd.grad(u, plist, retain_graph=True, allow_unused=True)
        pairs = [(p, t, g) for p, t, g in zip(plist, g_tot[off: off + len(plist)], gu) if t is not None]
        off += len(plist)
        h, _ = combine([t - (g if g is not None else 0) for _, t, g in pairs],
                       [g if g is not None else torch.zeros_like(p) for p, _, g in pairs])
        ref.update({id(p): hv for (p, _, _), hv in zip(pairs, h)})
    diag = bal.backward(L)
    assert ref and all(math.isfinite(float(v)) for v in diag.values())
    for p in enc:
        if id(p) in ref:
            assert torch.allclose(p.grad, ref[id(p)], atol=1e-6, rtol=1e-4)


def test_sample_only_variant_one_call_is_exact_on_the_real_model() -> None:
    """--pareto-unimodal sample: MACB-DF's unimodal sample heads read only their own encoder, so the
    trainer's single autograd.grad call gives the same update as one call per modality."""
    from macbdf.models.losses import MACBCriterion
    from macbdf.models.registry import create_model
    from macbdf.optim.pareto import UNIMODAL_KEYS_SAMPLE

    grads = []
    for per_group in (True, False):
        torch.manual_seed(0)
        model = create_model("tiny").train()
        crit = MACBCriterion(model.config).train()
        bal = OMPareto.from_model(model, crit, unimodal_keys=UNIMODAL_KEYS_SAMPLE, per_group_grad=per_group)
        batch = model.dummy_batch(batch_size=4)
        bal.backward(crit(model(batch), batch))
        grads.append([p.grad.clone() for ps in model.modality_parameters().values() for p in ps if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-5)


def test_one_g_u_default_for_library_and_trainer() -> None:
    """OMPareto(), OMPareto.from_model, TrainConfig and `macbdf train --help` share DEFAULT_UNIMODAL."""
    import argparse

    from macbdf.commands.train import add_arguments
    from macbdf.models.losses import MACBCriterion
    from macbdf.models.registry import create_model
    from macbdf.optim.pareto import DEFAULT_UNIMODAL, UNIMODAL_GROUPINGS
    from macbdf_train.trainer import TrainConfig

    assert DEFAULT_UNIMODAL == "sample"   # the unimodal sample losses of Eq. 19 (docs/paper-map.md)
    model = create_model("tiny")
    crit = MACBCriterion(model.config)
    lib = OMPareto.from_model(model, crit)
    assert lib.unimodal_keys == {"audio": ("unimodal_audio",), "video": ("unimodal_video",)}
    assert not lib.per_group_grad          # sample heads read their own encoder: one grad call is exact
    assert OMPareto(model.modality_parameters()).unimodal_keys == lib.unimodal_keys
    assert TrainConfig(data="d", out="o").pareto_unimodal == DEFAULT_UNIMODAL
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--data", "d", "--out", "o"]).pareto_unimodal == DEFAULT_UNIMODAL
    both = OMPareto.from_model(model, crit, unimodal="sample+frame")
    assert both.unimodal_keys == UNIMODAL_GROUPINGS["sample+frame"] and both.per_group_grad
    with pytest.raises(ValueError, match="unknown unimodal grouping"):
        OMPareto.from_model(model, crit, unimodal="frames")
