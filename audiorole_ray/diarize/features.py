"""Kaldi-compatible log mel filterbank in torch (what CAM++ was trained on), vectorised over frames.

kaldi-native-fbank computes the same numbers one frame at a time from Python, which is too slow for
hour-long episodes; tests check this implementation against it."""
from __future__ import annotations

import math
from functools import lru_cache

import torch

FRAME_LEN = 400  # 25 ms at 16 kHz
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
PREEMPH = 0.97


@lru_cache(maxsize=4)
def _mel_banks(num_bins: int, sample_rate: int, low_hz: float = 20.0) -> torch.Tensor:
    """Triangular filters spaced evenly on the mel scale, over the N_FFT/2 bins Kaldi uses."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(low_hz), mel(sample_rate / 2)
    delta = (hi - lo) / (num_bins + 1)
    fft_mel = 1127.0 * torch.log1p(torch.arange(N_FFT // 2, dtype=torch.float64) * (sample_rate / N_FFT) / 700.0)
    left = lo + delta * torch.arange(num_bins, dtype=torch.float64)[:, None]
    center, right = left + delta, left + 2 * delta
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return banks.to(torch.float32)  # (num_bins, N_FFT // 2)


@lru_cache(maxsize=1)
def _povey_window() -> torch.Tensor:
    n = torch.arange(FRAME_LEN, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(2 * math.pi * n / (FRAME_LEN - 1))).pow(0.85).to(torch.float32)


def num_frames(num_samples: int) -> int:
    return 0 if num_samples < FRAME_LEN else 1 + (num_samples - FRAME_LEN) // FRAME_SHIFT


def fbank(wave: torch.Tensor, num_bins: int = 80, sample_rate: int = 16_000, block_frames: int = 6000) -> torch.Tensor:
    """(num_samples,) float waveform -> (num_frames, num_bins) log mel energies (snip_edges, no dither).

    Every step is per frame, so frames are done ``block_frames`` (60 s) at a time: the whole
    episode at once would hold about 30x its audio in intermediates (1.3 GB for 45 minutes)."""
    frames = wave.unfold(0, FRAME_LEN, FRAME_SHIFT)  # (T, 400), a view
    out = torch.empty(len(frames), num_bins)
    for k in range(0, len(frames), block_frames):
        out[k : k + block_frames] = _log_mel(frames[k : k + block_frames].float(), num_bins, sample_rate)
    return out


def _log_mel(frames: torch.Tensor, num_bins: int, sample_rate: int) -> torch.Tensor:
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - PREEMPH * prev) * _povey_window()
    power = torch.fft.rfft(frames, n=N_FFT).abs().pow(2)[:, : N_FFT // 2]
    energies = power @ _mel_banks(num_bins, sample_rate).T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()
