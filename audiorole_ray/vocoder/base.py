"""What every vocoder backend offers."""
from __future__ import annotations

import numpy as np
import torch

from audiorole_ray.decoder.mel import MEL, MelConfig


class Vocoder:
    """``vocoder(mel)`` -> mono float32 audio at ``sample_rate``; mel is (80, T) or (1, 80, T),
    natural-log magnitude as :func:`audiorole_ray.decoder.mel.mel_spectrogram` makes it."""

    name = "vocoder"
    sample_rate: int = MEL.sample_rate
    mel: MelConfig = MEL
    samples_per_frame: int = MEL.hop_size

    def __init__(self, model: str | None = None, device: str = "cpu", **options):
        self.model, self.device = model, device

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:  # (1, 80, T) -> (samples,)
        raise NotImplementedError

    def __call__(self, mel) -> np.ndarray:
        mel = torch.as_tensor(mel, dtype=torch.float32)
        if mel.dim() == 2:
            mel = mel[None]
        if mel.shape[1] != self.mel.n_mels:
            raise ValueError(f"{self.name}: expected {self.mel.n_mels} mel bins, got {mel.shape[1]}")
        with torch.inference_mode():
            audio = self.synthesize(mel.to(self.device))
        return audio.reshape(-1).float().cpu().numpy()
