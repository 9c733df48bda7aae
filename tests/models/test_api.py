"""Public contract of macbdf.models: registry, config, batch/output dicts, variants, checkpoints."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import macbdf
from macbdf.config import PreprocessConfig
from macbdf.models.config import ModelConfig
from macbdf.models.losses import LOSS_KEYS, MACBCriterion
from macbdf.models.macbdf import OUTPUT_KEYS
from macbdf.models.registry import create_model, get_model_config, list_models, register_model_config

# float(loss) on a graph tensor is fine in assertions
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def test_registry_has_named_configs():
    names = macbdf.list_models()
    assert {"tiny", "small", "base"} <= set(names)
    assert get_model_config("base").ms_depth == 6
    for n in names:
        cfg = get_model_config(n)
        assert cfg.name == n and cfg.description
        assert isinstance(cfg.preprocess, PreprocessConfig)


def test_get_model_config_returns_copy_and_unknown_name_is_clear():
    cfg = get_model_config("tiny")
    cfg.dim = 999
    assert get_model_config("tiny").dim != 999
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        get_model_config("nope")


def test_register_custom_config():
    register_model_config("test_custom", ModelConfig(dim=16, heads=2, ms_depth=0, description="x"))
    assert "test_custom" in list_models()
    m = create_model("test_custom")
    assert m.config.name == "test_custom" and m.config.dim == 16


def test_config_roundtrip_json():
    cfg = get_model_config("small").replace(ms_depth=4, margin=0.3)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert isinstance(d["preprocess"], dict) and d["preprocess"]["n_mels"] == cfg.preprocess.n_mels
    back = ModelConfig.from_dict(d)
    assert back == cfg
    # unknown keys from a newer version are ignored
    assert ModelConfig.from_dict({**d, "future_field": 1}) == cfg


@pytest.mark.parametrize("bad", [dict(modality="both"), dict(fusion="sum"), dict(dim=30, heads=4),
                                 dict(tau0=5.0), dict(cluster_k_choices=(1,)), dict(ms_depth=-1)])
def test_invalid_config_gives_one_line_error(bad):
    with pytest.raises(ValueError) as e:
        create_model("tiny", **bad)
    assert "\n" not in str(e.value)


def test_unknown_override_is_rejected():
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        create_model("tiny", no_such_field=3)


def test_forward_output_contract(tiny_model):
    batch = tiny_model.dummy_batch(batch_size=3)
    out = tiny_model(batch)
    b, t = 3, tiny_model.config.num_frames
    assert set(OUTPUT_KEYS) <= set(out)
    for k in ("logit", "audio_logit", "video_logit"):
        assert out[k].shape == (b,)
    for k in ("frame_logit_audio", "frame_logit_video"):
        assert out[k].shape == (b, t)
    for k in ("emb_fused", "emb_audio", "emb_video"):
        assert out[k].shape == (b, tiny_model.config.dim)
    for k in ("z_audio", "z_video"):
        assert out[k].shape == (b, tiny_model.config.contrast_dim)
        torch.testing.assert_close(out[k].norm(dim=1), torch.ones(b))
    assert out["fusion_weights"].shape == (b, 2)
    torch.testing.assert_close(out["fusion_weights"].sum(1), torch.ones(b))


def test_dummy_batch_matches_batch_contract(tiny_model):
    cfg = tiny_model.config
    batch = tiny_model.dummy_batch(batch_size=4)
    t, s, pp = cfg.num_frames, cfg.preprocess.face_size, cfg.preprocess
    assert batch["video"].shape == (4, t, 3, s, s) and batch["video"].dtype == torch.float32
    assert 0.0 <= float(batch["video"].min()) and float(batch["video"].max()) <= 1.0
    assert batch["audio"].shape == (4, t * pp.mel_per_frame, pp.n_mels)
    assert batch["frame_mask"].dtype == torch.bool and not bool(batch["frame_mask"][1].all())
    for k in ("label", "video_label", "audio_label"):
        assert batch[k].shape == (4,) and batch[k].dtype == torch.float32
    assert batch["method_id"].dtype == torch.int64
    # the four categories appear, and the sample label is "either modality fake"
    assert set(zip(batch["video_label"].tolist(), batch["audio_label"].tolist())) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    torch.testing.assert_close(batch["label"], torch.maximum(batch["video_label"], batch["audio_label"]))
    assert not bool((batch["frame_label_video"] * ~batch["frame_mask"]).any())


def test_modality_parameters_are_the_encoders(tiny_model):
    groups = tiny_model.modality_parameters()
    assert set(groups) == {"audio", "video"}
    ids_a = {id(p) for p in groups["audio"]}
    ids_v = {id(p) for p in groups["video"]}
    assert ids_a and ids_v and not ids_a & ids_v
    assert ids_a == {id(p) for p in tiny_model.audio_encoder.parameters()}
    assert ids_v == {id(p) for p in tiny_model.video_encoder.parameters()}
    every = {id(p) for p in tiny_model.parameters()}
    assert ids_a | ids_v < every


def test_unimodal_objectives_touch_only_their_encoder():
    m = create_model("tiny")
    crit = MACBCriterion(m.config)
    batch = m.dummy_batch(4)
    losses = crit(m(batch), batch)
    groups = m.modality_parameters()
    g = torch.autograd.grad(losses["unimodal_audio"], groups["audio"] + groups["video"], allow_unused=True)
    ga, gv = g[: len(groups["audio"])], g[len(groups["audio"]):]
    assert any(x is not None and bool(x.abs().sum() > 0) for x in ga)
    assert all(x is None or float(x.abs().sum()) == 0.0 for x in gv)


def test_criterion_keys_and_total(tiny_model):
    crit = MACBCriterion(tiny_model.config)
    batch = tiny_model.dummy_batch(4)
    losses = crit(tiny_model(batch), batch)
    assert set(LOSS_KEYS) <= set(losses)
    for k in LOSS_KEYS:
        assert losses[k].dim() == 0 and torch.isfinite(losses[k])
    for k in ("log_L_av", "log_L_va", "log_L_aa", "log_L_vv", "log_tau", "log_gamma"):
        assert k in losses and not losses[k].requires_grad
    cfg = tiny_model.config
    expect = (losses["multimodal"] + losses["unimodal_audio"] + losses["unimodal_video"]
              + cfg.lambda_frame * (losses["frame_audio"] + losses["frame_video"]) + cfg.lambda_c * losses["contrastive"])
    torch.testing.assert_close(crit.total(losses), expect)
    assert len(list(crit.parameters())) > 0
    assert {"queue_video.items", "queue_audio.items", "temperature.tau_prev"} <= set(crit.state_dict())


VARIANTS = [
    dict(use_contrastive=False), dict(use_intra=False), dict(use_cross=False), dict(use_fusion_weights=False),
    dict(ms_depth=0), dict(ms_depth=4), dict(modality="audio"), dict(modality="video"), dict(fusion="concat"),
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_ablation_and_baseline_variants_run(overrides):
    m = create_model("tiny", **overrides)
    crit = MACBCriterion(m.config)
    batch = m.dummy_batch(3)
    out = m(batch)
    assert set(OUTPUT_KEYS) <= set(out)
    assert out["frame_logit_video"].shape == (3, m.config.num_frames)
    losses = crit(out, batch)
    total = crit.total(losses)
    assert torch.isfinite(total)
    total.backward()
    cfg = m.config
    if not cfg.contrastive_active:
        assert float(losses["contrastive"]) == 0.0
    if cfg.modality == "audio":
        assert m.video_encoder is None and m.modality_parameters()["video"] == []
        assert float(out["video_logit"].abs().sum()) == 0.0 and float(losses["unimodal_video"]) == 0.0
        torch.testing.assert_close(out["fusion_weights"], torch.tensor([[0.0, 1.0]] * 3))
    if cfg.modality == "video":
        assert m.audio_encoder is None and float(losses["frame_audio"]) == 0.0
    if cfg.fusion == "concat":
        assert not cfg.use_contrastive and not cfg.use_fusion_weights and m.rfmf is None


def test_concat_keeps_explicit_overrides():
    m = create_model("tiny", fusion="concat", use_contrastive=True)
    assert m.config.use_contrastive


def test_odd_sizes():
    m = create_model("tiny")
    b = m.dummy_batch(2, num_frames=7)
    b["video"] = torch.rand(2, 7, 3, 50, 37)        # face not a multiple of the patch, non-square
    b["audio"] = torch.randn(2, 7 * 4 - 3, 23)      # mel frames short by 3, 23 mel bands
    out = m(b)
    assert out["frame_logit_video"].shape == (2, 7) and out["frame_logit_audio"].shape == (2, 7)
    assert all(torch.isfinite(v).all() for v in out.values())
    # longer than the configured window (positional embeddings are interpolated)
    b = m.dummy_batch(1, num_frames=21)
    assert m(b)["frame_logit_audio"].shape == (1, 21)


def test_batch_of_one_in_training_mode():
    m = create_model("tiny").train()
    crit = MACBCriterion(m.config).train()
    b = m.dummy_batch(1)
    crit.total(crit(m(b), b)).backward()


def test_missing_frame_mask_means_all_valid():
    m = create_model("tiny").eval()
    b = m.dummy_batch(2)
    b["frame_mask"] = torch.ones_like(b["frame_mask"])
    ref = m(b)
    del b["frame_mask"]
    out = m(b)
    torch.testing.assert_close(out["logit"], ref["logit"])


def test_padded_frames_do_not_change_the_valid_part():
    """Content beyond frame_mask must not leak into any output (padding is neutral)."""
    m = create_model("tiny").eval()
    b = m.dummy_batch(2)
    b2 = {k: v.clone() for k, v in b.items()}
    pad = ~b["frame_mask"][1]
    b2["video"][1, pad] = torch.rand_like(b2["video"][1, pad])
    mpf = m.config.preprocess.mel_per_frame
    b2["audio"][1, pad.repeat_interleave(mpf)] = torch.randn_like(b2["audio"][1, pad.repeat_interleave(mpf)]) * 9
    out1, out2 = m(b), m(b2)
    for k in out1:
        torch.testing.assert_close(out1[k], out2[k], msg=k)


@pytest.mark.parametrize("change,match", [
    (lambda b: b.pop("audio"), "batch lacks audio"),
    (lambda b: b.update(video=b["video"][:, :, :1]), "must be \\(B, T, 3, S, S\\)"),
    (lambda b: b.update(audio=b["audio"][0]), "batch\\['audio'\\] must be"),
    (lambda b: b.update(frame_mask=b["frame_mask"][:, :3]), "frames but frame_mask has 3"),
    (lambda b: b.update(frame_mask=b["frame_mask"][0]), "frame_mask"),
])
def test_bad_batches_give_one_line_errors(tiny_model, change, match):
    b = tiny_model.dummy_batch(2)
    change(b)
    with pytest.raises(ValueError, match=match) as e:
        tiny_model(b)
    assert "\n" not in str(e.value)


def test_audio_only_without_frame_mask():
    m = create_model("tiny", modality="audio").eval()
    b = m.dummy_batch(2)
    del b["frame_mask"], b["video"]
    assert m(b)["frame_logit_audio"].shape == (2, m.config.num_frames)


def test_safetensors_roundtrip_restores_clusters_and_scores_single_video(tmp_path):
    m = create_model("tiny").train()
    # fit the clusters from generated projections so the buffers carry a real state
    g = torch.Generator().manual_seed(0)
    zv = torch.nn.functional.normalize(torch.randn(60, m.config.contrast_dim, generator=g), dim=1)
    za = torch.nn.functional.normalize(torch.randn(60, m.config.contrast_dim, generator=g), dim=1)
    assert m.update_clusters(z_video=zv, z_audio=za)
    assert int(m.clusters_video.num_clusters) in m.config.cluster_k_choices
    m.eval()
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    m2 = create_model(m.config)
    m2.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    m2.eval()
    torch.testing.assert_close(m2.clusters_audio.centres, m.clusters_audio.centres)
    one = m.dummy_batch(1)
    torch.testing.assert_close(m2(one)["fusion_weights"], m(one)["fusion_weights"])
    torch.testing.assert_close(m2(one)["logit"], m(one)["logit"])


def test_auto_clustering_in_training_mode():
    m = create_model("tiny", cluster_every=3).train()
    assert not m.clusters_video.fitted
    for seed in range(5):
        m(m.dummy_batch(4, seed=seed))   # 20 rows >= 2 * max K = 8 after 2 batches
    assert m.clusters_video.fitted and m.clusters_audio.fitted
    assert int(m.clusters_video.bank_count) == 20
    m.eval()
    before = int(m.clusters_video.bank_count)
    m(m.dummy_batch(4))
    assert int(m.clusters_video.bank_count) == before   # eval mode never moves the state


def test_update_clusters_rejects_wrong_width(tiny_model):
    with pytest.raises(ValueError, match="projections"):
        tiny_model.update_clusters(torch.randn(20, 7), torch.randn(20, 7))


def test_pretrained_encoder_weights(tmp_path):
    src = create_model("tiny")
    save_file({f"video_encoder.{k}": v.contiguous() for k, v in src.video_encoder.state_dict().items()},
              str(tmp_path / "v.safetensors"))
    save_file({k: v.contiguous() for k, v in src.audio_encoder.state_dict().items()}, str(tmp_path / "a.safetensors"))
    m = create_model("tiny", pretrained_video=str(tmp_path / "v.safetensors"),
                     pretrained_audio=str(tmp_path / "a.safetensors"))
    for k, v in src.video_encoder.state_dict().items():
        torch.testing.assert_close(m.video_encoder.state_dict()[k], v)
    for k, v in src.audio_encoder.state_dict().items():
        torch.testing.assert_close(m.audio_encoder.state_dict()[k], v)
    with pytest.raises(FileNotFoundError, match="not found"):
        create_model("tiny", pretrained_video=str(tmp_path / "missing.safetensors"))
    bad = create_model("small")
    save_file({k: v.contiguous() for k, v in bad.video_encoder.state_dict().items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="do not fit"):
        create_model("tiny", pretrained_video=str(tmp_path / "bad.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read"):
        create_model("tiny", pretrained_audio=str(tmp_path / "junk.safetensors"))


def test_package_level_api():
    m = macbdf.create_model("tiny")
    out = m(m.dummy_batch(batch_size=2))
    assert out["logit"].shape == (2,)
