"""The flow decoder: OT-CFM fits one utterance, sampling reproduces it, shapes and lengths."""
import math

import numpy as np
import pytest
import torch

from audiorole_ray.decoder.cfm import cosine_warp
from audiorole_ray.decoder.encoder import block_causal_mask
from audiorole_ray.decoder.mel import MEL
from audiorole_ray.decoder.presets import build_flow, preset_config

pytest.importorskip("diffusers")
pytest.importorskip("flow_matching")


def toy_utterance(n_tokens=20, vocab=32, seed=0):
    """Tokens and a mel that depends on them (each token owns a spectral shape), like speech."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n_tokens,), generator=g)
    shapes = torch.randn(vocab, MEL.n_mels, generator=g) * 1.5 - 6.0
    frames = MEL.frames_for_tokens(n_tokens, 12.5)
    idx = torch.clamp((torch.arange(frames) * n_tokens) // frames, max=n_tokens - 1)
    return tokens, shapes[tokens[idx]].T.contiguous()  # (80, frames)


def test_block_causal_mask_sees_own_block_and_the_past():
    m = block_causal_mask(7, 3)
    assert m[0].tolist() == [True, True, True, False, False, False, False]
    assert m[4].tolist() == [True] * 6 + [False]
    assert m[6].all()


def test_cosine_warp_ends():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(cosine_warp(t), torch.tensor([0.0, 1 - math.cos(math.pi / 4), 1.0]))


def test_flow_matching_fits_one_utterance_and_samples_it_back():
    torch.manual_seed(0)
    tokens, mel = toy_utterance()
    model = build_flow(preset_config("tiny", vocab_size=32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tok, tok_len = tokens[None], torch.tensor([tokens.numel()])
    mel_b, mel_len = mel[None], torch.tensor([mel.shape[1]])
    losses = []
    model.train()
    for step in range(300):
        loss = model(tok.expand(4, -1), tok_len.expand(4), mel_b.expand(4, -1, -1), mel_len.expand(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])
    assert first > 0.5, first
    assert last < 0.05 * first, (first, last)  # near zero: one target per condition
    model.eval()
    out = model.inference(tokens, n_timesteps=10)
    assert out.shape == mel.shape  # the length GLM-4-Voice gives: int(n / 12.5 * 22050 / 256)
    # the sample is the utterance (error well under the spread of the mel itself)
    assert torch.mean((out - mel) ** 2) < 0.1 * torch.var(mel), (torch.mean((out - mel) ** 2), torch.var(mel))
