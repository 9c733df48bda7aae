"""The MACB-DF model (§3): encoders, MACL projections, fusion weights, multi-scale blocks, RFMF, heads.

Data flow for one window (shapes for batch B, T frames, T' = ceil(T / tubelet) time tokens):

    video (B,T,3,S,S) -> E_v -> tokens (B,T',h*w,C) -> map V_0 (B,C,T',h,w)
    audio (B,T*mpf,n_mels) -> E_a -> tokens (B,T',F',C) -> map A_0 (B,C,T',F')
    pooled E_v / E_a outputs -> emb_video / emb_audio (B,C) -> unimodal heads, projections z (B,Dc)
    z -> Eq. 9 distances to the stored clusters; tokens -> attention importance -> Eq. 10 weights w (B,2)
    for i in 1..ms_depth:  V'_i = MSTLKA block(V_{i-1}), A'_i = MFTLKA block(A_{i-1})     (Eq. 11-16)
                           x_fused = w_v pool(V_{i-1}) + w_a pool(A_{i-1})   (B,T',C)      (Eq. 17)
                           V_i = V'_i (x) x_fused, A_i = A'_i (x) x_fused                   (Eq. 18)
    RFMF over [ha_0, hv_0, ..., ha_n, hv_n] -> emb_fused -> progressive MLP -> logit        (§3.3-3.4)
    per-time features of V_n / A_n -> frame heads -> frame logits (B,T)                     (Eq. 20)

Clustering (Eq. 9): in training mode every forward pushes the detached projections into per-modality
memory banks and re-clusters every ``cluster_every`` forwards; `update_clusters` refits on demand.

Example:
    >>> from macbdf.models.registry import create_model
    >>> m = create_model("tiny")
    >>> out = m(m.dummy_batch(batch_size=2))
    >>> out["frame_logit_video"].shape
    torch.Size([2, 8])
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from macbdf.models.clustering import ClusterState
from macbdf.models.config import ModelConfig
from macbdf.models.encoders import AudioEncoder, VideoEncoder, load_pretrained
from macbdf.models.fusion import RFMF, FusionWeights
from macbdf.models.heads import FrameHead, ProgressiveHead
from macbdf.models.multiscale import FusionModulation, MultiScaleBlock, fuse_weighted, pool_to_time
from macbdf.models.sync import (
    NUM_SYNC_FEATURES,
    SyncAudioNet,
    SyncVideoNet,
    audio_present,
    sync_features,
    sync_similarity,
)

OUTPUT_KEYS = ("logit", "audio_logit", "video_logit", "frame_logit_audio", "frame_logit_video", "emb_fused",
               "emb_audio", "emb_video", "z_audio", "z_video", "fusion_weights")


class FixedProjection(nn.Module):
    """A frozen random linear map (Johnson-Lindenstrauss style) kept as a buffer, saved with the weights."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(d_out, d_in) / d_in ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.t().to(x.dtype)


def masked_time_mean(seq: Tensor, valid: Tensor) -> Tensor:
    """(B, T', C) averaged over the valid time steps (B, T') -> (B, C)."""
    w = valid.to(seq.dtype)[:, :, None]
    return (seq * w).sum(1) / w.sum(1).clamp_min(1.0)


class MACBDF(nn.Module):
    """MACB-DF. ``model(batch) -> dict`` (keys in `OUTPUT_KEYS`, logits pre-sigmoid).

    Single-modality baselines (``modality="audio"|"video"``) build only one stream; the missing
    modality's entries are zeros (logits 0 = probability 0.5, "no evidence"; embeddings 0;
    fusion_weights one-hot on the used modality), and `MACBCriterion` skips its losses.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        c = cfg.dim
        self.video_encoder = VideoEncoder(cfg) if cfg.uses_video else None
        self.audio_encoder = AudioEncoder(cfg) if cfg.uses_audio else None
        if cfg.pretrained_video and self.video_encoder is not None:
            load_pretrained(self.video_encoder, cfg.pretrained_video, "video")
        if cfg.pretrained_audio and self.audio_encoder is not None:
            load_pretrained(self.audio_encoder, cfg.pretrained_audio, "audio")
        # unimodal sample heads read the encoder outputs only (OM-Pareto's unimodal objectives)
        self.video_head = ProgressiveHead(c, cfg.head_widths, cfg.drop_head) if cfg.uses_video else None
        self.audio_head = ProgressiveHead(c, cfg.head_widths, cfg.drop_head) if cfg.uses_audio else None
        # unified contrastive space (§3.2.1) and clustering state (§3.2.2)
        # without L_C nothing trains a projection: use a fixed random one (buffers) so that the model
        # has no unused parameters (DDP without find_unused_parameters) and z still feeds Eq. 9
        proj = (lambda: nn.Linear(c, cfg.contrast_dim)) if cfg.contrastive_active else \
            (lambda: FixedProjection(c, cfg.contrast_dim))
        self.proj_video = proj() if cfg.uses_video else None
        self.proj_audio = proj() if cfg.uses_audio else None
        if cfg.fusion_weights_active:
            self.fusion_weights = FusionWeights(c, cfg.heads, cfg.fusion_gamma, cfg.fusion_eps)
            self.clusters_video = ClusterState(cfg.contrast_dim, cfg.cluster_k_choices, cfg.cluster_bank_size,
                                               cfg.cov_shrinkage)
            self.clusters_audio = ClusterState(cfg.contrast_dim, cfg.cluster_k_choices, cfg.cluster_bank_size,
                                               cfg.cov_shrinkage)
            self.register_buffer("cluster_steps", torch.zeros((), dtype=torch.long))
        else:
            self.fusion_weights = None
        # multi-scale blocks (§3.2.3) and multi-scale fusion (§3.2.4)
        def ms(nd: int) -> nn.ModuleList:
            return nn.ModuleList(MultiScaleBlock(c, nd, cfg.lka_specs, cfg.gsau_kernel, cfg.layer_scale_init)
                                 for _ in range(cfg.ms_depth))

        self.ms_video = ms(3) if cfg.uses_video else None   # MSTLKA blocks on (B, C, T', h, w)
        self.ms_audio = ms(2) if cfg.uses_audio else None   # MFTLKA blocks on (B, C, T', F')
        cross = cfg.modality == "av" and cfg.fusion == "macb"
        self.mod_video = nn.ModuleList(FusionModulation(c) for _ in range(cfg.ms_depth)) if cross else None
        self.mod_audio = nn.ModuleList(FusionModulation(c) for _ in range(cfg.ms_depth)) if cross else None
        # §3.3 fusion of the per-layer representations (or the plain concatenation baseline)
        n_streams = 2 if cfg.modality == "av" else 1
        if cfg.fusion == "macb":
            self.rfmf = RFMF(c, cfg.heads, cfg.rfmf_depth, cfg.ms_depth + 1, cfg.mlp_ratio, cfg.dropout)
            self.concat_proj = None
        else:
            self.rfmf = None
            self.concat_proj = nn.Sequential(nn.Linear(n_streams * c, c), nn.LayerNorm(c))
        # temporal synchrony extension (models/sync.py): per-step projections + window statistics -> fused
        if cfg.sync_active:
            self.sync_video = SyncVideoNet(cfg.sync_dim, region=cfg.sync_region)
            self.sync_audio = SyncAudioNet(cfg.preprocess.mel_per_frame, cfg.preprocess.n_mels, cfg.sync_dim)
            self.sync_embed = nn.Linear(NUM_SYNC_FEATURES, c)
        else:
            self.sync_video = self.sync_audio = self.sync_embed = None
        self.head = ProgressiveHead(c, cfg.head_widths, cfg.drop_head)
        self.frame_head_video = FrameHead(c, cfg.tubelet) if cfg.uses_video else None
        self.frame_head_audio = FrameHead(c, cfg.tubelet) if cfg.uses_audio else None

    # ------------------------------------------------------------------ public helpers
    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The encoder parameters OM-Pareto balances per modality (empty list for an unused modality)."""
        return {
            "audio": list(self.audio_encoder.parameters()) if self.audio_encoder is not None else [],
            "video": list(self.video_encoder.parameters()) if self.video_encoder is not None else [],
        }

    def dummy_batch(self, batch_size: int = 2, num_frames: int | None = None, seed: int = 0,
                    device: torch.device | str | None = None) -> dict[str, Tensor]:
        """A valid random input batch (with labels, masks and method ids) for tests and smoke runs.

        Labels cycle through the four categories RVRA, RVFA, FVRA, FVFA; the second sample has its
        last quarter of frames padded (frame_mask False) when T >= 4.
        """
        cfg, pp = self.config, self.config.preprocess
        t = num_frames or cfg.num_frames
        g = torch.Generator().manual_seed(seed)
        dev = device if device is not None else next(self.parameters()).device
        vl = torch.tensor([(i // 2) % 2 for i in range(batch_size)], dtype=torch.float32)   # 0,0,1,1,...
        al = torch.tensor([i % 2 for i in range(batch_size)], dtype=torch.float32)          # 0,1,0,1,...
        mask = torch.ones(batch_size, t, dtype=torch.bool)
        if batch_size > 1 and t >= 4:
            mask[1, t - t // 4:] = False
        flv = vl[:, None].expand(batch_size, t).clone()
        fla = al[:, None].expand(batch_size, t).clone()
        if t >= 2:  # partial fakes: only the second half is forged
            flv[:, : t // 2] = 0.0
            fla[:, : t // 2] = 0.0
        batch = {
            "video": torch.rand(batch_size, t, 3, pp.face_size, pp.face_size, generator=g),
            "audio": torch.randn(batch_size, t * pp.mel_per_frame, pp.n_mels, generator=g) * 2.0 - 5.0,
            "frame_mask": mask,
            "label": torch.maximum(vl, al),
            "video_label": vl,
            "audio_label": al,
            "frame_label_video": flv * mask,
            "frame_label_audio": fla * mask,
            "method_id": torch.where(torch.maximum(vl, al) > 0, 1 + (torch.arange(batch_size) % 3), 0).long(),
            "video_method_id": torch.where(vl > 0, 1 + (torch.arange(batch_size) % 2), 0).long(),
            "audio_method_id": torch.where(al > 0, 1 + (torch.arange(batch_size) % 3), 0).long(),
        }
        return {k: v.to(dev) for k, v in batch.items()}

    @torch.no_grad()
    def update_clusters(self, z_video: Tensor, z_audio: Tensor, seed: int = 0) -> bool:
        """Refit the Eq. 9 clusters now from projections in the unified space.

        Pass the model's ``out["z_video"], out["z_audio"]`` (B, contrast_dim), e.g. gathered over the
        training set after an epoch. The rows also enter the memory banks. Returns True when both
        modalities were fitted (False when there are too few rows or fusion weights are off).
        """
        if self.fusion_weights is None:
            return False
        dc = self.config.contrast_dim
        for name, z in (("z_video", z_video), ("z_audio", z_audio)):
            if z.dim() != 2 or z.shape[1] != dc:
                raise ValueError(f"{name} must be (N, {dc}) projections (out['z_*']), got {tuple(z.shape)}")
        self.clusters_video.push(z_video)
        self.clusters_audio.push(z_audio)
        ok_v = self.clusters_video.fit(z_video, seed=seed)
        ok_a = self.clusters_audio.fit(z_audio, seed=seed)
        return ok_v and ok_a

    @torch.no_grad()
    def _auto_cluster(self, z_video: Tensor, z_audio: Tensor) -> None:
        self.clusters_video.push(z_video)
        self.clusters_audio.push(z_audio)
        self.cluster_steps.add_(1)
        step = int(self.cluster_steps)
        # fit early once the bank holds enough points, then every `cluster_every` forwards
        first = not self.clusters_video.fitted and int(self.clusters_video.bank_count) >= self.clusters_video.min_points()
        if first or step % self.config.cluster_every == 0:
            self.clusters_video.fit(seed=step)
            self.clusters_audio.fit(seed=step)

    # ------------------------------------------------------------------ forward
    def _check_batch(self, batch: dict[str, Any]) -> tuple[int, int, Tensor]:
        """Validate the input shapes (one-line ValueError) and return (B, T, frame_mask)."""
        cfg = self.config
        need = (["video"] if cfg.uses_video else []) + (["audio"] if cfg.uses_audio else [])
        missing = [k for k in need if k not in batch]
        if missing:
            raise ValueError(f"batch lacks {', '.join(missing)} (model modality {cfg.modality!r})")
        if cfg.uses_video:
            v = batch["video"]
            if v.dim() != 5 or v.shape[2] != 3:
                raise ValueError(f"batch['video'] must be (B, T, 3, S, S), got {tuple(v.shape)}")
        if cfg.uses_audio:
            a = batch["audio"]
            if a.dim() != 3:
                raise ValueError(f"batch['audio'] must be (B, T*mel_per_frame, n_mels), got {tuple(a.shape)}")
        ref = batch["video"] if cfg.uses_video else batch["audio"]
        b = ref.shape[0]
        mask = batch.get("frame_mask")
        if mask is None:
            t = ref.shape[1] if cfg.uses_video else -(-ref.shape[1] // cfg.preprocess.mel_per_frame)
            mask = torch.ones(b, t, dtype=torch.bool, device=ref.device)
        mask = mask.bool()
        if mask.dim() != 2 or mask.shape[0] != b:
            raise ValueError(f"batch['frame_mask'] must be (B={b}, T), got {tuple(mask.shape)}")
        t = mask.shape[1]
        if cfg.uses_video and batch["video"].shape[1] != t:
            raise ValueError(f"video has {batch['video'].shape[1]} frames but frame_mask has {t}")
        if t < 1:
            raise ValueError("empty window: T = 0 frames")
        return b, t, mask

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        cfg = self.config
        b, t, mask = self._check_batch(batch)
        ref = batch["video"] if cfg.uses_video else batch["audio"]
        c = cfg.dim
        dtype = next(self.parameters()).dtype

        streams: dict[str, dict[str, Tensor]] = {}
        if cfg.uses_video:
            tok, valid = self.video_encoder(batch["video"].to(dtype), mask)        # (B,T',N,C), (B,T')
            hp = -(-batch["video"].shape[-2] // cfg.patch_size)
            streams["video"] = {"tokens": tok, "valid": valid,
                                "map": rearrange(tok, "b t (h w) c -> b c t h w", h=hp).contiguous()}
        if cfg.uses_audio:
            tok, valid = self.audio_encoder(batch["audio"].to(dtype), mask)        # (B,T',F',C), (B,T')
            streams["audio"] = {"tokens": tok, "valid": valid, "map": rearrange(tok, "b t f c -> b c t f").contiguous()}
        valid = next(iter(streams.values()))["valid"]

        out: dict[str, Tensor] = {}
        if self.sync_embed is not None:
            # one unit vector per video frame from each modality's own small front end
            s = sync_similarity(self.sync_audio(batch["audio"].to(dtype), t), self.sync_video(batch["video"].to(dtype)))
            out["sync_sim"] = s                                                          # (B, T, T)
            out["sync_valid"] = mask
            # A window whose audio is digital silence (no track, or a muted one) carries no evidence
            # about synchrony either way: its statistics are zeroed, so a missing track cannot move
            # the score by itself (the video still decides), and the sync loss skips it.
            present = audio_present(batch["audio"], cfg.preprocess.log_eps)                 # (B,) bool
            out["audio_present"] = present
            out["sync_features"] = sync_features(s, mask, cfg.sync_min_shift) * present[:, None].to(s.dtype)  # (B, 4)
        # Per-frame sequences (B, T', C) of the current maps: the embeddings, the RFMF tokens, Eq. 17 and the
        # frame heads all read them. Without autograd each is computed once and shared. Under autograd every
        # use pools the maps anew, in the reference order: the backward graph, and with it the order in which
        # gradients are summed (their float rounding), stays exactly that of the reference computation.
        share = not torch.is_grad_enabled()

        def pool_maps() -> dict[str, Tensor]:
            return {name: pool_to_time(st["map"]) for name, st in streams.items()}

        def pooled_now() -> dict[str, Tensor]:
            return pooled if share else pool_maps()

        if share:
            # the time weights once, then each masked mean is a single product (B, 1, T') x (B, T', C)
            tw = valid.to(dtype)
            tw = (tw / tw.sum(1, keepdim=True).clamp_min(1.0))[:, None, :]

            def time_mean(seq: Tensor, valid: Tensor) -> Tensor:
                return torch.bmm(tw.to(seq.dtype), seq)[:, 0]
        else:
            time_mean = masked_time_mean

        pooled = pool_maps()
        embs = []
        for name, seq in pooled.items():
            emb = time_mean(seq, valid)
            embs.append(emb)
            out[f"emb_{name}"] = emb
            out[f"{name}_logit"] = getattr(self, f"{name}_head")(emb)
            out[f"z_{name}"] = F.normalize(getattr(self, f"proj_{name}")(emb), dim=-1)

        # Eq. 9-10 fusion weights (B, 2) = (w_v, w_a)
        if self.fusion_weights is not None:
            zv, za = out["z_video"].detach(), out["z_audio"].detach()
            dists = torch.stack([self.clusters_video.composite_distance(zv, cfg.cluster_beta),
                                 self.clusters_audio.composite_distance(za, cfg.cluster_beta)], dim=1)
            v, a = streams["video"], streams["audio"]
            n_sp, n_fr = v["tokens"].shape[2], a["tokens"].shape[2]
            w = self.fusion_weights(rearrange(v["tokens"], "b t n c -> b (t n) c"),
                                    rearrange(a["tokens"], "b t f c -> b (t f) c"), dists,
                                    v["valid"].repeat_interleave(n_sp, dim=1), a["valid"].repeat_interleave(n_fr, dim=1))
            if self.training:
                self._auto_cluster(zv, za)
        else:
            w_v = {"av": 0.5, "video": 1.0, "audio": 0.0}[cfg.modality]
            w = torch.tensor([w_v, 1.0 - w_v], dtype=ref.dtype, device=ref.device).expand(b, 2)
        out["fusion_weights"] = w

        # §3.2.3-3.2.4 multi-scale blocks with cross-modal modulation
        layer_tokens = [embs if share else [time_mean(seq, valid) for seq in pool_maps().values()]]
        for i in range(cfg.ms_depth):
            prev = {name: st["map"] for name, st in streams.items()}
            new = {name: getattr(self, f"ms_{name}")[i](m) for name, m in prev.items()}
            if self.mod_video is not None:
                prev_seq = pooled_now()
                x_fused = fuse_weighted(prev_seq["video"], prev_seq["audio"], w)              # Eq. 17
                new["video"] = self.mod_video[i](new["video"], x_fused)                             # Eq. 18
                new["audio"] = self.mod_audio[i](new["audio"], x_fused)
            for name in streams:
                streams[name]["map"] = new[name]
            pooled = pool_maps()
            layer_tokens.append([time_mean(seq, valid) for seq in pooled.values()])

        # §3.3 RFMF over [ha_0, hv_0, ..., ha_n, hv_n] (or plain concatenation) -> §3.4 head
        if self.rfmf is not None:
            toks = torch.stack([torch.stack(lt, dim=1) for lt in layer_tokens], dim=1)   # (B, L, M, C)
            ids = [0 if name == "audio" else 1 for name in streams]
            fused = self.rfmf(toks, ids)
        else:
            fused = self.concat_proj(torch.cat(layer_tokens[-1], dim=-1))
        if self.sync_embed is not None:
            fused = fused + self.sync_embed(out["sync_features"].to(fused.dtype))
        out["emb_fused"] = fused
        out["logit"] = self.head(fused)
        for name, st in streams.items():
            out[f"frame_logit_{name}"] = getattr(self, f"frame_head_{name}")(pooled_now()[name], t)

        # a single-modality baseline still returns every key (zeros for the missing modality)
        for name in ("video", "audio"):
            if name not in streams:
                out[f"{name}_logit"] = torch.zeros_like(out["logit"])
                out[f"frame_logit_{name}"] = torch.zeros(b, t, dtype=out["logit"].dtype, device=ref.device)
                out[f"emb_{name}"] = torch.zeros(b, c, dtype=fused.dtype, device=ref.device)
                out[f"z_{name}"] = torch.zeros(b, cfg.contrast_dim, dtype=fused.dtype, device=ref.device)
        return out

    def extra_repr(self) -> str:
        return f"config={self.config.name!r}, modality={self.config.modality!r}, fusion={self.config.fusion!r}"
