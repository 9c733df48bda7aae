"""§3.2.3-3.2.4 multi-scale feature extraction (Eq. 11-16) and multi-scale fusion (Eq. 17-18).

One code path serves both streams: ``nd=3`` gives the video blocks (MSTLKA + GSAU-video on a
(B, C, T', h, w) map), ``nd=2`` the audio twins (MFTLKA + 2-D GSAU on a (B, C, T', F') map).

Example:
    >>> import torch
    >>> blk = MultiScaleBlock(dim=24, nd=3, lka_specs=((7, 2), (14, 3)))
    >>> blk(torch.randn(1, 24, 5, 3, 3)).shape
    torch.Size([1, 24, 5, 3, 3])
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from macbdf.models.fastpath import frozen_cache, no_grad_into


def per_channel_apply(op_t: Tensor, x: Tensor) -> Tensor:
    """out[b, c] = x[b, c] @ op_t[c]: op_t (C, N, P) (a per-channel operator, transposed), x (B, C, N) -> (B, C, P).

    One batched product over C with the map as row vectors: 3-4x faster on CPU than the (C, P, N) x (C, N, B)
    product of ``einsum("cpq,bcq->bcp")`` for one window (MKL's batched matrix-vector path is slow), 2.8x for 16.
    """
    return torch.bmm(x.transpose(0, 1), op_t).transpose(0, 1)         # (C, B, P) -> (B, C, P)


def _conv(nd: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[nd]


def split_sizes(channels: int, groups: int) -> list[int]:
    """Channel counts of ``groups`` near-equal groups (the first ones take the remainder)."""
    base, rem = divmod(channels, groups)
    return [base + (1 if i < rem else 0) for i in range(groups)]


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a channels-first map (B, C, ...) (the LN of Eq. 11/13)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias.view(shape), y, self.weight.view(shape))


class Pointwise(nn.Module):
    """1x1(x1) convolution computed as a matrix product over the flattened map.

    Same parameters (weight (out, in, 1, ..., 1), bias (out,)) and result as nn.Conv2d/3d with kernel 1,
    but it avoids PyTorch's slow generic CPU path that 1x1x1 Conv3d can fall into.
    """

    def __init__(self, c_in: int, c_out: int, nd: int) -> None:
        super().__init__()
        ref = _conv(nd)(c_in, c_out, 1)   # the standard initialisation of a 1x1 conv
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.view(self.weight.shape[0], self.weight.shape[1])
        y = torch.matmul(w, x.flatten(2)) + self.bias[:, None]      # (B, out, N)
        return y.view(x.shape[0], -1, *x.shape[2:])


# Maps with at most this many (kernel offsets x positions^2) entries take the matrix path of
# `DepthwiseSame` (the shift operator of a 5^3 kernel on an 8x3x3 map has 125 * 72^2 = 0.65 M).
_DENSE_LIMIT = 2_000_000


def _shift_operator(shape: tuple[int, ...], k: int, d: int, device: torch.device) -> Tensor:
    """S (k^nd, N, N), N = prod(shape): S[o, p, q] = 1 where a 'same'-padded, dilation-d, size-k
    kernel's offset o reads input position q for output position p (0 where it reads padding).
    PyTorch's 'same' padding puts d*(k-1)//2 before and the rest after, per axis."""
    left = d * (k - 1) // 2
    axes = []
    for n in shape:
        # (k, n_out, n_in): offset j reads input i = p + j*d - left
        p = torch.arange(n)[None, :, None]
        j = torch.arange(k)[:, None, None]
        axes.append((torch.arange(n)[None, None, :] == p + j * d - left).float())
    op = axes[0]
    for ax in axes[1:]:
        # combine axes: offsets and positions are row-major over the axes (as flatten() orders them)
        op = torch.einsum("apq,brs->abprqs", op, ax)
        a, b, p_, r, q, s_ = op.shape
        op = op.reshape(a * b, p_ * r, q * s_)
    return op.to(device)


@functools.lru_cache(maxsize=64)
def _shift_index(shape: tuple[int, ...], k: int, d: int) -> tuple[Tensor, Tensor, Tensor]:
    """The nonzeros of `_shift_operator`: (offset, output position, input position), row-major like it."""
    left = d * (k - 1) // 2
    offs = torch.cartesian_prod(*[torch.arange(k)] * len(shape)).reshape(-1, len(shape))        # (k^nd, nd)
    pos = torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(-1, len(shape))        # (N, nd)
    src = pos[None, :, :] + offs[:, None, :] * d - left                                          # (k^nd, N, nd)
    dims = torch.tensor(shape)
    ok = ((src >= 0) & (src < dims)).all(-1)                                                      # (k^nd, N)
    strides = torch.tensor([math.prod(shape[i + 1:]) for i in range(len(shape))])
    o, p = ok.nonzero(as_tuple=True)
    q = (src[o, p] * strides).sum(-1)
    return o, p, q


class DepthwiseSame(nn.Module):
    """Depthwise k^nd convolution with dilation and 'same' padding (nn.Conv2d/3d parameters and
    initialisation, identical output).

    Why not nn.Conv3d itself: on the small maps of the CPU configs (e.g. 8x3x3 time x space
    tokens) PyTorch's depthwise 3-D convolution backward takes about half of a whole training
    step. There the convolution is computed exactly as a per-channel matrix on the flattened map,
    out[b, c] = (sum_o w[c, o] S_o) x[b, c], with S_o the fixed 0/1 shift operators; large maps
    (GPU configs) use the convolution. Without autograd (inference) the per-channel matrix is
    built once and reused (`frozen_cache`): building it is most of the cost of applying it.
    """

    def __init__(self, channels: int, k: int, d: int = 1, nd: int = 3) -> None:
        super().__init__()
        ref = _conv(nd)(channels, channels, k, padding="same", dilation=d, groups=channels)
        self.weight = nn.Parameter(ref.weight.detach().clone())   # (C, 1, k, ...)
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.k, self.d, self.nd = k, d, nd
        self.kernel_size, self.dilation, self.groups = (k,) * nd, (d,) * nd, channels
        self._ops: dict[tuple, Tensor] = {}

    def uses_matrix(self, shape: tuple[int, ...]) -> bool:
        """Whether a map of spatial ``shape`` takes the per-channel matrix path."""
        n = math.prod(shape)
        return self.k ** self.nd * n * n <= _DENSE_LIMIT

    def _build_matrix(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
        n, offsets = math.prod(shape), self.k ** self.nd
        c = self.weight.shape[0]
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            # Without autograd (the inference path builds it once per model and shape): each entry of
            # sum_o w[c, o] S_o is a single weight or zero (an output position reads each input position
            # through at most one offset), so writing the weights to their positions gives the same
            # operator bit for bit as the (C, k^nd) x (k^nd, N^2) product, at a fraction of its cost
            # (~40 M multiply-adds for the 5^3 kernel on an 8x3x3 map; paid at the start of every detect).
            o, p, q = _shift_index(shape, self.k, self.d)
            mat = torch.zeros(c, n, n, dtype=dtype, device=device)
            mat[:, p.to(device), q.to(device)] = self.weight.detach().view(c, offsets).to(dtype)[:, o.to(device)]
            return mat
        key = (shape, device)
        op = self._ops.get(key)
        if op is None:
            with torch.inference_mode(False):    # a normal tensor: reused by training after an inference pass
                op = self._ops[key] = _shift_operator(shape, self.k, self.d, device)
        return (self.weight.view(c, offsets).to(dtype) @ op.to(dtype).view(offsets, n * n)).view(c, n, n)

    def matrix(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
        """(C, N, N) per-channel operator on a flattened map of spatial ``shape`` (N = prod(shape))."""
        return frozen_cache(self, "matrix", (self.weight,), (shape, device, dtype),
                            lambda: self._build_matrix(shape, device, dtype))

    def matrix_t(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
        """The inference path's cached operator, transposed: (C, N_in, N_out) for `per_channel_apply`."""
        return frozen_cache(self, "matrix_t", (self.weight,), (shape, device, dtype),
                            lambda: self._build_matrix(shape, device, dtype).transpose(1, 2).contiguous())

    def forward(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[2:])
        if not self.uses_matrix(shape):
            conv = F.conv3d if self.nd == 3 else F.conv2d
            return conv(x, self.weight, self.bias, padding="same", dilation=self.d, groups=x.shape[1])
        if no_grad_into((self.weight, self.bias, x)):
            y = per_channel_apply(self.matrix_t(shape, x.device, x.dtype), x.flatten(2))
        else:
            y = torch.einsum("cpq,bcq->bcp", self.matrix(shape, x.device, x.dtype), x.flatten(2))
        return (y + self.bias.to(x.dtype)[:, None]).view(x.shape)


class STLKA(nn.Module):
    """Eq. 15: large-kernel attention f_PW(f_DWD(f_DW(X))) approximating a K^nd kernel.

    f_DW: depthwise (2d-1)^nd; f_DWD: depthwise ceil(K/d)^nd with dilation d; f_PW: 1x1(x1).
    'same' padding keeps the map size for any (K, d), also where the padding is asymmetric.
    """

    def __init__(self, channels: int, k: int, d: int, nd: int = 3) -> None:
        super().__init__()
        self.k, self.d = k, d
        self.dw = DepthwiseSame(channels, 2 * d - 1, 1, nd)
        self.dwd = DepthwiseSame(channels, math.ceil(k / d), d, nd)
        self.pw = Pointwise(channels, channels, nd)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.dwd(self.dw(x)))


class MSTLKA(nn.Module):
    """Eq. 16: channel groups, each G_i(X_i) * STLKA_i(X_i) at its own scale, concatenated.

    G_i is a depthwise conv of the group's (2d-1) kernel (MAN's MLKA gate). With ``nd=2`` this is
    the audio MFTLKA.
    """

    def __init__(self, channels: int, lka_specs: Sequence[tuple[int, int]], nd: int = 3) -> None:
        super().__init__()
        self.sizes = split_sizes(channels, len(lka_specs))
        self.lka = nn.ModuleList(STLKA(c, k, d, nd) for c, (k, d) in zip(self.sizes, lka_specs))
        self.gate = nn.ModuleList(DepthwiseSame(c, 2 * d - 1, 1, nd) for c, (_, d) in zip(self.sizes, lka_specs))

    def frozen_ok(self, shape: tuple[int, ...]) -> bool:
        """Whether the inference path applies: every depthwise part on its matrix path, no gradient in."""
        return all(m.uses_matrix(shape) for g, lka in zip(self.gate, self.lka) for m in (g, lka.dw, lka.dwd)) \
            and no_grad_into(self.parameters())

    def forward(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[2:])
        if self.frozen_ok(shape):
            b, c = x.shape[:2]
            y = self.frozen_forward(x.flatten(2).transpose(0, 1), shape)           # (B*N, C)
            return y.view(b, -1, c).transpose(1, 2).reshape(x.shape)
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([g(p) * lka(p) for p, g, lka in zip(parts, self.gate, self.lka)], dim=1)

    def _frozen_operators(self, shape: tuple[int, ...], dev: torch.device, dt: torch.dtype) -> tuple[Tensor, ...]:
        """Cached inference operators: (C, N, 2N) (transposed for `per_channel_apply`) with each channel's
        gate outputs [:N] and f_DWD(f_DW(.)) outputs [N:], their (C, 1, 2N) bias, and the groups' f_PW as one
        block-diagonal (C, C) matrix + (C,) bias."""
        n = math.prod(shape)

        def build() -> tuple[Tensor, ...]:
            ops, biases = [], []
            for gate, lka in zip(self.gate, self.lka):
                m1, m2, mg = (m._build_matrix(shape, dev, dt) for m in (lka.dw, lka.dwd, gate))
                b1, b2, bg = (m.bias.to(dt) for m in (lka.dw, lka.dwd, gate))
                m21 = torch.bmm(m2, m1)                                                   # (C_i, N, N)
                b21 = torch.bmm(m2, b1[:, None, None].expand(-1, n, 1))[..., 0] + b2[:, None]  # (C_i, N)
                ops.append(torch.cat([mg, m21], 1))
                biases.append(torch.cat([bg[:, None].expand(-1, n), b21], 1))
            pw_w = torch.block_diag(*[lka.pw.weight.view(lka.pw.weight.shape[:2]) for lka in self.lka]).to(dt)
            pw_b = torch.cat([lka.pw.bias for lka in self.lka]).to(dt)
            return torch.cat(ops).transpose(1, 2).contiguous(), torch.cat(biases)[:, None], pw_w, pw_b

        params = [t for g, lka in zip(self.gate, self.lka)
                  for t in (g.weight, g.bias, lka.dw.weight, lka.dw.bias, lka.dwd.weight, lka.dwd.bias,
                            lka.pw.weight, lka.pw.bias)]
        return frozen_cache(self, "stacked", params, (shape, dev, dt), build)

    def frozen_forward(self, u: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Inference path on a channel-major map u (C, B, N) of spatial ``shape`` -> tokens (B*N, C).

        Every group's gate and f_DWD(f_DW(.)) come from one cached per-channel operator applied in a
        single batched product, then the groups' f_PW as one block-diagonal product. Same result as
        ``gate(p) * lka(p)`` per group up to float rounding (the composition reorders sums).
        """
        c, b, n = u.shape
        op_t, bias, pw_w, pw_b = self._frozen_operators(shape, u.device, u.dtype)
        # contiguous operands and bmm then add: otherwise CPU bmm / baddbmm fall back to one product per channel
        r = torch.bmm(u.contiguous(), op_t).add_(bias).view(c, b, 2, n).permute(1, 3, 2, 0)   # (B, N, 2, C)
        return (r[:, :, 0] * F.linear(r[:, :, 1], pw_w, pw_b)).reshape(b * n, c)


class GSAU(nn.Module):
    """Gated spatial attention unit: GSAU(x, a) = x * DW(a) (3-D DW conv for video, 2-D for audio)."""

    def __init__(self, channels: int, kernel: int = 3, nd: int = 3) -> None:
        super().__init__()
        self.dw = DepthwiseSame(channels, kernel, 1, nd)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        return x * self.dw(a)


class MultiScaleBlock(nn.Module):
    """Eq. 11-14 around MSTLKA (nd=3) or MFTLKA (nd=2); f_i are 1x1 convs, lambda_1/2 learnable scalars.

    N = LN(H);  H = H + l1 * f3(MSTLKA(f1(N)) * f2(N));  N = LN(H);  H = H + l2 * f6(GSAU(f4(N), f5(N)))
    """

    def __init__(self, dim: int, nd: int, lka_specs: Sequence[tuple[int, int]], gsau_kernel: int = 3,
                 layer_scale_init: float = 0.1) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.f1 = Pointwise(dim, dim, nd)
        self.f2 = Pointwise(dim, dim, nd)
        self.mstlka = MSTLKA(dim, lka_specs, nd)
        self.f3 = Pointwise(dim, dim, nd)
        self.lambda1 = nn.Parameter(torch.tensor(float(layer_scale_init)))
        self.norm2 = ChannelLayerNorm(dim)
        self.f4 = Pointwise(dim, dim, nd)
        self.f5 = Pointwise(dim, dim, nd)
        self.gsau = GSAU(dim, gsau_kernel, nd)
        self.f6 = Pointwise(dim, dim, nd)
        self.lambda2 = nn.Parameter(torch.tensor(float(layer_scale_init)))

    def forward(self, h: Tensor) -> Tensor:
        shape = tuple(h.shape[2:])
        if self.mstlka.frozen_ok(shape) and self.gsau.dw.uses_matrix(shape) and no_grad_into(self.parameters()):
            return self._frozen_forward(h, shape)
        n = self.norm1(h)
        h = h + self.lambda1 * self.f3(self.mstlka(self.f1(n)) * self.f2(n))
        n = self.norm2(h)
        return h + self.lambda2 * self.f6(self.gsau(self.f4(n), self.f5(n)))

    def _folded(self, dt: torch.dtype) -> tuple[Tensor, ...]:
        """The block's 1x1 maps with the LayerNorm affines and layer scales folded in (cached):
        f_i(LN(h)) = (W_i diag(gamma)) h_hat + (W_i beta + b_i), f1/f2 and f4/f5 stacked into one
        (2C, C) product each; lambda * f(x) = (lambda W) x + lambda b."""
        c = self.f1.weight.shape[0]

        def build() -> tuple[Tensor, ...]:
            def pair(norm: ChannelLayerNorm, fa: Pointwise, fb: Pointwise) -> tuple[Tensor, Tensor]:
                w = torch.cat([fa.weight.view(c, c), fb.weight.view(c, c)])                  # (2C, C)
                b = torch.cat([fa.bias, fb.bias]) + w @ norm.bias
                return (w * norm.weight).to(dt), b.to(dt)

            def scaled(lam: Tensor, f: Pointwise) -> tuple[Tensor, Tensor]:
                return (lam * f.weight.view(c, c)).to(dt), (lam * f.bias).to(dt)

            return (*pair(self.norm1, self.f1, self.f2), *scaled(self.lambda1, self.f3),
                    *pair(self.norm2, self.f4, self.f5), *scaled(self.lambda2, self.f6))

        params = [self.norm1.weight, self.norm1.bias, self.norm2.weight, self.norm2.bias, self.lambda1,
                  self.lambda2] + [t for f in (self.f1, self.f2, self.f3, self.f4, self.f5, self.f6)
                                   for t in (f.weight, f.bias)]
        return frozen_cache(self, "folded", params, (dt,), build)

    def _frozen_forward(self, h: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Inference path (no gradient into the block): Eq. 11-14 with the folds of `_folded`, MSTLKA's
        stacked operator and the GSAU's cached depthwise matrix, on the map as tokens (B*N, C), where the
        LayerNorms and 1x1 maps are single fused kernels (a LayerNorm over the channel axis of (B, C, N)
        runs a strided reduction ~10x slower). About a third of the reference path's operations; same
        result up to float rounding."""
        b, c = h.shape[:2]
        n = math.prod(shape)
        w12, b12, w3, b3, w45, b45, w6, b6 = self._folded(h.dtype)
        x = h.flatten(2).transpose(1, 2).reshape(b * n, c)                    # (M, C) tokens, M = B*N
        z = F.linear(F.layer_norm(x, (c,), eps=self.norm1.eps), w12, b12)     # (M, 2C) = f1(N), f2(N)
        m = self.mstlka.frozen_forward(z[:, :c].t().view(c, b, n), shape)     # (M, C)
        x = x + F.linear(m * z[:, c:], w3, b3)                                 # Eq. 12
        z = F.linear(F.layer_norm(x, (c,), eps=self.norm2.eps), w45, b45)     # (M, 2C) = f4(N), f5(N)
        dw = self.gsau.dw
        a = torch.bmm(z[:, c:].t().reshape(c, b, n).contiguous(), dw.matrix_t(shape, h.device, h.dtype)).add_(
            dw.bias.to(h.dtype)[:, None, None])                                # (C, B, N) = DW(f5(N))
        x = x + F.linear(z[:, :c] * a.permute(1, 2, 0).reshape(b * n, c), w6, b6)  # Eq. 13-14
        return x.view(b, n, c).transpose(1, 2).reshape(h.shape)


def pool_to_time(x: Tensor) -> Tensor:
    """(B, C, T', *spatial) -> (B, T', C): mean over the spatial / frequency axes (the shared time axis)."""
    return x.flatten(3).mean(-1).transpose(1, 2) if x.dim() > 3 else x.transpose(1, 2)


def fuse_weighted(v_seq: Tensor, a_seq: Tensor, weights: Tensor) -> Tensor:
    """Eq. 17: x_fused = w_v * V_{i-1} + w_a * A_{i-1} on per-frame sequences (B, T', C); weights (B, 2) = (w_v, w_a)."""
    return weights[:, 0, None, None] * v_seq + weights[:, 1, None, None] * a_seq


class FusionModulation(nn.Module):
    """Eq. 18: K_i = K'_i (x) x_fused, read as K'_i * (1 + tanh(W x_fused)) broadcast over the map.

    W is zero-initialised, so the block is an identity at initialisation and learns how much global
    audio-visual context to inject into each stream.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, k_map: Tensor, x_fused: Tensor) -> Tensor:
        g = 1.0 + torch.tanh(self.proj(x_fused))          # (B, T', C)
        g = g.transpose(1, 2)                              # (B, C, T')
        return k_map * g.reshape(g.shape + (1,) * (k_map.dim() - 3))
