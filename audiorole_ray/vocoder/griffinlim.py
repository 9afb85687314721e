"""Griffin-Lim: the weight-free fallback vocoder (audibly worse: phase is estimated, not learned).

The log-mel is mapped back to a linear magnitude spectrum by non-negative least squares against
the mel filterbank (projected gradient from the pseudo-inverse), then fast Griffin-Lim
(momentum 0.99) estimates a phase.
"""
from __future__ import annotations

import torch

from audiorole_ray.decoder.mel import MEL, mel_filterbank
from audiorole_ray.vocoder.base import Vocoder


class GriffinLimVocoder(Vocoder):
    name = "griffinlim"

    def __init__(self, model: str | None = None, device: str = "cpu", n_iter: int = 32, momentum: float = 0.99,
                 seed: int = 0, **options):
        super().__init__(model, device)
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        self.basis = torch.from_numpy(mel_filterbank(MEL.sample_rate, MEL.n_fft, MEL.n_mels, MEL.fmin, MEL.fmax))

    def _magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        target = torch.exp(mel[0])  # (80, T)
        basis = self.basis.to(mel.device)
        mag = torch.clamp(torch.linalg.pinv(basis) @ target, min=0.0)
        step = 1.0 / torch.linalg.matrix_norm(basis, ord=2) ** 2
        for _ in range(30):  # projected gradient on ||basis @ mag - target||^2, mag >= 0
            mag = torch.clamp(mag - step * (basis.T @ (basis @ mag - target)), min=0.0)
        return mag

    def synthesize(self, mel):
        mag = self._magnitude(mel)
        window = torch.hann_window(MEL.win_size, device=mel.device)
        length = mag.shape[-1] * MEL.hop_size
        gen = torch.Generator(device=mel.device).manual_seed(self.seed)
        angles = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=gen, device=mel.device))
        previous = torch.zeros_like(angles)
        stft = dict(n_fft=MEL.n_fft, hop_length=MEL.hop_size, win_length=MEL.win_size, window=window)
        for _ in range(self.n_iter):
            audio = torch.istft(mag * angles, length=length, **stft)
            rebuilt = torch.stft(audio, return_complex=True, **stft)[:, : mag.shape[-1]]
            if rebuilt.shape[-1] < mag.shape[-1]:
                rebuilt = torch.nn.functional.pad(rebuilt, (0, mag.shape[-1] - rebuilt.shape[-1]))
            accelerated = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            previous = rebuilt
            angles = accelerated / (accelerated.abs() + 1e-8)
        return torch.istft(mag * angles, length=length, **stft)
