"""Training objectives of MACB-DF: Eq. 19-20 (BCE), Eq. 2-8 (L_C), combined by `MACBCriterion.total`.

`MACBCriterion` is an nn.Module: it owns the learnable adaptive-temperature networks (Eq. 3-6) and
the FIFO negative queues (buffers). Optimise ``list(model.parameters()) + list(criterion.parameters())``
and save ``criterion.state_dict()`` with the run. Call ``criterion.train()`` / ``.eval()`` together
with the model: the temperature state and the queues only move in training mode.

Example:
    >>> from macbdf.models.registry import create_model
    >>> model = create_model("tiny"); crit = MACBCriterion(model.config)
    >>> batch = model.dummy_batch(batch_size=4)
    >>> losses = crit(model(batch), batch)
    >>> sorted(k for k in losses if not k.startswith("log_"))
    ['contrastive', 'frame_audio', 'frame_video', 'multimodal', 'unimodal_audio', 'unimodal_video']
    >>> crit.total(losses).backward()
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from macbdf.models.config import ModelConfig
from macbdf.models.contrastive import AdaptiveTemperature, contrast_keys, cross_modal_loss, sample_ids, supcon_loss
from macbdf.models.sync import sync_loss

LOSS_KEYS = ("multimodal", "unimodal_audio", "unimodal_video", "frame_audio", "frame_video", "contrastive")


def sample_bce(logit: Tensor, target: Tensor) -> Tensor:
    """Eq. 19: mean binary cross-entropy of sigmoid(logit) against {0,1} targets (computed in fp32).

    Targets < 0 mean "unknown" (e.g. which track of a DFDC fake was manipulated) and are left out
    of the mean; a BCE against -1 would be unbounded below.
    """
    known = target >= 0
    per = F.binary_cross_entropy_with_logits(logit.float(), target.float().clamp_min(0.0), reduction="none")
    k = known.to(per.dtype)
    return (per * k).sum() / k.sum().clamp_min(1.0)


def audio_only_targets(batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """(audio label (B,), audio frame labels (B, T)) as the audio-only losses see them.

    A fake whose audio is an unedited recording (another speaker's speech, the same speaker's other
    words, an A/V offset; ``batch["audio_recorded"]``) is fake only in its pairing with the face: no
    function of the audio alone can separate it from a real track, so a unimodal audio target of 1
    would only teach E_a that natural speech is "fake" with the family's prior, and every real
    speaker's audio would score ~0.6. Those samples get -1 (unknown) here: the unimodal audio head,
    the audio frame head and L_aa leave them out, while the fused head, the cross-modal terms and the
    synchrony loss still see them as fake.

    Example:
        >>> import torch
        >>> b = {"audio_label": torch.tensor([1., 1., 0.]), "frame_label_audio": torch.ones(3, 2),
        ...      "audio_recorded": torch.tensor([True, False, False])}
        >>> al, fla = audio_only_targets(b); al.tolist(), fla[:, 0].tolist()
        ([-1.0, 1.0, 0.0], [-1.0, 1.0, 1.0])
    """
    al, fla = batch["audio_label"], batch["frame_label_audio"]
    rec = batch.get("audio_recorded")
    if rec is None:
        return al, fla
    rec = rec.to(al.device).bool()
    return al.masked_fill(rec, -1.0), fla.masked_fill(rec[:, None], -1.0)


def frame_bce(logit: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Eq. 20: BCE over the valid frames with known labels only (mask (B, T) bool); mean over them."""
    per = F.binary_cross_entropy_with_logits(logit.float(), target.float().clamp_min(0.0), reduction="none")
    m = (mask.bool() & (target >= 0)).to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


class NegativeQueue(nn.Module):
    """FIFO memory of past projections of one modality (fixed-size buffer + count + pointer)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("items", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))   # sample ids, -1 unknown
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def get(self) -> tuple[Tensor, Tensor]:
        """(items (Q, D), ids (Q,)) currently held; copies, since `push` overwrites the buffers in place
        while the autograd graph still needs the values it used."""
        n = int(self.count)
        return self.items[:n].clone(), self.ids[:n].clone()

    @torch.no_grad()
    def push(self, z: Tensor, ids: Tensor | None = None) -> None:
        z = z.detach().to(self.items.dtype)
        cap = self.items.shape[0]
        ids = torch.full((z.shape[0],), -1, dtype=torch.long, device=z.device) if ids is None else ids
        z, ids = z[-cap:], ids[-cap:]
        n, ptr = z.shape[0], int(self.ptr)
        idx = (torch.arange(n, device=z.device) + ptr) % cap
        self.items[idx] = z
        self.ids[idx] = ids.to(self.ids.device)
        self.ptr.fill_((ptr + n) % cap)
        self.count.fill_(min(cap, int(self.count) + n))


class MACBCriterion(nn.Module):
    """All losses of §3 as a dict of scalars; `total` combines them with the config's weights."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        # built only when L_C is active: no parameter without a gradient in the ablations (DDP-safe)
        active = cfg.contrastive_active
        self.temperature = AdaptiveTemperature(cfg.tau0, cfg.tau_min, cfg.tau_max, cfg.temp_hidden) if active else None
        self.queue_video = NegativeQueue(cfg.queue_size, cfg.contrast_dim) if active else None
        self.queue_audio = NegativeQueue(cfg.queue_size, cfg.contrast_dim) if active else None

    def contrastive(self, out: dict[str, Tensor], batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """L_C (Eq. 8) = mean of the active terms among L_av, L_va (Eq. 2, 7), L_vv, L_aa; plus diagnostics."""
        cfg = self.config
        zv, za = out["z_video"].float(), out["z_audio"].float()
        tau, logs = self.temperature(za, zv)
        vl, al = batch["video_label"], batch["audio_label"]
        # a positive needs both tracks known to be authentic (unknown labels are < 0)
        real_pair = (vl >= 0) & (vl < 0.5) & (al >= 0) & (al < 0.5)
        terms: dict[str, Tensor] = {}
        ids = sample_ids(batch, zv.device)   # windows of one video are never each other's negatives
        if cfg.use_cross:
            (qv, qv_ids), (qa, qa_ids) = self.queue_video.get(), self.queue_audio.get()
            terms["L_av"] = cross_modal_loss(za, zv, qv, real_pair, cfg.k_neg, cfg.margin, tau, ids, qv_ids)  # Eq. 2
            terms["L_va"] = cross_modal_loss(zv, za, qa, real_pair, cfg.k_neg, cfg.margin, tau, ids, qa_ids)  # Eq. 7
        if cfg.use_intra:
            # each modality groups by its own manipulation (a faceswap video is a faceswap video whether
            # the audio is tts or real); batches without the per-modality ids fall back to the joint id
            mid = batch.get("method_id")
            vmid, amid = batch.get("video_method_id", mid), batch.get("audio_method_id", mid)
            terms["L_vv"] = supcon_loss(zv, contrast_keys(batch["video_label"], vmid), tau)
            terms["L_aa"] = supcon_loss(za, contrast_keys(audio_only_targets(batch)[0], amid), tau)
        # Eq. 8 is the mean of the four terms; with a switch off, the mean of those that remain
        lc = torch.stack(list(terms.values())).mean()
        if self.training:
            self.queue_video.push(zv, ids)
            self.queue_audio.push(za, ids)
        logs.update({k: v.detach() for k, v in terms.items()})
        return lc, logs

    def forward(self, out: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        cfg = self.config
        ref = out["logit"]
        zero = ref.new_zeros((), dtype=torch.float32)
        mask = batch["frame_mask"].bool()
        losses: dict[str, Tensor] = {"multimodal": sample_bce(out["logit"], batch["label"])}
        targets = {"video": (batch["video_label"], batch["frame_label_video"]), "audio": audio_only_targets(batch)}
        for m in ("audio", "video"):
            used = cfg.uses_audio if m == "audio" else cfg.uses_video
            label, frame_label = targets[m]
            losses[f"unimodal_{m}"] = sample_bce(out[f"{m}_logit"], label) if used else zero
            losses[f"frame_{m}"] = frame_bce(out[f"frame_logit_{m}"], frame_label, mask) if used else zero
        if cfg.contrastive_active:
            lc, logs = self.contrastive(out, batch)
            losses["contrastive"] = lc
            for k, v in logs.items():
                losses[f"log_{k}"] = v
        else:
            losses["contrastive"] = zero
        if cfg.sync_active and "sync_sim" in out:
            vl, al = batch["video_label"], batch["audio_label"]
            authentic = (vl >= 0) & (vl < 0.5) & (al >= 0) & (al < 0.5)
            if "audio_present" in out:  # silence cannot be in or out of sync with a face
                authentic = authentic & out["audio_present"]
            losses["sync"] = sync_loss(out["sync_sim"], out["sync_valid"].bool(), authentic, cfg.sync_tau,
                                       cfg.margin, cfg.sync_min_shift)
            losses["log_sync_diag"] = out["sync_features"][:, 0].detach().float().mean()
        w = out.get("fusion_weights")
        if w is not None:
            losses["log_w_video"] = w[:, 0].detach().float().mean()
            losses["log_w_audio"] = w[:, 1].detach().float().mean()
        return losses

    def total(self, losses: dict[str, Tensor]) -> Tensor:
        """multimodal + unimodal_audio + unimodal_video + lambda_frame*(frame_a + frame_v) + lambda_c*contrastive
        (+ lambda_sync*sync with the synchrony extension)."""
        cfg = self.config
        total = (losses["multimodal"] + losses["unimodal_audio"] + losses["unimodal_video"]
                 + cfg.lambda_frame * (losses["frame_audio"] + losses["frame_video"])
                 + cfg.lambda_c * losses["contrastive"])
        if "sync" in losses:
            total = total + cfg.lambda_sync * losses["sync"]
        return total
