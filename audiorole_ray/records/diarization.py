"""Speaker turns, one episode's diarization and the series-level speakers."""
from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from audiorole_ray.records.serde import col


@dataclass(frozen=True, order=True)
class Turn:
    """One speaker turn, times in seconds from the start of the episode (a supervision segment)."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class EpisodeDiarization:
    """A diarizer's answer for one episode: turns with episode-local speaker labels, one centroid
    embedding per local speaker (for cross-episode linking), speech seconds per speaker (to
    weight the centroids when linking) and [start, end] stretches of possible overlap where no
    second speaker is named (clean target clips stay out of them)."""

    episode_id: str
    turns: list[Turn]
    centroids: dict[str, list[float]] = field(default_factory=dict)
    speech_s: dict[str, float] = field(default_factory=dict)
    possible_overlap: list[list[float]] = field(default_factory=list)


@dataclass
class SeriesSpeaker:
    """A row of ``speakers.parquet``: a speaker linked across a series' episodes."""

    series: str
    speaker_id: str  # <series>_spkNN, spk00 the speaker with the most speech
    speech_s: float
    n_episodes: int = col(pa.int32())
    is_main: bool = col(pa.bool_())
