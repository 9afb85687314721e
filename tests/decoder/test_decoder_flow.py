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
    """One utterance, so one target per condition: the OT-CFM loss can fall towards zero. In the
    CPU budget of a unit test (200 steps) it falls below a tenth of its start, and the sampled
    mel has the utterance's spectrum; the time detail needs longer training (README)."""
    torch.manual_seed(0)
    tokens, mel = toy_utterance(8)
    model = build_flow(preset_config("tiny", vocab_size=32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    b = 4
    batch = (tokens[None].expand(b, -1), torch.tensor([tokens.numel()] * b),
             mel[None].expand(b, -1, -1), torch.tensor([mel.shape[1]] * b))
    losses = []
    model.train()
    for _ in range(200):
        loss = model(*batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])
    assert last < 0.1 * first, (first, last)
    model.eval()
    out = model.inference(tokens, n_timesteps=10)
    assert out.shape == mel.shape  # GLM-4-Voice's length rule: int(n / 12.5 * 22050 / 256)
    spread = torch.var(mel).item()
    profile_err = torch.mean((out.mean(dim=1) - mel.mean(dim=1)) ** 2).item()
    assert profile_err < 0.1 * spread, (profile_err, spread)  # the utterance's spectral envelope
    assert torch.mean((out - mel) ** 2).item() < 1.5 * spread  # and no blow-up around it


def test_training_resumed_from_saved_random_states_repeats_exactly():
    """What the trainer's checkpoint keeps (weights, optimizer, random-number states) is all a
    decoder step depends on: the prompt, times, noise, condition dropout and (here, as in the
    glm4voice preset) encoder dropout continue as in an uninterrupted run, to the bit."""
    import copy

    from audiorole_ray.train.checkpoint import rng_state, seed_rng, set_rng_state

    tokens, mel = toy_utterance(8)
    cfg = preset_config("tiny", vocab_size=32)
    cfg["encoder"].update(dropout_rate=0.1, positional_dropout_rate=0.1, attention_dropout_rate=0.1)
    batch = (torch.stack([tokens, tokens.flip(0)]), torch.tensor([8, 6]), mel[None].expand(2, -1, -1).clone(),
             torch.tensor([mel.shape[1], mel.shape[1] - 10]))

    def fresh():
        torch.manual_seed(0)
        model = build_flow(cfg).train()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def steps(model, opt, n):
        out = []
        for _ in range(n):
            loss = model(*batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return out

    whole, whole_opt = fresh()
    seed_rng(0, 0, 0)
    losses = steps(whole, whole_opt, 4)
    first, first_opt = fresh()
    seed_rng(0, 0, 0)
    assert steps(first, first_opt, 2) == losses[:2]
    saved = copy.deepcopy((first.state_dict(), first_opt.state_dict(), rng_state()))
    resumed, opt = fresh()  # a new worker: builds the model, then loads the checkpoint
    resumed.load_state_dict(saved[0])
    opt.load_state_dict(copy.deepcopy(saved[1]))  # Adam keeps the loaded tensors: the probe must not share them
    seed_rng(0, 0, 2)
    probe = copy.deepcopy(resumed)
    probe_opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    probe_opt.load_state_dict(copy.deepcopy(saved[1]))
    assert steps(probe, probe_opt, 1)[0] != losses[2]  # the draws matter: other states, another loss
    set_rng_state(saved[2])
    assert steps(resumed, opt, 2) == losses[2:]
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), whole.state_dict().values()))
