"""Episodes: the input files, what decoding learned about them, and the per-episode tables."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from audiorole_ray.records.serde import col


@dataclass(frozen=True)
class Episode:
    """One episode file. ``episode_id`` is ``<series>/<stem>``; ``uri`` a local path or s3:// URI;
    ``fingerprint`` (size and modification time or ETag, from the input listing) changes when
    the file does, so a replaced file is redone."""

    series: str
    episode_id: str
    uri: str
    fingerprint: str = ""

    @property
    def stem(self) -> str:
        return self.episode_id.split("/", 1)[1]


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about an episode's audio."""

    duration_s: float
    sample_rate: int
    channels: int
    codec: str


@dataclass
class EpisodeRow:
    """A row of ``episodes.parquet``; the figures are None until the episode is diarized."""

    series: str
    episode_id: str
    uri: str
    duration_s: float | None = None
    sample_rate: int | None = col(pa.int32(), None)
    channels: int | None = col(pa.int32(), None)
    codec: str | None = None
    speech_s: float | None = None
    status: str = "pending"  # done, error or pending


@dataclass
class ErrorRecord:
    """A row of ``errors.parquet``: one input or clip that failed, with the stage and reason."""

    uri: str
    episode_id: str
    stage: str
    error: str
