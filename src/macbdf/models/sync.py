"""Temporal audio-visual synchrony (an extension of §3.2.1; off unless ``sync_dim > 0``).

The paper's cross-modal terms (Eq. 2, 7) compare whole-window embeddings, which are pooled over time:
two windows with the same face, voice and room but different words (an audio swap, a lip-sync with no
visual trace, the inserted stretch of a splice) pool to nearly the same pair, so L_C cannot tell them
from an authentic one. The paper credits cross-modal contrastive learning with catching "subtle
audio-visual asynchrony" (§4.4) and names temporal consistency as future work (§5); this module is our
reading of how to make that work at the time scale where asynchrony lives:

* `SyncVideoNet` / `SyncAudioNet` map every video frame and the log-mel frames under it to unit vectors
  in a shared sync space: a small front end of their own (a few conv-BatchNorm layers on grey-level
  frames; temporal convs on stacked log-mel frames). The first attempt projected the encoders' time
  tokens instead: with the 2-frame tubelets, the transformer mixing and the classification losses
  pulling those features towards artefacts, its sync loss stayed at chance for a whole demo run, while
  this front end learns synchrony from the same windows in ~300 steps (benchmarks/RESULTS.md, sync).
* `sync_similarity` -> S (B, T, T), S[b, t, u] = cos(audio_t, video_u).
* `sync_features` -> 4 window statistics (mean and min of the diagonal, mean diagonal margin over the
  best shifted pair, both directions), which the model adds to its fused embedding.
* `sync_loss` - Eq. 2/7 applied per time step within a window: for windows whose two tracks are
  authentic, audio step t's positive is video step t and its negatives are the video steps at least
  `min_shift` away (the margin is subtracted as in Eq. 2); the same from video to audio. Adjacent steps
  (|t - u| < min_shift) are neither: mouth shapes change slowly and a one-step shift is not a mismatch.

Example:
    >>> import torch
    >>> s = torch.eye(4)[None]                       # perfectly synchronous, 4 steps
    >>> feats = sync_features(s, torch.ones(1, 4, dtype=torch.bool))
    >>> [round(float(x), 2) for x in feats[0]]
    [1.0, 1.0, 1.0, 1.0]
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from macbdf.models.fastpath import bn_tensors, fold_conv_bn, frozen_cache, frozen_eval

NUM_SYNC_FEATURES = 4


def audio_present(logmel: Tensor, log_eps: float, margin: float = 2.0) -> Tensor:
    """(B, L, F) log-mel -> (B,) bool: True where the window holds any sound above digital silence.

    `prepare` writes log(eps) everywhere for a clip without an audio track, and a muted track
    decodes to (near) zeros, which land at the same floor; ``margin`` (natural-log units, ~17 dB
    of power) keeps encoder noise around the floor from counting as sound.

    Example:
        >>> import math, torch
        >>> floor = math.log(1e-6)
        >>> audio_present(torch.stack([torch.full((8, 4), floor), torch.zeros(8, 4)]), 1e-6).tolist()
        [False, True]
    """
    floor = math.log(max(float(log_eps), 1e-30))
    return logmel.flatten(1).amax(1) > floor + margin


class SyncVideoNet(nn.Module):
    """Video frames (B, T, 3, S, S) -> (B, T, D) unit vectors, one per frame.

    Grey-level frames at half resolution through four stride-2 3x3 conv-BatchNorm-ReLU layers, a
    spatial mean, and a temporal conv (kernel 3) so that a step sees the mouth's motion, not only its
    shape. Size-agnostic (any face size).
    """

    # (row0, row1, col0, col1) of the crop that "mouth" reads, as fractions of the face crop
    MOUTH_REGION = (0.50, 0.95, 0.20, 0.80)

    def __init__(self, out_dim: int, width: int = 32, region: str = "face") -> None:
        super().__init__()
        self.region = region
        ch = [1, width // 2, width, width, width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(ch[i], ch[i + 1], 3, 2, 1, bias=False), nn.BatchNorm2d(ch[i + 1]), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.temporal = nn.Conv1d(width, out_dim, 3, padding=1)

    def forward(self, video: Tensor) -> Tensor:
        if frozen_eval(self):
            return self._frozen_forward(video)
        b, t = video.shape[:2]
        x = rearrange(video, "b t c h w -> (b t) c h w").mean(1, keepdim=True)     # grey (BT, 1, S, S)
        if self.region == "mouth":
            s_h, s_w = x.shape[-2:]
            r0, r1, c0, c1 = self.MOUTH_REGION
            x = x[..., int(r0 * s_h):max(int(r0 * s_h) + 1, int(r1 * s_h)),
                  int(c0 * s_w):max(int(c0 * s_w) + 1, int(c1 * s_w))]               # (BT, 1, ~0.45S, ~0.6S)
        else:
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        f = rearrange(self.conv(x).mean((2, 3)), "(b t) c -> b c t", b=b, t=t)       # (B, W, T)
        return F.normalize(rearrange(self.temporal(f), "b d t -> b t d"), dim=-1)

    def _frozen_forward(self, video: Tensor) -> Tensor:
        """Inference path: BatchNorms folded into the convolutions, and the grey conversion (plus the
        2x2 average pooling of the "face" region on even-sized frames) folded into the first one: a
        3x3 stride-2 convolution of the 2x2-pooled grey image is a 6x6 stride-4 convolution of the
        colour frame with the same zero padding. Same result up to float rounding."""
        b, t = video.shape[:2]
        x = rearrange(video, "b t c h w -> (b t) c h w")
        convs = [m for m in self.conv if isinstance(m, nn.Conv2d)]
        bns = [m for m in self.conv if isinstance(m, nn.BatchNorm2d)]
        tensors = [u for c, bn in zip(convs, bns) for u in (c.weight, *bn_tensors(bn))]
        s_h, s_w = x.shape[-2:]
        pooled = self.region != "mouth"
        composite = pooled and s_h % 2 == 0 and s_w % 2 == 0

        def build() -> list[tuple[Tensor, Tensor]]:
            layers = [tuple(u.to(x.dtype) for u in fold_conv_bn(c, bn)) for c, bn in zip(convs, bns)]
            w0, b0 = layers[0]
            if composite:
                w0 = (w0 / 12.0).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            else:                                # the grey conversion only (mean of the 3 channels)
                w0 = w0 / 3.0
            layers[0] = (w0.expand(-1, x.shape[1], -1, -1).contiguous(), b0)
            return layers

        layers = frozen_cache(self, "folded", tensors, (x.dtype, x.device, composite), build)
        if self.region == "mouth":
            r0, r1, c0, c1 = self.MOUTH_REGION
            x = x[..., int(r0 * s_h):max(int(r0 * s_h) + 1, int(r1 * s_h)),
                  int(c0 * s_w):max(int(c0 * s_w) + 1, int(c1 * s_w))]
        elif not composite:                      # odd size: pool as the reference path does
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        for i, (c, (w, bias)) in enumerate(zip(convs, layers)):
            if i == 0 and composite:
                x = F.conv2d(x, w, bias, 2 * c.stride[0], 2 * c.padding[0])
            else:
                x = F.conv2d(x, w, bias, c.stride, c.padding)
            x = F.relu_(x)
        f = rearrange(x.mean((2, 3)), "(b t) c -> b c t", b=b, t=t)
        return F.normalize(rearrange(self.temporal(f), "b d t -> b t d"), dim=-1)


class SyncAudioNet(nn.Module):
    """Log-mel (B, T * mpf, n_mels) -> (B, T, D) unit vectors, one per video frame.

    The ``mpf`` mel frames of each video frame are stacked into one vector, then two temporal convs
    (kernel 3, BatchNorm, ReLU between).
    """

    def __init__(self, mel_per_frame: int, n_mels: int, out_dim: int, width: int = 64) -> None:
        super().__init__()
        self.mpf = mel_per_frame
        self.net = nn.Sequential(nn.Conv1d(mel_per_frame * n_mels, width, 3, padding=1, bias=False),
                                 nn.BatchNorm1d(width), nn.ReLU(), nn.Conv1d(width, out_dim, 3, padding=1))

    def forward(self, audio: Tensor, num_frames: int) -> Tensor:
        need = num_frames * self.mpf
        if audio.shape[1] < need:   # a short track: pad with its own minimum (silence in log-mel)
            pad = audio.amin(dim=(1, 2), keepdim=True).expand(-1, need - audio.shape[1], audio.shape[2])
            audio = torch.cat([audio, pad], 1)
        x = rearrange(audio[:, :need], "b (t k) m -> b (k m) t", k=self.mpf)           # (B, mpf*M, T)
        if frozen_eval(self):
            # inference path: the BatchNorm folded into the first convolution
            c1, bn, _, c2 = self.net
            w, bias = frozen_cache(self, "folded", [c1.weight, *bn_tensors(bn)], (x.dtype, x.device),
                                   lambda: tuple(u.to(x.dtype) for u in fold_conv_bn(c1, bn)))
            y = c2(F.relu_(F.conv1d(x, w, bias, c1.stride, c1.padding)))
        else:
            y = self.net(x)
        return F.normalize(rearrange(y, "b d t -> b t d"), dim=-1)


def sync_similarity(a: Tensor, v: Tensor) -> Tensor:
    """a, v (B, T, D) unit vectors -> S (B, T, T) with S[b, t, u] = <a_t, v_u>."""
    return torch.einsum("btd,bud->btu", a, v)


def shift_mask(valid: Tensor, min_shift: int) -> Tensor:
    """(B, T) valid steps -> (B, T, T) True where (t, u) are both valid and |t - u| >= min_shift."""
    t = valid.shape[1]
    idx = torch.arange(t, device=valid.device)
    far = (idx[:, None] - idx[None, :]).abs() >= min_shift
    return far[None] & valid[:, :, None] & valid[:, None, :]


def _masked_mean(x: Tensor, m: Tensor) -> Tensor:
    m = m.to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def sync_features(s: Tensor, valid: Tensor, min_shift: int = 2) -> Tensor:
    """Window statistics of S (B, T, T) over the valid steps (B, T) -> (B, 4).

    [mean_t S_tt, min_t S_tt, mean_t (S_tt - max_{|u-t|>=k} S_tu), mean_t (S_tt - max_{|u-t|>=k} S_ut)];
    a step with no shifted partner contributes a margin of 0.
    """
    s = s.float()
    diag = s.diagonal(dim1=1, dim2=2)                                    # (B, T)
    far = shift_mask(valid, min_shift)
    row_max = s.masked_fill(~far, float("-inf")).amax(2)
    col_max = s.masked_fill(~far, float("-inf")).amax(1)
    has_row, has_col = far.any(2), far.any(1)
    m_row = torch.where(has_row, diag - row_max.clamp_min(-2.0), torch.zeros_like(diag))
    m_col = torch.where(has_col, diag - col_max.clamp_min(-2.0), torch.zeros_like(diag))
    d_min = diag.masked_fill(~valid, float("inf")).amin(1)
    d_min = torch.where(valid.any(1), d_min, torch.zeros_like(d_min))
    return torch.stack([_masked_mean(diag, valid), d_min, _masked_mean(m_row, valid), _masked_mean(m_col, valid)], 1)


def sync_loss(s: Tensor, valid: Tensor, authentic: Tensor, tau: float, margin: float, min_shift: int = 2) -> Tensor:
    """Per-step Eq. 2 (audio -> video, rows of S) and Eq. 7 (video -> audio, columns), averaged.

    s (B, T, T), valid (B, T) bool, authentic (B,) bool: windows whose two tracks are both authentic
    (only their aligned steps are known to be synchronous). Anchors: valid steps of authentic windows with
    at least one shifted partner. Logits: positive S_tt / tau, negatives (S_tu - margin) / tau.
    Returns 0 (keeping the graph) when no window qualifies.
    """
    s = s.float()
    far = shift_mask(valid, min_shift) & authentic[:, None, None]
    t = s.shape[1]
    eye = torch.eye(t, dtype=torch.bool, device=s.device)[None]
    losses = []
    for mat, neg in ((s, far), (rearrange(s, "b t u -> b u t"), rearrange(far, "b t u -> b u t"))):
        anchors = neg.any(2)                                             # (B, T)
        if not bool(anchors.any()):
            continue
        logits = torch.where(eye, mat, mat - margin) / tau
        logits = logits.masked_fill(~(neg | eye), float("-inf"))
        lse = torch.logsumexp(logits, dim=2)
        per = lse - mat.diagonal(dim1=1, dim2=2) / tau                   # (B, T)
        losses.append(per[anchors].mean())
    if not losses:
        return s.sum() * 0.0
    return torch.stack(losses).mean()
