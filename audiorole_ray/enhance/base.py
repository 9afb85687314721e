"""The speech-enhancement backend interface: one mono clip in, the same clip denoised out."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Enhancer(ABC):
    """Denoises clips at its own ``sample_rate`` (DeepFilterNet: 48 kHz).

    ``enhance`` takes mono float32 at ``sample_rate`` and returns float32 of exactly the same
    length, time-aligned with the input (the model's algorithmic delay is removed), so that
    sample offsets computed on the input stay valid on the output.
    """

    name: str = "base"
    sample_rate: int = 48_000

    @abstractmethod
    def load(self) -> None:
        """Load weights once per worker."""

    @abstractmethod
    def enhance(self, clip: np.ndarray) -> np.ndarray:
        """Denoise one mono float32 clip at ``sample_rate``; same length out, time-aligned."""

    def timings(self) -> dict[str, float]:
        """Seconds spent so far, by phase (``load``, ``enhance``)."""
        return {}


def as_mono_f32(clip: np.ndarray) -> np.ndarray:
    clip = np.asarray(clip)
    if clip.ndim != 1:
        raise ValueError(f"enhance() takes one mono clip (1-D array), got shape {clip.shape}")
    return np.ascontiguousarray(clip, dtype=np.float32)
