"""The diarization backend interface, shared by the embedded default and the paper's pyannote."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from audiorole_ray.records import EpisodeDiarization


class DiarizationBackend(ABC):
    """Turns 16 kHz mono float32 audio into speaker turns plus one centroid per local speaker.

    ``load()`` is called once per worker (model weights); ``diarize()`` once per episode.
    Centroids must be comparable across episodes of the same backend (same embedding model),
    since the series-level linking step clusters them.
    """

    name: str = "base"

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def diarize(self, episode_id: str, audio: np.ndarray) -> EpisodeDiarization: ...

    def timings(self) -> dict[str, float]:
        """Seconds spent per part (vad, embed, cluster, ...) since load, for benchmarks."""
        return {}
