"""The ASR backend interface: 16 kHz mono clips in, one transcript per clip out."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class AsrBackend(ABC):
    name: str = "base"

    @abstractmethod
    def load(self) -> None:
        """Load weights once per worker."""

    @abstractmethod
    def transcribe(self, clips: list[np.ndarray], language: str = "en") -> list[str]:
        """One transcript per clip (16 kHz mono float32), in order."""

    def timings(self) -> dict[str, float]:
        return {}
