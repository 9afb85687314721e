"""The vector-field estimator: Matcha-TTS's 1-D U-Net as CosyVoice's ``ConditionalDecoder`` uses
it (ResNet blocks with a time embedding, transformer blocks at every level, one down/up step).

The transformer blocks, attention and time embedding are diffusers' own classes, the ones the
official decoder is built on, so parameter names and arithmetic match it; the small conv
blocks below carry the names Matcha gives them (``block1.block.0``, ``mlp.1``, ``res_conv``).
"""
from __future__ import annotations

import torch
from torch import nn

from audiorole_ray.errors import require


def _diffusers():
    require("diffusers", "'audiorole-ray[decoder]'", "the flow decoder's transformer blocks")
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.embeddings import TimestepEmbedding, get_timestep_embedding

    return BasicTransformerBlock, TimestepEmbedding, get_timestep_embedding


class Block1D(nn.Module):
    def __init__(self, dim: int, dim_out: int, groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(dim, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), nn.Mish())

    def forward(self, x, mask):
        return self.block(x * mask) * mask


class ResnetBlock1D(nn.Module):
    def __init__(self, dim: int, dim_out: int, time_emb_dim: int, groups: int = 8):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block1D(dim, dim_out, groups)
        self.block2 = Block1D(dim_out, dim_out, groups)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x, mask, t):
        h = self.block1(x, mask) + self.mlp(t)[..., None]
        return self.block2(h, mask) + self.res_conv(x * mask)


class Downsample1D(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Upsample1D(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x):
        return self.conv(x)


def _attention_bias(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, T) 0/1 -> (B, T, T) additive bias that hides padded keys (every row keeps its
    real keys, so no row is all -inf)."""
    keys = mask.bool().expand(-1, mask.shape[-1], -1)
    return torch.zeros(keys.shape, dtype=mask.dtype, device=mask.device).masked_fill(~keys, float("-inf"))


class ConditionalDecoder(nn.Module):
    """(x, mask, mu, t, spks, cond) -> velocity, all (B, 80, T) but t (B,) and spks (B, 80)."""

    def __init__(self, in_channels: int = 320, out_channels: int = 80, channels=(256, 256), dropout: float = 0.0,
                 attention_head_dim: int = 64, n_blocks: int = 4, num_mid_blocks: int = 12, num_heads: int = 8,
                 act_fn: str = "gelu"):
        super().__init__()
        Transformer, TimestepEmbedding, self._sinusoid = _diffusers()
        channels = tuple(channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        time_dim = channels[0] * 4
        self.time_mlp = TimestepEmbedding(in_channels=in_channels, time_embed_dim=time_dim, act_fn="silu")

        def transformers(dim):
            return nn.ModuleList(
                Transformer(dim=dim, num_attention_heads=num_heads, attention_head_dim=attention_head_dim,
                            dropout=dropout, activation_fn=act_fn)
                for _ in range(n_blocks)
            )

        self.down_blocks, self.mid_blocks, self.up_blocks = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        out_ch = in_channels
        for i, ch in enumerate(channels):
            in_ch, out_ch = out_ch, ch
            last = i == len(channels) - 1
            down = nn.Conv1d(out_ch, out_ch, 3, padding=1) if last else Downsample1D(out_ch)
            self.down_blocks.append(nn.ModuleList([ResnetBlock1D(in_ch, out_ch, time_dim), transformers(out_ch), down]))
        for _ in range(num_mid_blocks):
            self.mid_blocks.append(nn.ModuleList([ResnetBlock1D(channels[-1], out_ch, time_dim), transformers(out_ch)]))
        ups = channels[::-1] + (channels[0],)
        for i in range(len(ups) - 1):
            last = i == len(ups) - 2
            up = nn.Conv1d(ups[i + 1], ups[i + 1], 3, padding=1) if last else Upsample1D(ups[i + 1])
            self.up_blocks.append(nn.ModuleList([ResnetBlock1D(ups[i] * 2, ups[i + 1], time_dim), transformers(ups[i + 1]), up]))
        self.final_block = Block1D(ups[-1], ups[-1])
        self.final_proj = nn.Conv1d(ups[-1], out_channels, 1)
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _run(blocks, x, mask, t):
        x = x.transpose(1, 2)
        bias = _attention_bias(mask)
        for block in blocks:
            x = block(hidden_states=x, attention_mask=bias, timestep=t)
        return x.transpose(1, 2)

    def forward(self, x, mask, mu, t, spks=None, cond=None):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1)
        # Matcha's sinusoid: [sin, cos], frequencies 10000^(-k/(half-1)), times scaled by 1000
        t = self.time_mlp(self._sinusoid(t, self.in_channels, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1000))
        if t.shape[0] == 1 and x.shape[0] > 1:
            t = t.expand(x.shape[0], -1)
        parts = [x, mu]
        if spks is not None:
            parts.append(spks[..., None].expand(-1, -1, x.shape[-1]))
        if cond is not None:
            parts.append(cond)
        x = torch.cat(parts, dim=1)

        skips, masks = [], [mask]
        for resnet, blocks, down in self.down_blocks:
            m = masks[-1]
            x = self._run(blocks, resnet(x, m, t), m, t)
            skips.append(x)
            x = down(x * m)
            masks.append(m[:, :, ::2])
        masks.pop()
        m = masks[-1]
        for resnet, blocks in self.mid_blocks:
            x = self._run(blocks, resnet(x, m, t), m, t)
        for resnet, blocks, up in self.up_blocks:
            m, skip = masks.pop(), skips.pop()
            x = torch.cat([x[:, :, : skip.shape[-1]], skip], dim=1)
            x = up(self._run(blocks, resnet(x, m, t), m, t) * m)
        x = self.final_block(x, m)
        return self.final_proj(x * m) * mask
