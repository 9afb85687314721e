"""Decoder sizes. ``glm4voice`` is GLM-4-Voice-Decoder's flow configuration (its
``config.yaml``: 16384 tokens at 12.5/s, 6 Conformer blocks of 512 with block size 10, U-Net
channels [256, 256], 4 transformer blocks per level, 12 mid blocks, 8 heads of 64; OT-CFM
sigma_min 1e-6, CFG 0.2 in training and 0.7 at inference); ``tiny`` trains in minutes on a CPU."""
from __future__ import annotations

import copy

from audiorole_ray.errors import ConfigError

PRESETS: dict[str, dict] = {
    "glm4voice": {
        "vocab_size": 16384,
        "input_size": 512,
        "output_size": 80,
        "spk_embed_dim": 192,
        "input_frame_rate": 12.5,
        "encoder": {"output_size": 512, "attention_heads": 8, "linear_units": 2048, "num_blocks": 6,
                    "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                    "block_size": 10},
        "estimator": {"channels": [256, 256], "dropout": 0.0, "attention_head_dim": 64, "n_blocks": 4,
                      "num_mid_blocks": 12, "num_heads": 8, "act_fn": "gelu"},
        "cfm": {"sigma_min": 1e-6, "training_cfg_rate": 0.2, "inference_cfg_rate": 0.7, "t_scheduler": "cosine"},
        # upstream recipe (TRAINING-NOTES.md): Adam 1e-3, 2500 warm-up steps, grad clip 5
        "train": {"lr": 1e-3, "warmup_steps": 2500, "grad_clip": 5.0, "batch_size": 4},
    },
    "tiny": {
        "vocab_size": 16384,  # replaced by the tokenizer's vocabulary when known
        "input_size": 64,
        "output_size": 80,
        "spk_embed_dim": 192,
        "input_frame_rate": 12.5,
        "encoder": {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2,
                    "dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
                    "block_size": 10},
        "estimator": {"channels": [64], "dropout": 0.0, "attention_head_dim": 32, "n_blocks": 1,
                      "num_mid_blocks": 1, "num_heads": 2, "act_fn": "gelu"},
        "cfm": {"sigma_min": 1e-6, "training_cfg_rate": 0.2, "inference_cfg_rate": 0.7, "t_scheduler": "cosine"},
        "train": {"lr": 2e-3, "warmup_steps": 5, "grad_clip": 5.0, "batch_size": 2},
    },
}


def preset_config(name: str, **overrides) -> dict:
    """A deep copy of a preset with top-level keys overridden (``vocab_size``, ``input_frame_rate``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown decoder preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = copy.deepcopy(PRESETS[name])
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def build_flow(config: dict):
    """A FlowDecoder from a preset config (the ``train`` section is for the trainer)."""
    from audiorole_ray.decoder.flow import FlowDecoder

    return FlowDecoder(**{k: v for k, v in config.items() if k != "train"})
