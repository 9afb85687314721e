"""AQ and AP backends: the embedded ones on real voices, the paper's Audiobox loading code on a
tiny randomly initialised model of the same class (its weights are on the model hub only)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from audiorole_ray import registry
from audiorole_ray.errors import MissingModelError


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """Clips of the sample's main character (allison) and of the others, from the tiny corpus."""
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    from audiorole_ray.eval.items import ClipReader, reference_rows, exchange_items

    corpus = write_truth_corpus(tmp_path_factory.mktemp("c"))
    clips = ClipReader(str(corpus))
    own = [clips(r.audio_path, r.audio_key) for r in reference_rows(str(corpus), "sitcom_spk00", 8).itertuples()]
    its = exchange_items(str(corpus))
    return own, [clips(it["b_audio_path"], it["b_audio_key"]) for it in its], [clips(it["a_audio_path"], it["a_audio_key"]) for it in its]


def test_registry_rows():
    assert registry.names("aq")[0] == "distillmos" and "audiobox" in registry.names("aq")
    assert registry.names("speaker_embedding")[0] == "campplus" and "wespeaker" in registry.names("speaker_embedding")
    with pytest.raises(MissingModelError):
        registry.create("aq", "audiobox")
    with pytest.raises(MissingModelError):
        registry.create("speaker_embedding", "wespeaker")


def test_distillmos_drops_with_noise(voices):
    own, _, _ = voices
    mos = registry.create("aq", "distillmos")
    assert mos.metric == "distillmos" and mos.scale == (1.0, 5.0)
    rng = np.random.default_rng(0)
    clean = [mos(c) for c in own[:3]]
    noisy = [mos(c + rng.normal(0, 0.1, c.size).astype(np.float32)) for c in own[:3]]
    assert all(1.0 <= v <= 5.0 for v in clean + noisy)
    assert np.mean(clean) > np.mean(noisy) + 0.5
    with pytest.raises(ValueError):
        mos(np.zeros(100, np.float32))


def test_campplus_ap_separates_the_character(voices):
    from audiorole_ray.eval.speaker import centroid, cosine

    own, answers, others = voices
    emb = registry.create("speaker_embedding", "campplus")
    ref = centroid([emb(c) for c in own])
    same = [cosine(emb(c), ref) for c in answers]
    diff = [cosine(emb(c), ref) for c in others]
    assert np.mean(same) > np.mean(diff) + 0.15
    assert emb(answers[0]).shape == (192,)


# -- the paper's AQ: Audiobox Aesthetics, loading code on a tiny random model ------------------
TINY_WAVLM = {
    "extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2, "activation_fn": "gelu", "dropout": 0.0, "attention_dropout": 0.0,
    "activation_dropout": 0.0, "encoder_layerdrop": 0.0, "dropout_input": 0.0, "dropout_features": 0.0,
    "layer_norm_first": False, "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] * 2",
    "conv_bias": False, "feature_grad_mult": 0.1, "mask_length": 10, "mask_prob": 0.0, "mask_selection": "static",
    "mask_other": 0.0, "no_mask_overlap": False, "mask_min_space": 1, "mask_channel_length": 10,
    "mask_channel_prob": 0.0, "mask_channel_selection": "static", "mask_channel_other": 0.0,
    "no_mask_channel_overlap": False, "mask_channel_min_space": 1, "conv_pos": 16, "conv_pos_groups": 4,
    "relative_position_embedding": True, "num_buckets": 32, "max_distance": 80, "gru_rel_pos": True, "normalize": False,
}


@pytest.fixture
def tiny_audiobox(monkeypatch, tmp_path):
    """The released checkpoint format (state_dict with "model." keys, model_cfg, target_transform)
    of an AesMultiOutput whose WavLM is shrunk; the module's config is patched for load too."""
    import torch

    aes = pytest.importorskip("audiobox_aesthetics.model.aes")
    monkeypatch.setattr(aes, "DEFAULT_AUDIO_CFG", aes.WavLMConfig(TINY_WAVLM))
    torch.manual_seed(0)
    cfg = {"proj_num_layer": 1, "proj_ln": False, "proj_act_fn": "gelu", "proj_dropout": 0.0, "nth_layer": 3,
           "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
    tt = {axis: {"mean": 5.0 + i, "std": 2.0} for i, axis in enumerate(aes.AXES_NAME)}
    model = aes.AesMultiOutput(**cfg, target_transform=tt)
    path = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "model_cfg": cfg,
                "target_transform": tt}, path)
    return model.eval(), path


def test_audiobox_loads_a_released_style_checkpoint_and_scores_pq(tiny_audiobox):
    import torch

    model, path = tiny_audiobox
    had_torchaudio = "torchaudio" in sys.modules
    aq = registry.create("aq", "audiobox", model=str(path))
    audio = np.random.default_rng(0).normal(0, 0.1, 16_000 * 13).astype(np.float32)  # two windows: 10 s + 3 s
    got = aq(audio)
    assert aq.metric == "aq" and np.isfinite(got)
    # by hand: the PQ head on each padded 10 s window, de-normalised, weighted by real length
    wins = [audio[:160_000], np.pad(audio[160_000:], (0, 160_000 - 48_000))]
    masks = torch.zeros(2, 1, 160_000, dtype=torch.bool)
    masks[0, :, :] = True
    masks[1, :, :48_000] = True
    with torch.inference_mode():
        pq = model({"wav": torch.from_numpy(np.stack(wins))[:, None], "mask": masks})["PQ"].numpy() * 2.0 + 8.0
    assert got == pytest.approx(float((pq * np.array([1.0, 0.3])).sum() / 1.3), rel=1e-4)
    assert had_torchaudio or "torchaudio" not in sys.modules  # the infer module (torchaudio) stays out


def test_audiobox_loads_a_save_pretrained_folder(tiny_audiobox, tmp_path):
    model, _ = tiny_audiobox
    folder = tmp_path / "hf"
    model.save_pretrained(str(folder))
    aq = registry.create("aq", "audiobox", model=str(folder))
    assert np.isfinite(aq(np.random.default_rng(1).normal(0, 0.1, 32_000).astype(np.float32)))
    with pytest.raises(MissingModelError, match="no Audiobox"):
        registry.create("aq", "audiobox", model=str(tmp_path / "absent.pt")).load()
