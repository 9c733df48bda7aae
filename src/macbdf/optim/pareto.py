"""OM-Pareto: orthogonalised multimodal Pareto gradient balancing (MACB-DF §3.5, Eq. 21-24).

For every modality encoder (the parameter groups of ``model.modality_parameters()``) two gradients
are compared, each over the whole encoder seen as one vector:

* ``g_u`` - the gradient of that modality's unimodal objectives (default grouping ``"sample"``:
  ``unimodal_audio`` / ``unimodal_video``, Eq. 19; grouping ``"sample+frame"`` adds ``frame_audio`` /
  ``frame_video``; weighted as in ``criterion.total``; `DEFAULT_UNIMODAL` is the one default),
* ``g_m`` - the gradient of the multimodal objective, i.e. everything else in the total loss.

With ``cos θ = g_m·g_u / (|g_m| |g_u|)`` (Eq. 23):

* ``cos θ >= 0`` (no conflict): uniform Pareto weights ``α_m = α_u = 0.5`` and the mild orthogonal
  strength ``λ_orth = 0.1 λ0``. Since the weights are fixed, λ_orth does not change this update (it
  is reported in the diagnostics). The update is ``2 (0.5 g_m + 0.5 g_u) = g_m + g_u``: uniform
  weighting at the scale of the plain summed gradient (as in MMPareto, whose non-conflict update is
  the plain sum).
* ``cos θ < 0`` (conflict): ``λ_orth = λ0 / (1 + exp(κ cos θ))`` (Eq. 23); ``(α_m, α_u)`` minimise
  ``|α_m g_m + α_u g_u|² + λ_orth α_m α_u |g_m·g_u|`` on the simplex (Eq. 21-22; closed form in
  :func:`solve_alpha`, equal to the fixed point of the projected-gradient iteration :func:`pgd_alpha`);
  the update has the direction of ``α_m g_m + α_u g_u`` and the magnitude of Eq. 24:
  ``(1 + |cos θ| / (1 + |g_m|/|g_u|)) |g_m + g_u|``.

All other parameters (fusion, heads, criterion) get the plain summed gradient.

Cost: one backward of the total loss plus ``torch.autograd.grad`` of the unimodal objectives with
respect to the encoder parameters only; ``g_m = g_total - g_u``. When the audio and video unimodal
objectives touch disjoint encoders one call yields both ``g_u``; when they do not (MACB-DF's frame
heads read the fused multi-scale maps), one call per modality keeps ``g_u`` exact
(``per_group_grad``; :meth:`OMPareto.from_model` picks it). The scalar algebra is branch-free
(``torch.where``), so no host synchronisation happens per step.

Example:
    >>> import torch
    >>> gm, gu = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    >>> h, diag = combine(gm, gu, lam0=0.0)
    >>> round(float(diag["cos"]), 4), round(float(diag["alpha_m"]), 4)
    (-0.7071, 0.6)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_LAM0",
    "DEFAULT_KAPPA",
    "UNIMODAL_KEYS",
    "UNIMODAL_KEYS_SAMPLE",
    "lambda_orth",
    "solve_alpha",
    "pgd_alpha",
    "combine",
    "OMPareto",
]

# The paper gives no values for λ0 and κ. λ0 < 2 keeps the Eq. 21-22 quadratic convex in the conflict
# branch (its a² coefficient is |g_m - g_u|² - λ|g_m·g_u| >= (2 - λ)|g_m·g_u| when cos θ < 0), so the
# closed form is the unique minimiser; κ = 5 makes λ_orth move from λ0/2 (orthogonal) to ~λ0 (opposite).
DEFAULT_LAM0 = 0.5
DEFAULT_KAPPA = 5.0
# OM-Pareto's unimodal objectives per encoder (g_u), by grouping name. "sample": the unimodal sample
# heads of Eq. 19, which read only their own encoder's pooled output, so one autograd.grad call gives
# both g_u; the frame losses then belong to g_m (the frame heads read the fused multi-scale maps).
# "sample+frame": the frame losses count as unimodal too (one backward per modality, exact).
UNIMODAL_KEYS_SAMPLE: dict[str, tuple[str, ...]] = {
    "audio": ("unimodal_audio",),
    "video": ("unimodal_video",),
}
UNIMODAL_KEYS_SAMPLE_FRAME: dict[str, tuple[str, ...]] = {
    "audio": ("unimodal_audio", "frame_audio"),
    "video": ("unimodal_video", "frame_video"),
}
UNIMODAL_GROUPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "sample": UNIMODAL_KEYS_SAMPLE, "sample+frame": UNIMODAL_KEYS_SAMPLE_FRAME}
# The one default of library (OMPareto, OMPareto.from_model) and trainer (--pareto-unimodal).
DEFAULT_UNIMODAL = "sample"
UNIMODAL_KEYS = UNIMODAL_GROUPINGS[DEFAULT_UNIMODAL]
_EPS = 1e-12

Scalar = float | Tensor


def _as_t(x: Scalar, ref: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(torch.float64)
    return torch.tensor(float(x), dtype=torch.float64, device=None if ref is None else ref.device)


def _first_tensor(*xs: object) -> Tensor | None:
    for x in xs:
        if isinstance(x, Tensor):
            return x
    return None


def lambda_orth(cos: Scalar, lam0: float = DEFAULT_LAM0, kappa: float = DEFAULT_KAPPA) -> Scalar:
    """Eq. 23: ``λ_orth = λ0 / (1 + exp(κ cos θ))``; float in, float out (tensor in, tensor out).

    Written as ``λ0 · sigmoid(-κ cos θ)``, which never overflows.

    Example:
        >>> lambda_orth(0.0, lam0=1.0, kappa=5.0)
        0.5
    """
    if isinstance(cos, Tensor):
        return lam0 * torch.sigmoid(-kappa * cos)
    z = -kappa * float(cos)
    s = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return lam0 * s


def solve_alpha(gm_gm: Scalar, gu_gu: Scalar, gm_gu: Scalar, lam_orth: Scalar = 0.0) -> tuple[Scalar, Scalar]:
    """Closed-form minimiser of Eq. 21-22 on the simplex: returns ``(α_m, α_u)``, ``α_m + α_u = 1``.

    With ``a = α_m``, ``α_u = 1 - a``, ``mm = g_m·g_m``, ``uu = g_u·g_u``, ``mu = g_m·g_u``:
    ``L(a) = a² mm + (1-a)² uu + 2a(1-a) mu + λ a(1-a)|mu| = A a² + B a + uu`` with
    ``A = mm + uu - 2 mu - λ|mu|`` and ``B = -2 uu + 2 mu + λ|mu|``. If ``A > 0`` the minimiser is
    ``clip(-B / 2A, 0, 1)``; otherwise ``L`` is linear or concave in ``a`` and the minimum is at the
    better end point (``a = 0.5`` when ``L`` is constant, e.g. two zero gradients). No division by
    a vanishing denominator happens. Accepts floats (returns floats) or tensors (returns float64
    tensors, branch-free).

    Example:
        >>> solve_alpha(1.0, 1.0, -1.0)          # opposite unit vectors: the midpoint cancels them
        (0.5, 0.5)
        >>> a_m, a_u = solve_alpha(4.0, 1.0, 0.0)  # orthogonal: the shorter vector gets more weight
        >>> round(a_m, 3), round(a_u, 3)
        (0.2, 0.8)
    """
    ref = _first_tensor(gm_gm, gu_gu, gm_gu, lam_orth)
    mm, uu, mu, lam = (_as_t(x, ref) for x in (gm_gm, gu_gu, gm_gu, lam_orth))
    A = mm + uu - 2.0 * mu - lam * mu.abs()
    B = -2.0 * uu + 2.0 * mu + lam * mu.abs()
    scale = (mm + uu).clamp_min(_EPS)
    tiny = _EPS * scale
    convex = A > tiny
    a_convex = (-B / (2.0 * A.where(convex, torch.ones_like(A)))).clamp(0.0, 1.0)
    # Linear (|A| tiny): the sign of B decides; concave (A < 0): the better end point L(1)=mm vs L(0)=uu.
    a_lin = torch.where(B > tiny, torch.zeros_like(B), torch.where(B < -tiny, torch.ones_like(B), torch.full_like(B, 0.5)))
    a_concave = torch.where(mm <= uu, torch.ones_like(mm), torch.zeros_like(mm))
    a = torch.where(convex, a_convex, torch.where(A < -tiny, a_concave, a_lin))
    if ref is None:
        return float(a), float(1.0 - a)
    return a, 1.0 - a


def _project_simplex2(v: Tensor) -> Tensor:
    """Euclidean projection of a 2-vector onto {x >= 0, x1 + x2 = 1} (sort-based, Duchi et al. 2008)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1.0
    idx = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    cond = u - css / idx > 0
    rho = int(torch.nonzero(cond).max())
    theta = css[rho] / (rho + 1)
    return (v - theta).clamp_min(0.0)


def pgd_alpha(
    gm_gm: Scalar,
    gu_gu: Scalar,
    gm_gu: Scalar,
    lam_orth: Scalar = 0.0,
    *,
    init: tuple[float, float] = (0.5, 0.5),
    steps: int = 10_000,
    tol: float = 1e-13,
) -> tuple[float, float]:
    """Projected gradient descent on Eq. 21-22 over the 2-simplex: the iteration the paper describes.

    Gradient of ``L_aug(α) = |α_m g_m + α_u g_u|² + λ α_m α_u |g_m·g_u|`` (Eq. 22):
    ``∂/∂α_m = 2(α_m mm + α_u mu) + λ α_u |mu|``, ``∂/∂α_u = 2(α_u uu + α_m mu) + λ α_m |mu|``;
    step ``1/L`` with ``L`` the largest Hessian eigenvalue; each step projected onto the simplex.
    Used as the reference the closed form :func:`solve_alpha` is tested against (where the problem
    is convex, i.e. always in the conflict branch with ``λ0 < 2``). Returns floats.

    Example:
        >>> a_m, a_u = pgd_alpha(4.0, 1.0, 0.0)
        >>> round(a_m, 4), round(a_u, 4)
        (0.2, 0.8)
    """
    mm, uu, mu, lam = (float(x) for x in (gm_gm, gu_gu, gm_gu, lam_orth))
    off = 2.0 * mu + lam * abs(mu)
    hess = torch.tensor([[2.0 * mm, off], [off, 2.0 * uu]], dtype=torch.float64)
    lip = float(torch.linalg.eigvalsh(hess).abs().max())
    if lip <= 0.0:  # both gradients zero: every point is optimal, stay at init
        return float(init[0]), float(init[1])
    step = 1.0 / lip
    a = _project_simplex2(torch.tensor(init, dtype=torch.float64))
    for _ in range(steps):
        g = torch.stack([
            2.0 * (a[0] * mm + a[1] * mu) + lam * a[1] * abs(mu),
            2.0 * (a[1] * uu + a[0] * mu) + lam * a[0] * abs(mu),
        ])
        nxt = _project_simplex2(a - step * g)
        if float((nxt - a).abs().max()) < tol:
            a = nxt
            break
        a = nxt
    return float(a[0]), float(a[1])


def _coefficients(
    gm_gm: Tensor, gu_gu: Tensor, gm_gu: Tensor, lam0: float, kappa: float
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Scalars ``(c_m, c_u)`` with the balanced gradient ``h = c_m g_m + c_u g_u`` + diagnostics.

    Branch-free float64 scalar algebra (no host synchronisation): cos θ decides, per §3.5.
    """
    mm, uu, mu = gm_gm.to(torch.float64).clamp_min(0.0), gu_gu.to(torch.float64).clamp_min(0.0), gm_gu.to(torch.float64)
    nm, nu = mm.sqrt(), uu.sqrt()
    both = (nm > 0) & (nu > 0)
    denom = (nm * nu).where(both, torch.ones_like(nm))
    # A zero gradient has no direction: count it as no conflict (cos 0) so the plain sum is used.
    cos = (mu / denom).clamp(-1.0, 1.0).where(both, torch.zeros_like(mu))
    conflict = cos < 0
    lam = torch.where(conflict, lambda_orth(cos, lam0, kappa), torch.full_like(cos, 0.1 * lam0))
    a_star, _ = solve_alpha(mm, uu, mu, lam)
    a_m = torch.where(conflict, a_star, torch.full_like(cos, 0.5))
    a_u = 1.0 - a_m
    # Eq. 24: direction of a_m g_m + a_u g_u, magnitude (1 + |cos|/(1 + |g_m|/|g_u|)) |g_m + g_u|.
    dir_sq = (a_m * a_m * mm + a_u * a_u * uu + 2.0 * a_m * a_u * mu).clamp_min(0.0)
    sum_norm = (mm + uu + 2.0 * mu).clamp_min(0.0).sqrt()
    ratio = nm / nu.where(nu > 0, torch.ones_like(nu))
    mag = (1.0 + cos.abs() / (1.0 + ratio)) * sum_norm
    dir_norm = dir_sq.sqrt()
    # A (numerically) zero min-norm direction means no common descent direction: update 0.
    ok = dir_norm > 1e-12 * (nm + nu)
    s = (mag / dir_norm.where(ok, torch.ones_like(dir_norm))).where(ok, torch.zeros_like(dir_norm))
    c_m = torch.where(conflict, a_m * s, torch.ones_like(s))
    c_u = torch.where(conflict, a_u * s, torch.ones_like(s))
    diag = {
        "cos": cos,
        "alpha_m": a_m,
        "alpha_u": a_u,
        "lambda_orth": lam,
        "norm_m": nm,
        "norm_u": nu,
        "conflict": conflict.to(torch.float64),
        "norm_out": (c_m * c_m * mm + c_u * c_u * uu + 2.0 * c_m * c_u * mu).clamp_min(0.0).sqrt(),
    }
    return c_m, c_u, diag


def _flat(x: Tensor | Sequence[Tensor]) -> Tensor:
    if isinstance(x, Tensor):
        return x.reshape(-1)
    return torch.cat([t.reshape(-1) for t in x]) if len(x) else torch.zeros(0)


def combine(
    gm: Tensor | Sequence[Tensor],
    gu: Tensor | Sequence[Tensor],
    *,
    lam0: float = DEFAULT_LAM0,
    kappa: float = DEFAULT_KAPPA,
) -> tuple[Tensor | list[Tensor], dict[str, Tensor]]:
    """Eq. 24 with the cos θ branch of §3.5 for one encoder: ``(h, diagnostics)``.

    ``gm`` / ``gu`` are the multimodal / unimodal gradients, each a tensor or a list of per-parameter
    tensors (treated as one concatenated vector); ``h`` has the same structure. Diagnostics (0-dim
    float64 tensors): ``cos, alpha_m, alpha_u, lambda_orth, norm_m, norm_u, conflict, norm_out``.

    Example:
        >>> import torch
        >>> h, d = combine(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]))  # no conflict: plain sum
        >>> h.tolist(), float(d["lambda_orth"])
        ([2.0, 1.0], 0.05)
    """
    fm, fu = _flat(gm), _flat(gu)
    if fm.shape != fu.shape:
        raise ValueError(f"g_m and g_u differ in size: {tuple(fm.shape)} vs {tuple(fu.shape)}")
    # float64 dots: squared norms of large (fp16-scaled) or tiny gradients stay finite and non-zero.
    f64m, f64u = fm.double(), fu.double()
    c_m, c_u, diag = _coefficients(f64m @ f64m, f64u @ f64u, f64m @ f64u, lam0, kappa)
    if isinstance(gm, Tensor):
        return (c_m.to(gm.dtype) * gm + c_u.to(gm.dtype) * gu), diag
    return [c_m.to(a.dtype) * a + c_u.to(a.dtype) * b for a, b in zip(gm, gu)], diag


def _default_total(losses: Mapping[str, Tensor]) -> Tensor:
    parts = [v for k, v in losses.items() if not k.startswith("log_") and isinstance(v, Tensor)]
    if not parts:
        raise ValueError("losses dict holds no loss terms (only log_ diagnostics?)")
    return torch.stack([p.reshape(()) for p in parts]).sum()


class OMPareto:
    """Gradient balancer for any torch optimizer: replaces ``loss.backward()``.

    ``groups`` maps a modality name to its encoder parameters (``model.modality_parameters()``);
    ``total_fn`` turns the losses dict into the weighted total (``criterion.total``; default: plain
    sum of the non-``log_`` terms). :meth:`backward` fills ``.grad`` of every parameter: Eq. 24 for
    the encoder parameters, the plain summed gradient for all the others. Under DDP (the model
    wrapped in DistributedDataParallel), ``.grad`` is averaged by DDP during the backward and
    ``g_u`` is all-reduced here, so every rank computes the same α and applies the same update.

    Example:
        >>> balancer = OMPareto(model.modality_parameters(), total_fn=criterion.total)  # doctest: +SKIP
        >>> optimizer.zero_grad(set_to_none=True)                                      # doctest: +SKIP
        >>> diag = balancer.backward(criterion(model(batch), batch))                   # doctest: +SKIP
        >>> optimizer.step()                                                           # doctest: +SKIP
    """

    def __init__(
        self,
        groups: Mapping[str, Iterable[nn.Parameter]],
        *,
        total_fn: Callable[[Mapping[str, Tensor]], Tensor] | None = None,
        unimodal_keys: Mapping[str, Sequence[str]] | None = None,
        lam0: float = DEFAULT_LAM0,
        kappa: float = DEFAULT_KAPPA,
        per_group_grad: bool = False,
        process_group: object | None = None,
    ) -> None:
        if lam0 < 0 or kappa <= 0:
            raise ValueError(f"need lam0 >= 0 and kappa > 0 (got lam0={lam0}, kappa={kappa})")
        self.unimodal_keys = {k: tuple(v) for k, v in (unimodal_keys or UNIMODAL_KEYS).items()}
        self.groups: dict[str, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for name, params in groups.items():
            if name not in self.unimodal_keys:
                raise ValueError(f"no unimodal objectives known for group {name!r} (have {sorted(self.unimodal_keys)})")
            plist = []
            for p in params:
                if not p.requires_grad or id(p) in seen:
                    continue  # frozen, or listed twice: a parameter belongs to one encoder only
                seen.add(id(p))
                plist.append(p)
            self.groups[name] = plist
        self.total_fn = total_fn or _default_total
        self.lam0, self.kappa = float(lam0), float(kappa)
        # True: one autograd.grad per modality (exact even if a unimodal head reads the other encoder).
        self.per_group_grad = per_group_grad
        self.process_group = process_group

    @classmethod
    def from_model(cls, model: nn.Module, criterion: nn.Module | None = None, *,
                   unimodal: str = DEFAULT_UNIMODAL, **kw: Any) -> "OMPareto":
        """Groups from ``model.modality_parameters()``, weights from ``criterion.total``.

        ``unimodal`` names the g_u grouping (`UNIMODAL_GROUPINGS`; default `DEFAULT_UNIMODAL`, the
        trainer's default too); an explicit ``unimodal_keys=`` overrides it. One ``autograd.grad`` call
        serves both encoders only when each unimodal objective reads its own encoder alone: true of the
        unimodal sample heads (grouping ``"sample"``), not of MACB-DF's frame heads, which sit after the
        cross-modal multi-scale fusion (Eq. 18), so with ``"sample+frame"`` the gradients are taken per
        modality (exact) unless the model declares ``unimodal_objectives_disjoint = True``.

        Example:
            >>> bal = OMPareto.from_model(model, criterion)                    # doctest: +SKIP
            >>> bal.unimodal_keys["video"], bal.per_group_grad                  # doctest: +SKIP
            (('unimodal_video',), False)
        """
        from macbdf.models.unwrap import unwrap_model

        if unimodal not in UNIMODAL_GROUPINGS:
            raise ValueError(f"unknown unimodal grouping {unimodal!r} (known: {', '.join(UNIMODAL_GROUPINGS)})")
        base = unwrap_model(model)
        total_fn = getattr(criterion, "total", None) if criterion is not None else None
        explicit = kw.get("unimodal_keys")
        keys = explicit if explicit is not None else UNIMODAL_GROUPINGS[unimodal]
        kw["unimodal_keys"] = keys
        frame_in_gu = any(k.startswith("frame_") for ks in keys.values() for k in ks)
        kw.setdefault("per_group_grad", frame_in_gu and not bool(getattr(base, "unimodal_objectives_disjoint", False)))
        return cls(base.modality_parameters(), total_fn=total_fn, **kw)

    def _unimodal_total(self, losses: Mapping[str, Tensor], names: Iterable[str]) -> Tensor:
        keep = {k for n in names for k in self.unimodal_keys[n]}
        masked = {
            k: (v if (k in keep or k.startswith("log_") or not isinstance(v, Tensor)) else torch.zeros_like(v).detach())
            for k, v in losses.items()
        }
        return self.total_fn(masked)

    def _grads(self, out: Tensor, params: list[nn.Parameter]) -> list[Tensor | None]:
        if not params or not out.requires_grad:
            return [None] * len(params)
        return list(torch.autograd.grad(out, params, retain_graph=True, allow_unused=True))

    def _all_reduce_mean(self, tensors: list[Tensor]) -> None:
        import torch.distributed as dist

        if not tensors or not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size(self.process_group)
        if world <= 1:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, group=self.process_group)
        flat /= world
        off = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[off : off + n].view_as(t))
            off += n

    def backward(self, losses: Mapping[str, Tensor], *, scaler: "torch.amp.GradScaler | None" = None) -> dict[str, Tensor]:
        """Backward of the total loss with the per-encoder OM-Pareto gradients written into ``.grad``.

        ``scaler``: a GradScaler (fp16); both objectives are scaled by it, so the balanced gradient
        (linear in the scale) is unscaled by ``scaler.step`` as usual. Returns detached diagnostics:
        ``total`` and ``<modality>/<cos|alpha_m|alpha_u|lambda_orth|norm_m|norm_u|conflict|norm_out>``
        (0-dim tensors; convert with ``float()`` when logging).
        """
        total = self.total_fn(losses)

        def scaled(x: Tensor) -> Tensor:
            return scaler.scale(x) if scaler is not None else x

        names = [n for n, ps in self.groups.items() if ps]
        gu: dict[str, list[Tensor | None]] = {}
        if self.per_group_grad:
            for n in names:
                gu[n] = self._grads(scaled(self._unimodal_total(losses, [n])), self.groups[n])
        else:
            flat_params = [p for n in names for p in self.groups[n]]
            gs = self._grads(scaled(self._unimodal_total(losses, names)), flat_params)
            off = 0
            for n in names:
                k = len(self.groups[n])
                gu[n] = gs[off : off + k]
                off += k
        scaled(total).backward()

        # Parameters unused by every objective stay without a gradient (optimizers skip them).
        todo: list[tuple[str, nn.Parameter, Tensor]] = []
        for n in names:
            for p, g in zip(self.groups[n], gu[n]):
                if p.grad is None and g is None:
                    continue
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                todo.append((n, p, g if g is not None else torch.zeros_like(p)))
        self._all_reduce_mean([g for _, _, g in todo])

        diag: dict[str, Tensor] = {"total": total.detach()}
        for n in names:
            items = [(p, g) for m, p, g in todo if m == n]
            if not items:
                continue
            gt = [p.grad for p, _ in items]
            gu_n = [g for _, g in items]
            # float64: squared norms of fp16-scaled or tiny gradients neither overflow nor vanish.
            ft = torch.cat([t.reshape(-1) for t in gt]).double()  # type: ignore[union-attr]
            fu = torch.cat([u.reshape(-1) for u in gu_n]).double()
            fm = ft - fu  # g_m = g_total - g_u
            c_m, c_u, d = _coefficients(fm @ fm, fu @ fu, fm @ fu, self.lam0, self.kappa)
            # h = c_m g_m + c_u g_u = c_m g_total + (c_u - c_m) g_u, written in place into .grad
            for p, g in items:
                grad = p.grad
                assert grad is not None
                grad.mul_(c_m.to(grad.dtype)).add_((c_u - c_m).to(grad.dtype) * g.to(grad.dtype))
            for k, v in d.items():
                diag[f"{n}/{k}"] = v.detach()
        return diag
