"""The flow decoder: speech tokens -> mel, GLM-4-Voice-Decoder's ``MaskedDiffWithXvec`` shape.

token embedding -> block-causal Conformer encoder -> linear to 80 -> interpolate to the mel
length (+ convs) -> OT-CFM with the U-Net estimator, conditioned on the upsampled encoder output,
a speaker vector (GLM-4-Voice feeds zeros: one voice per decoder) and, in training half the
time, a prefix of the target mel as a prompt (what lets the official streaming decoder feed
earlier mels as prompt). Attribute names match the official module, so ``state_dict()`` of the
``glm4voice`` preset is a ``flow.pt``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audiorole_ray.decoder.cfm import ConditionalCFM
from audiorole_ray.decoder.encoder import BlockConformerEncoder, pad_mask
from audiorole_ray.decoder.estimator import ConditionalDecoder
from audiorole_ray.decoder.mel import MEL


class InterpolateRegulator(nn.Module):
    """Nearest-neighbour upsampling of encoder frames to the mel length, then convs."""

    def __init__(self, channels: int, sampling_ratios=(1, 1, 1, 1), out_channels: int | None = None, groups: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in sampling_ratios:
            layers += [nn.Conv1d(channels, channels, 3, 1, 1), nn.GroupNorm(groups, channels), nn.Mish()]
        layers.append(nn.Conv1d(channels, out_channels or channels, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, ylens: torch.Tensor):
        """(B, T, C) -> (B, T_mel, C) zeroed past each ``ylens``."""
        mask = pad_mask(ylens).to(x.dtype)[..., None]
        x = F.interpolate(x.transpose(1, 2), size=int(ylens.max()), mode="nearest")
        return self.model(x).transpose(1, 2) * mask, ylens


class FlowDecoder(nn.Module):
    def __init__(self, vocab_size: int, input_size: int = 512, output_size: int = 80, spk_embed_dim: int = 192,
                 input_frame_rate: float = 12.5, encoder: dict | None = None, estimator: dict | None = None,
                 cfm: dict | None = None, regulator_ratios=(1, 1, 1, 1), prompt_prob: float = 0.5):
        super().__init__()
        self.vocab_size, self.input_size, self.output_size = vocab_size, input_size, output_size
        self.input_frame_rate, self.prompt_prob = float(input_frame_rate), prompt_prob
        self.input_embedding = nn.Embedding(vocab_size, input_size)
        self.spk_embed_affine_layer = nn.Linear(spk_embed_dim, output_size)
        self.encoder = BlockConformerEncoder(input_size=input_size, **(encoder or {}))
        self.encoder_proj = nn.Linear(self.encoder.output_size(), output_size)
        self.length_regulator = InterpolateRegulator(output_size, regulator_ratios)
        est = ConditionalDecoder(in_channels=output_size * 4, out_channels=output_size, **(estimator or {}))
        self.decoder = ConditionalCFM(est, **(cfm or {}))
        self.spk_embed_dim = spk_embed_dim

    def mel_frames(self, n_tokens: int | torch.Tensor):
        """GLM-4-Voice's mel length for a token count: int(n / rate * 22050 / 256)."""
        if torch.is_tensor(n_tokens):
            return (n_tokens / self.input_frame_rate * MEL.sample_rate / MEL.hop_size).int()
        return MEL.frames_for_tokens(int(n_tokens), self.input_frame_rate)

    def _speaker(self, batch: int, device, embedding=None):
        if embedding is None:
            embedding = torch.zeros(batch, self.spk_embed_dim, device=device)
        return self.spk_embed_affine_layer(F.normalize(embedding, dim=1))

    def _encode(self, tokens, token_len, feat_len):
        mask = pad_mask(token_len, tokens.shape[1]).float()[..., None]
        h = self.input_embedding(tokens.clamp(min=0, max=self.vocab_size - 1)) * mask
        h, _ = self.encoder(h, token_len)
        h, _ = self.length_regulator(self.encoder_proj(h), feat_len)
        return h.transpose(1, 2)  # (B, 80, T_mel)

    def forward(self, tokens, token_len, mel, mel_len, embedding=None):
        """The training loss of a padded batch: tokens (B, N), mel (B, 80, T). Random draws (prompt,
        time, noise, condition dropout) come from torch's global generator, which the trainer seeds
        per rank and keeps in each checkpoint, so a run and a resumed run repeat exactly."""
        mu = self._encode(tokens, token_len, mel_len)
        mel = mel[:, :, : mu.shape[-1]]
        cond = torch.zeros_like(mel)
        for i, n in enumerate(mel_len.tolist()):
            if self.training and float(torch.rand(())) < self.prompt_prob:
                k = int(torch.randint(0, int(0.8 * n) + 1, ()))
                cond[i, :, :k] = mel[i, :, :k]
        mask = pad_mask(mel_len, mel.shape[-1]).to(mel.dtype)[:, None]
        loss, _ = self.decoder.compute_loss(mel, mask, mu, self._speaker(mel.shape[0], mel.device, embedding), cond)
        return loss

    @torch.no_grad()
    def inference(self, tokens: torch.Tensor, n_timesteps: int = 10, cfg_rate: float | None = None,
                  temperature: float = 1.0, seed: int | None = 0, prompt_mel: torch.Tensor | None = None,
                  embedding=None) -> torch.Tensor:
        """Mel (80, T) for one token sequence (N,), T = mel_frames(N) (+ nothing for the prompt:
        a ``prompt_mel`` (80, P) is taken to be the mel of tokens already decoded and is cut off)."""
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.input_embedding.weight.device).reshape(1, -1)
        prompt_frames = 0 if prompt_mel is None else prompt_mel.shape[-1]
        n = torch.tensor([tokens.shape[1]], device=tokens.device)
        feat_len = self.mel_frames(n)
        feat_len = torch.clamp(feat_len, min=max(prompt_frames + 1, 1))
        mu = self._encode(tokens, n, feat_len)
        cond = torch.zeros_like(mu)
        if prompt_mel is not None:
            cond[0, :, :prompt_frames] = prompt_mel
        mask = torch.ones(1, 1, mu.shape[-1], device=mu.device, dtype=mu.dtype)
        mel = self.decoder(mu, mask, n_timesteps=n_timesteps, temperature=temperature,
                           spks=self._speaker(1, mu.device, embedding), cond=cond, cfg_rate=cfg_rate, seed=seed)
        return mel[0, :, prompt_frames:]
