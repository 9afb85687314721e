#!/usr/bin/env python
"""Check the ``glm4voice`` decoder preset against GLM-4-Voice's own flow classes (outside CI).

    python scripts/check_glm4voice_flow.py --code /path/to/GLM-4-Voice [--flow-pt MODEL/decoder/flow.pt]

Builds the official ``MaskedDiffWithXvec`` from GLM-4-Voice-Decoder's flow configuration with the
repository's CosyVoice fork and Matcha-TTS (``third_party/Matcha-TTS``; needs ``omegaconf`` and
``conformer`` besides this project's ``[decoder]`` extra), loads our state dict into it with
``strict=True`` and compares both models' encoder output and sampled mel on the same tokens and
noise. Matcha's logger needs lightning; a plain ``logging`` logger stands in for it.
"""
from __future__ import annotations

import argparse
import logging
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLOW_YAML = """
flow: !new:cosyvoice.flow.flow.MaskedDiffWithXvec
    input_size: 512
    output_size: 80
    spk_embed_dim: 192
    output_type: 'mel'
    vocab_size: 16384
    input_frame_rate: 12.5
    only_mask_loss: True
    encoder: !new:cosyvoice.transformer.encoder.BlockConformerEncoder
        output_size: 512
        attention_heads: 8
        linear_units: 2048
        num_blocks: 6
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'block_rel_selfattn'
        block_size: 10
        input_size: 512
        use_cnn_module: False
        macaron_style: False
    length_regulator: !new:cosyvoice.flow.length_regulator.InterpolateRegulator
        channels: 80
        sampling_ratios: [1, 1, 1, 1]
    decoder: !new:cosyvoice.flow.flow_matching.ConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.ConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [256, 256]
            dropout: 0
            attention_head_dim: 64
            n_blocks: 4
            num_mid_blocks: 12
            num_heads: 8
            act_fn: 'gelu'
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", required=True, help="a local GLM-4-Voice checkout (with third_party/Matcha-TTS)")
    ap.add_argument("--flow-pt", help="a trained flow.pt to load (default: a fresh glm4voice preset)")
    ap.add_argument("--tokens", type=int, default=23)
    args = ap.parse_args()
    import torch
    from hyperpyyaml import load_hyperpyyaml

    from audiorole_ray.decoder.presets import build_flow, preset_config
    from audiorole_ray.vocoder.hift import add_glm4voice_repo

    add_glm4voice_repo(args.code)
    stub = types.ModuleType("matcha.utils.pylogger")
    stub.get_pylogger = lambda name=__name__: logging.getLogger(name)
    sys.modules.setdefault("matcha.utils", types.ModuleType("matcha.utils"))
    sys.modules["matcha.utils"].__path__ = []
    sys.modules["matcha.utils.pylogger"] = stub

    official = load_hyperpyyaml(FLOW_YAML)["flow"].eval()
    ours = build_flow(preset_config("glm4voice")).eval()
    if args.flow_pt:
        ours.load_state_dict(torch.load(args.flow_pt, map_location="cpu", weights_only=True), strict=True)
    official.load_state_dict(ours.state_dict(), strict=True)
    print(f"strict load into GLM-4-Voice's MaskedDiffWithXvec: ok ({sum(p.numel() for p in official.parameters()):,} parameters)")
    n = args.tokens
    tokens = torch.randint(0, 16384, (1, n), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        emb = official.input_embedding(tokens)
        enc = (official.encoder(emb, torch.tensor([n]))[0] - ours.encoder(emb, torch.tensor([n]))[0]).abs().max().item()
        a = official.inference(token=tokens, token_len=torch.tensor([n]), prompt_token=torch.zeros(1, 0, dtype=torch.long),
                               prompt_token_len=torch.tensor([0]), prompt_feat=torch.zeros(1, 0, 80),
                               prompt_feat_len=torch.tensor([0]), embedding=torch.zeros(1, 192))[0]
        b = ours.inference(tokens[0], n_timesteps=10, seed=42)  # the official sampler seeds 42
    print(f"encoder output: max |difference| {enc:.2e}")
    print(f"mel {tuple(a.shape)} vs {tuple(b.shape)}: max |difference| {(a - b).abs().max().item():.2e} "
          f"(mean |mel| {a.abs().mean().item():.2f})")
    return 0 if a.shape == b.shape and (a - b).abs().max().item() < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
