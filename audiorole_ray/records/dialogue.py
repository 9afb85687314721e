"""Scenes, role-centric utterances, planned utterances and the rows of ``dialogues.parquet``."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from audiorole_ray.records.diarization import Turn
from audiorole_ray.records.serde import col


@dataclass(frozen=True)
class Scene:
    """A maximal run of turns with no pause over the scene threshold."""

    episode_id: str
    index: int  # position among the episode's scenes (kept or not), stable across targets
    turns: tuple[Turn, ...]

    @property
    def scene_id(self) -> str:
        return f"{self.episode_id}#{self.index:04d}"


@dataclass(frozen=True)
class Utterance:
    """Consecutive turns of one role merged: "A" (anyone but the target) or "B" (the target)."""

    role: str
    start: float
    end: float
    speakers: tuple[str, ...]  # who speaks in it, in order of first appearance


@dataclass
class PlannedUtterance:
    """One A/B utterance of a target's dialogue, as planned before any audio is touched, then
    transcribed. ``drop`` is the reason a filter dropped it ("" when kept): dropped ones stay in
    the plan so that assembly can cut the dialogue where they were."""

    key: str  # WebDataset sample key, unique in the corpus
    scene_id: str
    target: str
    index: int  # position in the scene's dialogue for this target
    role: str
    start: float
    end: float
    speaker_id: str  # B: the target; A: the speaker heard most
    speakers: list[str]
    overlap_s: float  # seconds with two or more speakers active
    split: str  # train or test, per scene
    drop: str = ""
    truncated: bool = False
    text: str = ""


@dataclass
class DialogueTurn:
    """A row of ``dialogues.parquet``: one A/B turn of a dialogue."""

    dialogue_id: str
    turn_index: int = col(pa.int32())
    role: str  # "A" stimulus (anyone else) or "B" response (the target)
    kind: str  # "multi" (whole dialogue) or "single" (one A/B pair, train only)
    split: str
    series: str
    episode_id: str
    scene_id: str
    target: str
    speaker_id: str
    speakers: list[str]
    start: float
    end: float
    duration: float
    text: str
    audio_path: str  # shard, relative to the corpus root
    audio_key: str  # sample key in the shard: <key>.flac and <key>.json
    truncated: bool
