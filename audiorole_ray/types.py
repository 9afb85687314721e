"""The data model: plain dataclasses that move between stages (references, never waveforms)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Episode:
    """One episode file. ``episode_id`` is ``<series>/<stem>``; ``uri`` is a local path or s3:// URI."""

    series: str
    episode_id: str
    uri: str
    duration_s: float = 0.0
    sample_rate: int = 0  # native rate of the source
    channels: int = 0

    @property
    def stem(self) -> str:
        return self.episode_id.split("/", 1)[1]


@dataclass(frozen=True, order=True)
class Turn:
    """One speaker turn, times in seconds from the start of the episode."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class EpisodeDiarization:
    """A backend's answer for one episode: turns with episode-local speaker labels, and one
    centroid embedding per local speaker (for cross-episode linking)."""

    episode_id: str
    turns: list[Turn]
    centroids: dict[str, list[float]] = field(default_factory=dict)
    # speech seconds per local speaker, used to weight centroids when linking
    speech_s: dict[str, float] = field(default_factory=dict)

    def to_row(self) -> dict:
        return asdict(self)
