"""--plan: parameter count from the config checked against a real model, and glm-4-voice-9b's
per-GPU figures against TRAINING-NOTES.md's arithmetic."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from audiorole_ray.errors import ConfigError
from audiorole_ray.lm import plan

GLM_VOICE = Path(__file__).parent / "data" / "glm-4-voice-9b"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def glm_config() -> dict:
    return plan.load_config(str(GLM_VOICE))


@pytest.mark.parametrize("attention_bias, tied", [(True, False), (False, True)])
def test_parameter_count_matches_a_real_model(attention_bias, tied):
    from transformers import GlmConfig, GlmForCausalLM

    cfg = dict(vocab_size=320, pad_token_id=0, bos_token_id=1, eos_token_id=2, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, attention_bias=attention_bias, tie_word_embeddings=tied)
    model = GlmForCausalLM(GlmConfig(**cfg))
    assert plan.Shape.from_config(cfg).params()["total"] == sum(p.numel() for p in model.parameters())


def test_chatglm_config_is_read_with_its_own_names(glm_config):
    shape = plan.Shape.from_config(glm_config)
    assert (shape.vocab, shape.hidden, shape.layers, shape.kv_heads, shape.head_dim) == (168960, 4096, 40, 2, 128)
    total = shape.params()["total"]
    assert 9.3e9 < total < 9.7e9  # TRAINING-NOTES: ~9.5B


def test_gemini_on_8x40gb_matches_the_notes(glm_config):
    # TRAINING-NOTES.md: 16 B/param of model states ~153 GB; Gemini static on 8 GPUs ~19 GB/GPU;
    # fp32 logits of a 168960 vocabulary ~0.7 MB per token, x3 with copies and grads
    p = plan.plan(glm_config, plugin="gemini", gpus=8, micro_batch=1, seq_len=2048)
    assert p.model_states_gb == pytest.approx(19.0, rel=0.15)
    assert p.logits_mb_per_token == pytest.approx(0.7, rel=0.15)
    assert p.logits_gb == pytest.approx(3 * 0.7e6 * 2048 / 1e9, rel=0.15)
    assert p.activations_gb < 5  # gradient checkpointing keeps one layer input per layer
    assert p.fits


def test_zero2_and_ddp_do_not_fit(glm_config):
    zero2 = plan.plan(glm_config, plugin="zero2", gpus=8)
    ddp = plan.plan(glm_config, plugin="ddp", gpus=8)
    assert zero2.model_states_gb == pytest.approx(36.0, rel=0.15)  # notes: ~36 GB before activations
    assert ddp.model_states_gb == pytest.approx(153.0, rel=0.15)
    assert not zero2.fits and not ddp.fits
    # LoRA keeps only the frozen bf16 weights: fits with DDP
    assert plan.plan(glm_config, plugin="ddp", gpus=8, lora=True).fits


def test_activations_grow_without_checkpointing(glm_config):
    with_ckpt = plan.plan(glm_config, seq_len=4096)
    without = plan.plan(glm_config, seq_len=4096, checkpointing=False)
    assert without.activations_gb > 5 * with_ckpt.activations_gb


def test_bad_config_and_plugin():
    with pytest.raises(ConfigError, match="lacks"):
        plan.plan({"hidden_size": 8})
    with pytest.raises(ConfigError, match="unknown plugin"):
        plan.state_bytes_per_param("fsdp", 8)


def test_cli_plan_prints_without_weights(capsys):
    sys.path.insert(0, str(REPO / "jobs"))
    import train_lm

    assert train_lm.main(["--plan", "--model", str(GLM_VOICE), "--plugin", "gemini", "--workers", "8",
                          "--gpus-per-worker", "1"]) == 0
    out = capsys.readouterr().out
    assert "9.54B parameters" in out and "gemini on 8 GPU(s)" in out and "-> fits a 40 GB GPU" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in plan.PLUGINS}
    assert lines["gemini"].endswith("yes") and lines["zero2"].endswith("no") and lines["ddp"].endswith("no")
    assert not list(GLM_VOICE.glob("*.safetensors"))
    json.loads((GLM_VOICE / "config.json").read_text())
