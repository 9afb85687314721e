"""The ``glm4voice`` preset's state dict is a ``flow.pt`` for GLM-4-Voice's ``AudioDecoder``.

The official classes (GLM-4-Voice's CosyVoice fork: ``MaskedDiffWithXvec``,
``BlockConformerEncoder``, ``InterpolateRegulator``, ``ConditionalCFM``, ``ConditionalDecoder``
over Matcha-TTS blocks and diffusers' ``BasicTransformerBlock``) cannot be installed here, so this
stand-in lists the parameter names and shapes those classes create for the decoder's
``config.yaml``, written out from their constructors, and the preset must match it exactly
(``load_state_dict(strict=True)`` fails on any missing, extra or reshaped key).
"""
import pytest
import torch

from audiorole_ray.decoder.presets import build_flow, preset_config

pytest.importorskip("diffusers")
pytest.importorskip("flow_matching")


def official_flow_keys(vocab=16384, d_in=512, d=512, heads=8, ff=2048, blocks=6, mel=80, spk=192,
                       channels=(256, 256), n_blocks=4, mid=12, n_heads=8, head_dim=64):
    """name -> shape of every parameter and persistent buffer of the official flow module."""
    k = {"input_embedding.weight": (vocab, d_in), "spk_embed_affine_layer.weight": (mel, spk),
         "spk_embed_affine_layer.bias": (mel,), "encoder_proj.weight": (mel, d), "encoder_proj.bias": (mel,)}
    # BlockConformerEncoder: LinearNoSubsampling (Linear, LayerNorm, Dropout) + EspnetRelPositionalEncoding
    # (its table is a plain attribute, not a buffer), ConformerEncoderLayer without macaron or conv module
    k.update({"encoder.embed.out.0.weight": (d, d_in), "encoder.embed.out.0.bias": (d,),
              "encoder.embed.out.1.weight": (d,), "encoder.embed.out.1.bias": (d,),
              "encoder.after_norm.weight": (d,), "encoder.after_norm.bias": (d,)})
    for i in range(blocks):
        p = f"encoder.encoders.{i}."
        for lin in ("linear_q", "linear_k", "linear_v", "linear_out"):
            k[p + f"self_attn.{lin}.weight"], k[p + f"self_attn.{lin}.bias"] = (d, d), (d,)
        k[p + "self_attn.linear_pos.weight"] = (d, d)
        k[p + "self_attn.pos_bias_u"] = k[p + "self_attn.pos_bias_v"] = (heads, d // heads)
        k.update({p + "feed_forward.w_1.weight": (ff, d), p + "feed_forward.w_1.bias": (ff,),
                  p + "feed_forward.w_2.weight": (d, ff), p + "feed_forward.w_2.bias": (d,)})
        for norm in ("norm_ff", "norm_mha"):
            k[p + f"{norm}.weight"] = k[p + f"{norm}.bias"] = (d,)
    # InterpolateRegulator(channels=80, sampling_ratios=[1, 1, 1, 1]): (Conv1d k3, GroupNorm, Mish) x4, Conv1d k1
    for j in range(4):
        k[f"length_regulator.model.{3 * j}.weight"] = (mel, mel, 3)
        k[f"length_regulator.model.{3 * j}.bias"] = (mel,)
        k[f"length_regulator.model.{3 * j + 1}.weight"] = k[f"length_regulator.model.{3 * j + 1}.bias"] = (mel,)
    k["length_regulator.model.12.weight"], k["length_regulator.model.12.bias"] = (mel, mel, 1), (mel,)
    # ConditionalCFM.estimator = ConditionalDecoder(in_channels=320, out_channels=80, ...)
    e, cin, tdim = "decoder.estimator.", 4 * mel, channels[0] * 4
    k.update({e + "time_mlp.linear_1.weight": (tdim, cin), e + "time_mlp.linear_1.bias": (tdim,),
              e + "time_mlp.linear_2.weight": (tdim, tdim), e + "time_mlp.linear_2.bias": (tdim,)})

    def resnet(p, i, o):
        k.update({p + "mlp.1.weight": (o, tdim), p + "mlp.1.bias": (o,),
                  p + "block1.block.0.weight": (o, i, 3), p + "block1.block.0.bias": (o,),
                  p + "block1.block.1.weight": (o,), p + "block1.block.1.bias": (o,),
                  p + "block2.block.0.weight": (o, o, 3), p + "block2.block.0.bias": (o,),
                  p + "block2.block.1.weight": (o,), p + "block2.block.1.bias": (o,),
                  p + "res_conv.weight": (o, i, 1), p + "res_conv.bias": (o,)})

    def transformer(p, dim):
        inner = n_heads * head_dim
        k.update({p + "norm1.weight": (dim,), p + "norm1.bias": (dim,), p + "norm3.weight": (dim,), p + "norm3.bias": (dim,),
                  p + "attn1.to_q.weight": (inner, dim), p + "attn1.to_k.weight": (inner, dim), p + "attn1.to_v.weight": (inner, dim),
                  p + "attn1.to_out.0.weight": (dim, inner), p + "attn1.to_out.0.bias": (dim,),
                  p + "ff.net.0.proj.weight": (4 * dim, dim), p + "ff.net.0.proj.bias": (4 * dim,),
                  p + "ff.net.2.weight": (dim, 4 * dim), p + "ff.net.2.bias": (dim,)})

    out = cin
    for i, ch in enumerate(channels):
        resnet(e + f"down_blocks.{i}.0.", out, ch)
        out = ch
        for j in range(n_blocks):
            transformer(e + f"down_blocks.{i}.1.{j}.", ch)
        last = i == len(channels) - 1
        down = e + f"down_blocks.{i}.2." + ("" if last else "conv.")
        k[down + "weight"], k[down + "bias"] = (ch, ch, 3), (ch,)
    for i in range(mid):
        resnet(e + f"mid_blocks.{i}.0.", channels[-1], channels[-1])
        for j in range(n_blocks):
            transformer(e + f"mid_blocks.{i}.1.{j}.", channels[-1])
    ups = tuple(channels[::-1]) + (channels[0],)
    for i in range(len(ups) - 1):
        resnet(e + f"up_blocks.{i}.0.", ups[i] * 2, ups[i + 1])
        for j in range(n_blocks):
            transformer(e + f"up_blocks.{i}.1.{j}.", ups[i + 1])
        last = i == len(ups) - 2
        up = e + f"up_blocks.{i}.2." + ("" if last else "conv.")
        k[up + "weight"], k[up + "bias"] = (ups[i + 1], ups[i + 1], 3 if last else 4), (ups[i + 1],)
    k.update({e + "final_block.block.0.weight": (ups[-1], ups[-1], 3), e + "final_block.block.0.bias": (ups[-1],),
              e + "final_block.block.1.weight": (ups[-1],), e + "final_block.block.1.bias": (ups[-1],),
              e + "final_proj.weight": (mel, ups[-1], 1), e + "final_proj.bias": (mel,)})
    return k


@pytest.fixture(scope="module")
def glm4voice():
    return build_flow(preset_config("glm4voice"))


def test_glm4voice_state_dict_matches_the_official_flow(glm4voice):
    got = {name: tuple(t.shape) for name, t in glm4voice.state_dict().items()}
    want = official_flow_keys()
    assert sorted(set(want) - set(got)) == []  # missing
    assert sorted(set(got) - set(want)) == []  # extra
    assert {n: s for n, s in got.items() if want[n] != s} == {}


def test_glm4voice_has_about_111m_parameters(glm4voice):
    n = sum(p.numel() for p in glm4voice.parameters())
    assert 105e6 < n < 118e6, n


def test_tiny_preset_follows_the_same_layout():
    cfg = preset_config("tiny", vocab_size=64)
    got = {name: tuple(t.shape) for name, t in build_flow(cfg).state_dict().items()}
    enc, est = cfg["encoder"], cfg["estimator"]
    want = official_flow_keys(vocab=64, d_in=cfg["input_size"], d=enc["output_size"], heads=enc["attention_heads"],
                              ff=enc["linear_units"], blocks=enc["num_blocks"], channels=tuple(est["channels"]),
                              n_blocks=est["n_blocks"], mid=est["num_mid_blocks"], n_heads=est["num_heads"],
                              head_dim=est["attention_head_dim"])
    assert got == want


def test_saved_flow_pt_loads_strictly(glm4voice, tmp_path):
    from audiorole_ray.decoder.export import save_flow_pt

    path = save_flow_pt(glm4voice, tmp_path / "flow.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    fresh = build_flow(preset_config("glm4voice"))
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.input_embedding.weight, glm4voice.input_embedding.weight)
