"""`ModelConfig`: every architectural and loss setting of MACB-DF in one typed dataclass.

The config is saved next to the weights (``config.json`` -> ``{"model": cfg.to_dict()}``) and carries
the `PreprocessConfig` the model expects, so a checkpoint always knows how its input was prepared.

Example:
    >>> from macbdf.models.config import ModelConfig
    >>> cfg = ModelConfig(name="mine", dim=64, ms_depth=2)
    >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from macbdf.config import PreprocessConfig

MODALITIES = ("av", "audio", "video")
FUSIONS = ("macb", "concat")
# Upper bounds of the size fields (far above any sensible model; `base` uses dim 256, 16 frames).
_MAX_SIZES = {"num_frames": 1024, "dim": 2048, "video_depth": 64, "audio_depth": 64, "heads": 64,
              "patch_size": 256, "tubelet": 64, "audio_patch_mels": 512, "video_stem": 1024,
              "video_stem_layers": 8, "audio_stem": 1024, "ms_depth": 64, "gsau_kernel": 63, "rfmf_depth": 64,
              "contrast_dim": 2048, "queue_size": 65536, "k_neg": 65536, "temp_hidden": 2048,
              "cluster_bank_size": 65536, "cluster_every": 10**9, "sync_dim": 2048, "sync_min_shift": 1024}


@dataclass
class ModelConfig:
    # identity
    name: str = "custom"
    description: str = ""
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    # input window and token layout (§3.1)
    num_frames: int = 16            # T: frames per training/inference window
    dim: int = 64                   # C: token / channel width shared by both streams
    video_depth: int = 2            # transformer blocks of E_v (divided space-time attention)
    audio_depth: int = 2            # transformer blocks of E_a
    heads: int = 4
    mlp_ratio: float = 2.0
    patch_size: int = 16            # video spatial patch side (pixels); faces are padded to a multiple
    tubelet: int = 2                # frames per video token; also the audio patch's time span (in frames)
    audio_patch_mels: int = 16      # mel bins per audio patch; mel axis padded to a multiple
    # Convolutional stems (0 = off: the paper's plain linear patch embedding). With N > 0 the video
    # stem runs `video_stem_layers` stride-2 3x3 conv-BatchNorm-ReLU layers per frame (widths
    # doubling up to N; S -> S / 2^layers, so patch_size must be a multiple of 2^layers) before
    # tokenisation; the audio stem is a 3x3 then a stride-2 3x3 conv-BN-ReLU on the (time x mel)
    # log-mel plane (patch time span and audio_patch_mels must be even). They give the encoders the
    # locality bias and the batch-normalised fine-detail features needed to see blending /
    # resampling and spectral-fine-structure artefacts when trained from scratch on a few hundred
    # clips (`small` uses the video stem; see benchmarks/RESULTS.md, demo_learnability).
    video_stem: int = 0
    video_stem_layers: int = 3      # stride-2 conv-BN-ReLU layers of the video stem (S -> S / 2^layers)
    audio_stem: int = 0
    dropout: float = 0.0            # dropout inside attention / FFN blocks
    drop_head: float = 0.2          # dropout between the layers of the progressive classifier (§3.4)

    # multi-scale feature extraction and fusion (§3.2.3-3.2.4)
    ms_depth: int = 2               # number of MSTLKA/MFTLKA blocks (paper sweeps 0,2,4,6,8; best 6)
    # (K, d) per channel group (Eq. 15): DW (2d-1)^3, dilated DW ceil(K/d)^3. Odd ceil(K/d) keep the
    # 'same' padding symmetric (even kernels take a slower padded-copy path on CPU).
    lka_specs: tuple[tuple[int, int], ...] = ((5, 2), (9, 3), (13, 3))
    gsau_kernel: int = 3            # depthwise gate kernel of GSAU-video / GSAU-2D
    layer_scale_init: float = 0.1   # lambda_1, lambda_2 of Eq. 12/14 (learnable, "initialised small")

    # RFMF (§3.3)
    rfmf_depth: int = 1
    # classifier (§3.4): hidden widths of the progressive MLP as fractions of dim
    head_widths: tuple[float, ...] = (0.5, 0.25)

    # contrastive learning (§3.2.1)
    contrast_dim: int = 32          # dimension of the unified (L2-normalised) space
    queue_size: int = 256           # FIFO memory of negatives per modality
    k_neg: int = 16                 # K nearest non-matching negatives per anchor (Eq. 2, 7)
    margin: float = 0.1             # m of Eq. 2/7, subtracted from the negative logits as m/tau
    tau0: float = 0.07              # tau_0 of Eq. 4
    tau_min: float = 0.02           # tau is clamped to [tau_min, tau_max]
    tau_max: float = 0.5
    temp_hidden: int = 16           # width of f_theta (Eq. 3) and of the gamma MLP / state (Eq. 5)

    # adaptive clustering and fusion weights (§3.2.2)
    cluster_k_choices: tuple[int, ...] = (2, 3, 4)  # K chosen per modality by silhouette
    cluster_bank_size: int = 512    # memory bank of projections used for re-clustering
    cluster_every: int = 50         # training forwards between automatic re-clusterings
    cluster_beta: float = 0.5       # beta of Eq. 9 (Mahalanobis vs cosine)
    fusion_gamma: float = 0.5       # gamma of Eq. 10 (attention vs inverse distance)
    fusion_eps: float = 0.05        # epsilon of Eq. 10: caps 1/(D+eps) at 20 so one modality cannot take all
    cov_shrinkage: float = 0.1      # Ledoit-Wolf style shrinkage towards a scaled identity

    # variants (ablations / baselines)
    modality: str = "av"            # "av" | "audio" | "video"
    fusion: str = "macb"            # "macb" | "concat"
    use_contrastive: bool = True    # L_C on/off (Table 2, "w/o L_C")
    use_intra: bool = True          # L_vv, L_aa on/off ("w/o L_intra")
    use_cross: bool = True          # L_av, L_va on/off ("w/o L_cross")
    use_fusion_weights: bool = True  # Eq. 9-10 weights on/off ("w/o w": fixed 0.5/0.5)

    # loss weights: total = multimodal + unimodal_a + unimodal_v + lambda_frame*frames + lambda_c*L_C
    lambda_frame: float = 1.0
    lambda_c: float = 0.1

    # temporal audio-visual synchrony (our extension of §3.2.1, models/sync.py; 0 = off, the paper as
    # printed): per-time-step projections of both encoders into a `sync_dim` space, a per-step
    # contrastive term (weight `lambda_sync`, temperature `sync_tau`; shifts below `sync_min_shift` steps
    # are neither positives nor negatives) and window synchrony statistics added to the fused embedding.
    sync_dim: int = 0
    lambda_sync: float = 0.5
    sync_tau: float = 0.1
    sync_min_shift: int = 2
    # Which part of the face crop the sync video front end reads: "face" (the whole crop at half
    # resolution) or "mouth" (the lower-middle part of the crop at full resolution: rows 50-95 %,
    # columns 20-80 % of a crop whose box was enlarged by face_margin, where the mouth sits for
    # frontal faces), so the lips cover ~4x more input pixels.
    sync_region: str = "face"
    # Which head decides a clip whose audio is absent or unusable (`macbdf detect`): "video" (the
    # unimodal video head: the multimodal head never saw silence unless its training data had silent
    # clips) or "fused" (the multimodal head with the audio at the silence floor: right for a model
    # trained on data with silent real AND silent fake clips, e.g. `macbdf forge --silent-fraction`,
    # where it keeps clips with and without audio on one scale).
    no_audio_head: str = "video"

    # optional user-supplied encoder weights (safetensors files); never downloaded
    pretrained_video: str | None = None
    pretrained_audio: str | None = None

    # Config schema. 1 (configs saved without this key): the synchrony extension ran with the MACB
    # fusion only, so a saved concat config with sync_dim > 0 had no sync weights; `from_dict` reads
    # such a config with sync_dim = 0 so that old checkpoints still load. 2: sync with any AV fusion.
    schema: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig.from_dict(self.preprocess)
        # JSON round-trips tuples as lists; keep tuples so equality and hashing behave.
        self.lka_specs = tuple(tuple(int(v) for v in s) for s in self.lka_specs)  # type: ignore[assignment]
        self.head_widths = tuple(float(v) for v in self.head_widths)
        self.cluster_k_choices = tuple(int(v) for v in self.cluster_k_choices)

    # ------------------------------------------------------------------ helpers
    @property
    def uses_audio(self) -> bool:
        return self.modality in ("av", "audio")

    @property
    def uses_video(self) -> bool:
        return self.modality in ("av", "video")

    @property
    def contrastive_active(self) -> bool:
        """L_C is computed only with both streams, the MACB fusion and the switch on."""
        return self.use_contrastive and self.modality == "av" and (self.use_intra or self.use_cross)

    @property
    def sync_active(self) -> bool:
        """The synchrony extension runs whenever both streams are there, with either fusion (MACB or the
        concat baseline, so that comparisons are fair). It needs both modalities: a unimodal baseline
        has no audio-visual pair to compare, so the setting is inert there."""
        return self.sync_dim > 0 and self.modality == "av"

    @property
    def fusion_weights_active(self) -> bool:
        return self.use_fusion_weights and self.modality == "av" and self.fusion == "macb"

    def _type_and_bound_problems(self) -> list[str]:
        """Types and upper bounds of the sizes: checked first, so that a config.json from elsewhere
        gets a one-line reason instead of a TypeError or a multi-gigabyte allocation."""
        problems = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("int", int) and (isinstance(v, bool) or not isinstance(v, int)):
                problems.append(f"{f.name} must be an integer, got {v!r}")
            elif f.type in ("float", float) and (isinstance(v, bool) or not isinstance(v, (int, float))
                                                 or v != v or v in (float("inf"), float("-inf"))):
                problems.append(f"{f.name} must be a finite number, got {v!r}")
            elif f.type in ("bool", bool) and not isinstance(v, bool):
                problems.append(f"{f.name} must be true or false, got {v!r}")
            elif f.type in ("str", str) and not isinstance(v, str):
                problems.append(f"{f.name} must be a string, got {v!r}")
        if problems:
            return problems
        for k, hi in _MAX_SIZES.items():
            if getattr(self, k) > hi:
                problems.append(f"{k} must be <= {hi}, got {getattr(self, k)}")
        for kk, d in self.lka_specs:
            if kk > 63 or d > 16:
                problems.append(f"lka_specs entries need K <= 63 and d <= 16, got {(kk, d)}")
        try:
            self.preprocess.validate()
        except ValueError as e:
            problems.append(str(e))
        return problems

    def validate(self) -> "ModelConfig":
        """Raise ValueError with a one-line reason when a setting has the wrong type or is out of range.

        Example:
            >>> ModelConfig(dim=8192).validate()
            Traceback (most recent call last):
            ...
            ValueError: invalid ModelConfig 'custom': dim must be <= 2048, got 8192
        """
        problems = self._type_and_bound_problems()
        if problems:
            raise ValueError(f"invalid ModelConfig {self.name!r}: " + "; ".join(problems))
        if self.modality not in MODALITIES:
            problems.append(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.fusion not in FUSIONS:
            problems.append(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        for k in ("num_frames", "dim", "heads", "patch_size", "tubelet", "audio_patch_mels", "contrast_dim",
                  "queue_size", "k_neg", "cluster_bank_size", "cluster_every", "temp_hidden"):
            if int(getattr(self, k)) < 1:
                problems.append(f"{k} must be >= 1")
        for k in ("video_depth", "audio_depth", "ms_depth", "rfmf_depth", "video_stem", "audio_stem", "sync_dim"):
            if int(getattr(self, k)) < 0:
                problems.append(f"{k} must be >= 0")
        if self.video_stem and (self.video_stem_layers < 1 or self.patch_size % (2 ** self.video_stem_layers)):
            problems.append(f"video_stem needs video_stem_layers >= 1 and patch_size divisible by "
                            f"2^video_stem_layers, got {self.patch_size} and {self.video_stem_layers}")
        if self.audio_stem and (self.audio_patch_mels % 2 or (self.tubelet * self.preprocess.mel_per_frame) % 2):
            problems.append("audio_stem needs an even audio_patch_mels and an even tubelet * mel_per_frame")
        if (self.video_stem and self.video_stem < 2) or (self.audio_stem and self.audio_stem < 2):
            problems.append("video_stem / audio_stem must be 0 (off) or >= 2 channels")
        if self.dim % self.heads:
            problems.append(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if len(self.lka_specs) < 1 or len(self.lka_specs) > self.dim:
            problems.append("lka_specs needs between 1 and dim (K, d) pairs")
        for kk, d in self.lka_specs:
            if kk < 1 or d < 1:
                problems.append(f"lka_specs entries need K >= 1 and d >= 1, got {(kk, d)}")
        if not (0 < self.tau_min <= self.tau0 <= self.tau_max):
            problems.append("need 0 < tau_min <= tau0 <= tau_max")
        if not (0.0 <= self.cluster_beta <= 1.0 and 0.0 <= self.fusion_gamma <= 1.0):
            problems.append("cluster_beta and fusion_gamma must lie in [0, 1]")
        if any(k < 2 for k in self.cluster_k_choices) or not self.cluster_k_choices:
            problems.append("cluster_k_choices must be non-empty with every K >= 2")
        if self.no_audio_head not in ("video", "fused"):
            problems.append(f"no_audio_head must be 'video' or 'fused', got {self.no_audio_head!r}")
        if self.sync_region not in ("face", "mouth"):
            problems.append(f"sync_region must be 'face' or 'mouth', got {self.sync_region!r}")
        if self.sync_dim and not (self.sync_tau > 0 and self.sync_min_shift >= 1 and self.lambda_sync >= 0):
            problems.append("sync needs sync_tau > 0, sync_min_shift >= 1 and lambda_sync >= 0")
        if not self.fusion_eps > 0:
            problems.append("fusion_eps must be > 0")
        if not (0.0 <= self.cov_shrinkage <= 1.0):
            problems.append("cov_shrinkage must lie in [0, 1]")
        if problems:
            raise ValueError(f"invalid ModelConfig {self.name!r}: " + "; ".join(problems))
        return self

    def replace(self, **overrides: Any) -> "ModelConfig":
        """A copy with some fields changed (unknown names raise a clear error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        if isinstance(overrides.get("preprocess"), dict):
            overrides["preprocess"] = PreprocessConfig.from_dict(overrides["preprocess"])
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lka_specs"] = [list(s) for s in self.lka_specs]
        d["head_widths"] = list(self.head_widths)
        d["cluster_k_choices"] = list(self.cluster_k_choices)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from `to_dict()` output; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "schema" not in d and kw.get("fusion") == "concat":
            kw["sync_dim"] = 0   # schema 1: a concat model had no sync weights whatever sync_dim said
        if isinstance(kw.get("preprocess"), dict):
            kw["preprocess"] = PreprocessConfig.from_dict(kw["preprocess"])
        return cls(**kw)
