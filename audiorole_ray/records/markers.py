"""Completion markers: one JSON file per (stage, item) under ``<output>/_state/<kind>/<id>.json``.

The envelope is the same for every stage; ``payload`` is the stage's own record. A marker is
current when its ``hash`` (the stage's settings and the item's inputs) matches the run's and
every file in ``outputs`` is still there with its size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from audiorole_ray.records.diarization import EpisodeDiarization
from audiorole_ray.records.dialogue import PlannedUtterance
from audiorole_ray.records.episode import AudioInfo
from audiorole_ray.records.serde import from_dict

P = TypeVar("P")


@dataclass
class Marker:
    kind: str  # the stage's marker kind: diarized, transcribed, enhanced, ...
    id: str  # the item: an episode id <series>/<stem>, a shard, ...
    hash: str
    payload: dict
    audio_s: float = 0.0
    wall_s: float = 0.0
    outputs: dict[str, int] = field(default_factory=dict)  # path relative to the output root -> bytes

    def load(self, cls: type[P]) -> P:
        return from_dict(cls, self.payload)


@dataclass
class Diarized:
    info: AudioInfo
    decoded_s: float
    diarization: EpisodeDiarization


@dataclass
class Transcribed:
    utterances: list[PlannedUtterance]
    too_short: int = 0  # utterances the duration filter dropped
    truncated: int = 0  # utterances it truncated
    overlap_trimmed: int = 0  # utterances cut to their part without the other role's voice
    possible_overlap_cut: int = 0  # of the overlap trims and drops, those possible overlap changed


@dataclass
class TargetStats:
    """One target's share of an episode's dialogues (multi-turn rows), for the report."""

    scenes: int = 0
    dialogues: int = 0
    train_turns: int = 0  # A/B exchanges
    test_turns: int = 0
    single_pairs: int = 0


@dataclass
class Enhanced:
    shard: str  # relative to the output root; "" when nothing was kept
    dialogues: str  # the episode's part of dialogues.parquet; "" when it has no rows
    keys: list[str]
    failed: dict[str, str]  # clip key -> why enhancement failed
    quality: list[dict]  # before/after figures of the sampled clips
    targets: dict[str, TargetStats] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)  # utterances dropped, by reason
    orphaned: int = 0  # kept utterances left without a partner by a dropped neighbour
    rows: int = 0
    kept_s: float = 0.0
    overlap_s: float = 0.0
