"""§3.1 feature extraction: the video encoder E_v and the audio encoder E_a.

Token layout (chosen for CPU speed, see benchmarks/model_speed.py):

* video: tubelets of ``tubelet`` frames x ``patch_size``^2 pixels -> tokens (B, T', h*w, C) with
  T' = ceil(T / tubelet); blocks use *divided* space-time attention (temporal attention over T' per
  spatial site, then spatial attention over h*w per time step, then an FFN), so the cost grows
  linearly with the clip length and the per-frame spatial map (B, C, T', h, w) is kept.
* audio: log-mel patches spanning the same ``tubelet`` frames in time (tubelet * mel_per_frame mel
  frames) x ``audio_patch_mels`` mel bins -> tokens (B, T', F', C) on the *same* time axis T' as the
  video, with full self-attention over the T'*F' tokens; the time x frequency map (B, C, T', F') is kept.

Odd sizes (T not a multiple of the tubelet, faces or mel bands not multiples of the patch) are padded;
learned positional embeddings are interpolated when the grid differs from the configured one.

Example:
    >>> import torch
    >>> from macbdf.models.registry import get_model_config
    >>> cfg = get_model_config("tiny")
    >>> enc = VideoEncoder(cfg)
    >>> tokens, valid = enc(torch.rand(2, 8, 3, 96, 96), torch.ones(2, 8, dtype=torch.bool))
    >>> tuple(tokens.shape)   # (B, T', h*w, C)
    (2, 4, 9, 32)
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from macbdf.models.config import ModelConfig
from macbdf.models.fastpath import bn_tensors, fold_conv_bn, frozen_cache, frozen_eval

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Attention(nn.Module):
    """Multi-head self-attention over (N, L, C) with an optional key-validity mask (N, L)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        n, l, c = x.shape
        q, k, v = self.qkv(x).view(n, l, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (N, H, L, D)
        if key_valid is not None and not torch.is_grad_enabled() and bool(key_valid.all()):
            key_valid = None        # inference: no padding to mask, so SDPA's unmasked kernel (same result)
        mask = None if key_valid is None else key_valid[:, None, None, :]  # (N, 1, 1, L) True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(n, l, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm transformer block (self-attention + FFN) over (N, L, C)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: Tensor, key_valid: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), key_valid)
        return x + self.mlp(self.norm2(x))


class DividedSTBlock(nn.Module):
    """Divided space-time attention (TimeSformer style) + FFN over video tokens (B, T', N, C)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_t = nn.LayerNorm(dim)
        self.attn_t = Attention(dim, heads, dropout)
        self.norm_s = nn.LayerNorm(dim)
        self.attn_s = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio, dropout)

    def forward(self, x: Tensor, time_valid: Tensor | None = None) -> Tensor:
        b, t, n, _ = x.shape
        xt = rearrange(x, "b t n c -> (b n) t c")
        kv = None if time_valid is None else time_valid.repeat_interleave(n, dim=0)  # (b*n, t)
        xt = xt + self.attn_t(self.norm_t(xt), kv)
        x = rearrange(xt, "(b n) t c -> (b t) n c", b=b)
        x = x + self.attn_s(self.norm_s(x))
        x = x + self.mlp(self.norm2(x))
        return rearrange(x, "(b t) n c -> b t n c", b=b)


def _interp_1d(pos: Tensor, length: int) -> Tensor:
    """Resize a (L0, C) learned embedding to (length, C) by linear interpolation."""
    if pos.shape[0] == length:
        return pos
    return F.interpolate(pos.t()[None], size=length, mode="linear", align_corners=False)[0].t()


def _time_pos(pos: Tensor, length: int) -> Tensor:
    """Temporal embedding for ``length`` tokens: the first ones for a shorter window, interpolated if longer."""
    return pos[:length] if length <= pos.shape[0] else _interp_1d(pos, length)


def _interp_2d(pos: Tensor, grid: tuple[int, int], new: tuple[int, int]) -> Tensor:
    """Resize a (h0*w0, C) learned embedding to (h*w, C) bilinearly."""
    if tuple(grid) == tuple(new):
        return pos
    p = rearrange(pos, "(h w) c -> 1 c h w", h=grid[0], w=grid[1])
    p = F.interpolate(p, size=new, mode="bilinear", align_corners=False)
    return rearrange(p, "1 c h w -> (h w) c")


def time_tokens_valid(frame_mask: Tensor, tubelet: int, t_tokens: int) -> Tensor:
    """(B, T) frame validity -> (B, T') token validity (a token is valid if any of its frames is).

    The first token is always marked valid so that attention never sees an all-masked row.
    """
    b, t = frame_mask.shape
    m = F.pad(frame_mask.bool(), (0, t_tokens * tubelet - t), value=False)
    valid = m.view(b, t_tokens, tubelet).any(-1)
    valid[:, 0] = True
    return valid


class ConvStem(nn.Module):
    """Strided 3x3 conv + BatchNorm + ReLU layers: (N, in_ch, H, W) -> (N, ch, H/2^k, W/2^k) (ceil).

    Widths double up to `ch` (``ch / 2^(n-1)``, ..., ``ch``); the first layer has stride
    `first_stride`, the others stride 2 (k = number of stride-2 layers).

    Why BatchNorm and not a per-sample norm: the traces it has to find (resampling, blur, missing
    sensor noise in a pasted face) are differences in the *amount* of high-frequency energy. A
    per-sample normalisation (GroupNorm / LayerNorm) divides exactly that amount out; the batch
    statistics keep it. Measured on the demo data (benchmarks/RESULTS.md, demo_learnability): the
    same strided CNN reaches frame AUC 0.84-0.90 on held-out identities with BatchNorm and stays at
    chance with GroupNorm or without normalisation.
    """

    def __init__(self, in_ch: int, ch: int, first_stride: int, layers: int = 2) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = in_ch
        for i in range(layers):
            c_out = max(ch >> (layers - 1 - i), 1)
            mods += [nn.Conv2d(c_in, c_out, 3, first_stride if i == 0 else 2, 1, bias=False),
                     nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor, in_mean: Tensor | None = None, in_std: Tensor | None = None) -> Tensor:
        """x (N, in_ch, H, W); with ``in_mean`` / ``in_std`` (per input channel) x is first standardised."""
        if frozen_eval(self):
            return self._frozen_forward(x, in_mean, in_std)
        if in_mean is not None and in_std is not None:
            x = (x - in_mean.view(1, -1, 1, 1)) / in_std.view(1, -1, 1, 1)
        return self.net(x)

    def _frozen_forward(self, x: Tensor, in_mean: Tensor | None, in_std: Tensor | None) -> Tensor:
        """Inference path: every BatchNorm folded into its convolution, and the input standardisation
        folded into the first one (its zero padding becomes a fixed bias map). Same result as the
        reference path up to float rounding."""
        convs = [m for m in self.net if isinstance(m, nn.Conv2d)]
        bns = [m for m in self.net if isinstance(m, nn.BatchNorm2d)]
        tensors = [t for c, bn in zip(convs, bns) for t in (c.weight, *bn_tensors(bn))]
        norm = in_mean is not None and in_std is not None
        if norm:
            tensors += [in_mean, in_std]
        h, w = x.shape[-2:]

        def build() -> list[tuple[Tensor, Tensor]]:
            layers = [tuple(t.to(x.dtype) for t in fold_conv_bn(c, bn)) for c, bn in zip(convs, bns)]
            if norm:
                # conv(W, (x - m) / s) with zero padding = conv(W / s, x) - conv(W / s, m on the frame, 0 outside)
                w0, b0 = layers[0]
                inv = (1.0 / in_std).to(x.dtype).view(1, -1, 1, 1)
                w0n = w0 * inv
                const = (in_mean.to(x.dtype).view(1, -1, 1, 1) * torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))
                c0 = convs[0]
                bias_map = b0.view(1, -1, 1, 1) - F.conv2d(const, w0n, None, c0.stride, c0.padding)
                layers[0] = (w0n, bias_map)
            return layers

        layers = frozen_cache(self, "folded", tensors, (x.dtype, x.device, h, w, norm), build)
        for i, (c, (wt, b)) in enumerate(zip(convs, layers)):
            if i == 0 and norm:
                x = F.conv2d(x, wt, None, c.stride, c.padding).add_(b)
            else:
                x = F.conv2d(x, wt, b, c.stride, c.padding)
            x = F.relu_(x)
        return x


class VideoEncoder(nn.Module):
    """E_v: tubelet tokens + divided space-time attention blocks; output tokens (B, T', h*w, C)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.dim
        self.tubelet, self.patch = cfg.tubelet, cfg.patch_size
        # optional conv stem: per frame (3, S, S) -> (video_stem, S/r, S/r), r = 2^video_stem_layers;
        # a patch then spans patch_size/r stem cells, i.e. the same patch_size pixels as without it
        self.stem_stride = 2 ** cfg.video_stem_layers
        self.stem = ConvStem(3, cfg.video_stem, 2, layers=cfg.video_stem_layers) if cfg.video_stem else None
        cells = (cfg.patch_size // self.stem_stride) ** 2 * cfg.video_stem if cfg.video_stem else 3 * cfg.patch_size ** 2
        self.embed = nn.Linear(cfg.tubelet * cells, c)
        g = math.ceil(cfg.preprocess.face_size / cfg.patch_size)
        self.grid = (g, g)
        self.pos_space = nn.Parameter(torch.randn(g * g, c) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(math.ceil(cfg.num_frames / cfg.tubelet), c) * 0.02)
        self.blocks = nn.ModuleList(DividedSTBlock(c, cfg.heads, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.video_depth))
        self.norm = nn.LayerNorm(c)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def _folded_embed(self) -> tuple[Tensor, Tensor]:
        """The patch embedding with the ImageNet normalisation folded in (exact, saves three passes).

        W ((x - m) / s) + b = (W / s) x + (b - (W / s) m), per input feature of the (pt c ph pw) patch.
        """
        shape = (self.tubelet, 3, self.patch, self.patch)
        mean = self.mean.view(1, 3, 1, 1).expand(shape).reshape(-1)
        inv_std = (1.0 / self.std).view(1, 3, 1, 1).expand(shape).reshape(-1)
        w = self.embed.weight * inv_std
        return w, self.embed.bias - w @ mean

    def forward(self, video: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """video (B, T, 3, S, S) in [0, 1], frame_mask (B, T) -> tokens (B, T', h*w, C), valid (B, T')."""
        b, t, _, hh, ww = video.shape
        x = video
        if not bool(frame_mask.all()):
            # padded frames carry no information: blank them so their content cannot leak anywhere
            x = x * frame_mask[:, :, None, None, None].to(x.dtype)
        tp, hp, wp = (math.ceil(t / self.tubelet), math.ceil(hh / self.patch), math.ceil(ww / self.patch))
        pads = (0, wp * self.patch - ww, 0, hp * self.patch - hh, 0, 0, 0, tp * self.tubelet - t)
        if any(pads):
            x = F.pad(x, pads)
        if self.stem is not None:
            # standardised inside the stem (folded into its first convolution on the inference path)
            y = self.stem(rearrange(x, "b t c h w -> (b t) c h w"), self.mean.view(3), self.std.view(3))  # (B*T, N, S/r, S/r)
            r = self.patch // self.stem_stride
            x = rearrange(y, "(b t pt) c (h ph) (w pw) -> b t (h w) (pt c ph pw)", b=b, pt=self.tubelet, ph=r, pw=r)
            x = self.embed(x)
        else:
            x = rearrange(x, "b (t pt) c (h ph) (w pw) -> b t (h w) (pt c ph pw)",
                          pt=self.tubelet, ph=self.patch, pw=self.patch)
            x = F.linear(x, *self._folded_embed())
        x = x + _interp_2d(self.pos_space, self.grid, (hp, wp))[None, None]
        x = x + _time_pos(self.pos_time, tp)[None, :, None]
        valid = time_tokens_valid(frame_mask, self.tubelet, tp)
        for blk in self.blocks:
            x = blk(x, valid)
        return self.norm(x), valid


def normalise_logmel(audio: Tensor, valid_rows: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample standardisation over the valid (time, mel) region; padded rows become 0.

    audio (B, L, F), valid_rows (B, L) bool. Constant inputs map to 0 (no division by zero).
    """
    w = valid_rows[:, :, None].to(audio.dtype)
    n = (w.sum(dim=(1, 2), keepdim=True) * audio.shape[-1]).clamp_min(1.0)
    mean = (audio * w).sum(dim=(1, 2), keepdim=True) / n
    var = (((audio - mean) * w) ** 2).sum(dim=(1, 2), keepdim=True) / n
    return (audio - mean) / torch.sqrt(var + eps) * w


class AudioEncoder(nn.Module):
    """E_a: (time x mel) log-mel patches + full self-attention; output tokens (B, T', F', C)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.dim
        self.tubelet = cfg.tubelet
        self.mpf = cfg.preprocess.mel_per_frame
        self.pt = cfg.tubelet * self.mpf          # mel frames per patch (one video token's span)
        self.pf = cfg.audio_patch_mels
        # optional conv stem on the (time x mel) plane: (1, L, F) -> (audio_stem, L/2, F/2)
        self.stem = ConvStem(1, cfg.audio_stem, 1) if cfg.audio_stem else None
        self.embed = nn.Linear(self.pt * self.pf // 4 * cfg.audio_stem if cfg.audio_stem else self.pt * self.pf, c)
        self.n_freq = math.ceil(cfg.preprocess.n_mels / self.pf)
        self.pos_freq = nn.Parameter(torch.randn(self.n_freq, c) * 0.02)
        self.pos_time = nn.Parameter(torch.randn(math.ceil(cfg.num_frames / cfg.tubelet), c) * 0.02)
        self.blocks = nn.ModuleList(Block(c, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.audio_depth))
        self.norm = nn.LayerNorm(c)

    def forward(self, audio: Tensor, frame_mask: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, L, n_mels) log-mel with L ~ T*mel_per_frame, frame_mask (B, T) -> (B, T', F', C), (B, T')."""
        b, t = frame_mask.shape
        tp = math.ceil(t / self.tubelet)
        length = tp * self.pt
        # align the mel axis to the frame axis: crop or zero-pad to T' * tubelet * mel_per_frame rows
        x = audio[:, :length]
        x = F.pad(x, (0, 0, 0, length - x.shape[1]))
        rows_valid = F.pad(frame_mask.bool(), (0, tp * self.tubelet - t)).repeat_interleave(self.mpf, dim=1)
        rows_valid = rows_valid & (torch.arange(length, device=x.device) < audio.shape[1])[None]
        x = normalise_logmel(x, rows_valid)
        fp = math.ceil(x.shape[-1] / self.pf)
        x = F.pad(x, (0, fp * self.pf - x.shape[-1]))
        if self.stem is not None:
            y = self.stem(x[:, None])                                           # (B, N, L/2, F'*pf/2)
            x = rearrange(y, "b c (t pt) (f pf) -> b t f (pt pf c)", pt=self.pt // 2, pf=self.pf // 2)
        else:
            x = rearrange(x, "b (t pt) (f pf) -> b t f (pt pf)", pt=self.pt, pf=self.pf)
        x = self.embed(x)
        x = x + _interp_1d(self.pos_freq, fp)[None, None] + _time_pos(self.pos_time, tp)[None, :, None]
        valid = time_tokens_valid(frame_mask, self.tubelet, tp)
        kv = valid.repeat_interleave(fp, dim=1)  # (B, T'*F') matches "b (t f) c"
        x = rearrange(x, "b t f c -> b (t f) c")
        for blk in self.blocks:
            x = blk(x, kv)
        return rearrange(self.norm(x), "b (t f) c -> b t f c", t=tp), valid


def load_pretrained(module: nn.Module, path: str | Path, what: str) -> tuple[list[str], list[str]]:
    """Load user-supplied safetensors weights into an encoder; returns (missing, unexpected) keys.

    Keys may carry a prefix such as ``video_encoder.`` (a whole MACB-DF checkpoint) which is stripped.
    Raises FileNotFoundError / ValueError with a one-line reason when the file does not fit.

    Example:
        >>> # load_pretrained(model.video_encoder, "my_video_encoder.safetensors", "video")
    """
    from safetensors.torch import load_file

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"pretrained {what} weights not found: {p}")
    try:
        state = load_file(str(p))
    except Exception as exc:  # corrupt / not safetensors
        raise ValueError(f"cannot read pretrained {what} weights {p}: {exc}") from None
    own = module.state_dict()
    for prefix in (f"{what}_encoder.", "encoder.", "module.", ""):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k in own for k in sub):
            break
    else:
        raise ValueError(f"no tensor in {p} matches the {what} encoder's parameter names")
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in sub.items() if k in own and v.shape != own[k].shape]
    if bad:
        raise ValueError(f"pretrained {what} weights {p} do not fit the config: {bad[0]} (and {len(bad) - 1} more)")
    result = module.load_state_dict({k: v for k, v in sub.items() if k in own}, strict=False)
    return list(result.missing_keys), [k for k in sub if k not in own]
