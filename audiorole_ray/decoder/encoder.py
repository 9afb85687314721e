"""Token encoder: a Conformer-style stack with relative-position self-attention under a
block-causal mask (GLM-4-Voice-Decoder's ``BlockConformerEncoder`` configuration: linear input
layer, ESPnet relative positions, no convolution module, no macaron feed-forward).

Module and parameter names follow the WeNet/CosyVoice layout (``embed.out``, ``encoders.N.
self_attn.linear_q``, ``pos_bias_u``, ``norm_mha``, ``after_norm``...) so that a state dict of
the ``glm4voice`` preset loads into GLM-4-Voice's own classes unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def pad_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B, T) bool, True on real frames."""
    max_len = int(max_len if max_len is not None else lengths.max())
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def block_causal_mask(length: int, block: int, device=None) -> torch.Tensor:
    """(T, T) bool: a position sees every earlier position and its whole block of ``block``
    tokens, never a later block (what lets the decoder stream in blocks of tokens)."""
    pos = torch.arange(length, device=device)
    return (pos[None, :] <= pos[:, None]) | (pos[None, :] // block == pos[:, None] // block)


def relative_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(1, 2T-1, dim) sinusoidal encodings of relative distances T-1 ... -(T-1) (ESPnet's
    'new' relative encoding, Transformer-XL appendix B)."""
    rel = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(rel * freq)
    pe[:, 1::2] = torch.cos(rel * freq)
    return pe[None].to(dtype)


class RelPositionAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative-position terms (content bias u,
    position bias v), computed through ``scaled_dot_product_attention`` with the position term
    as an additive bias."""

    def __init__(self, heads: int, dim: int, dropout: float):
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.linear_q(x).view(b, t, self.h, self.d_k)
        k = self.linear_k(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, t, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.shape[0], -1, self.h, self.d_k).transpose(1, 2)
        # position term for every (query i, key j): the encoding of distance i - j
        bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))  # (B, H, T, 2T-1)
        idx = (t - 1) - torch.arange(t, device=x.device)[:, None] + torch.arange(t, device=x.device)[None, :]
        bd = torch.gather(bd, -1, idx.expand(b, self.h, t, t)) / math.sqrt(self.d_k)
        bias = bd.masked_fill(~mask[:, None], float("-inf"))
        out = F.scaled_dot_product_attention(
            (q + self.pos_bias_u).transpose(1, 2), k, v, attn_mask=bias,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.linear_out(out.transpose(1, 2).reshape(b, t, self.h * self.d_k))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.w_2(self.dropout(F.silu(self.w_1(x))))


class EncoderLayer(nn.Module):
    """Pre-norm: attention then feed-forward, each residual."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.self_attn = RelPositionAttention(heads, dim, attention_dropout)
        self.feed_forward = FeedForward(dim, hidden, dropout)
        self.norm_ff = nn.LayerNorm(dim, eps=1e-5)
        self.norm_mha = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask, pos_emb):
        x = x + self.dropout(self.self_attn(self.norm_mha(x), mask, pos_emb))
        return x + self.dropout(self.feed_forward(self.norm_ff(x)))


class LinearEmbed(nn.Module):
    """Linear + LayerNorm + dropout, then scaling by sqrt(d) for the relative encodings."""

    def __init__(self, idim: int, dim: int, dropout: float, pos_dropout: float):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, dim), nn.LayerNorm(dim, eps=1e-5), nn.Dropout(dropout))
        self.pos_dropout = nn.Dropout(pos_dropout)
        self.dim = dim

    def forward(self, x):
        x = self.out(x) * math.sqrt(self.dim)
        pos = relative_positions(x.shape[1], self.dim, x.device, x.dtype)
        return self.pos_dropout(x), self.pos_dropout(pos)


class BlockConformerEncoder(nn.Module):
    def __init__(self, input_size: int = 512, output_size: int = 512, attention_heads: int = 8,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, attention_dropout_rate: float = 0.1,
                 block_size: int = 10):
        super().__init__()
        self._output_size = output_size
        self.block_size = block_size
        self.embed = LinearEmbed(input_size, output_size, dropout_rate, positional_dropout_rate)
        self.encoders = nn.ModuleList(
            EncoderLayer(output_size, attention_heads, linear_units, dropout_rate, attention_dropout_rate)
            for _ in range(num_blocks)
        )
        self.after_norm = nn.LayerNorm(output_size, eps=1e-5)

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, input_size), (B,) -> (B, T, output_size), (B, 1, T) mask."""
        valid = pad_mask(lengths, xs.shape[1])
        x, pos = self.embed(xs)
        mask = valid[:, None, :] & block_causal_mask(xs.shape[1], self.block_size, xs.device)[None]
        for layer in self.encoders:
            x = layer(x, mask, pos)
        return self.after_norm(x), valid[:, None, :]
