"""Dialogue scenes and role-centric turns (SPEC §1 steps 4–5), pure functions over Turns.

A scene is a maximal run of turns in which no pause between consecutive turns exceeds
``max_pause_s``; it is kept when it has at least two speakers and at least one target turn.
Inside a scene, consecutive non-target turns merge into one "A" utterance (the stimulus) and
consecutive target turns into one "B" utterance (the response), in temporal order.
"""
from __future__ import annotations

from dataclasses import dataclass

from audiorole_ray.types import Turn

DEFAULT_MAX_PAUSE_S = 3.0


@dataclass(frozen=True)
class Utterance:
    role: str  # "A" (anyone but the target) or "B" (the target)
    start: float
    end: float
    speakers: tuple[str, ...]  # who speaks in it, in order of first appearance

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Scene:
    episode_id: str
    index: int  # position among the episode's scenes (kept or not), stable across targets
    turns: tuple[Turn, ...]

    @property
    def scene_id(self) -> str:
        return f"{self.episode_id}#{self.index:04d}"

    @property
    def start(self) -> float:
        return self.turns[0].start

    @property
    def end(self) -> float:
        return max(t.end for t in self.turns)


def split_scenes(episode_id: str, turns: list[Turn], max_pause_s: float = DEFAULT_MAX_PAUSE_S) -> list[Scene]:
    """Cut wherever silence between consecutive turns exceeds ``max_pause_s``. Overlapping turns
    never cut: the pause is measured from the latest end so far, not the previous turn's end."""
    if max_pause_s < 0:
        raise ValueError(f"max_pause_s must be >= 0, got {max_pause_s}")
    scenes: list[list[Turn]] = []
    latest_end = float("-inf")
    for t in sorted(turns):
        if not scenes or t.start - latest_end > max_pause_s:
            scenes.append([])
        scenes[-1].append(t)
        latest_end = max(latest_end, t.end)
    return [Scene(episode_id, i, tuple(s)) for i, s in enumerate(scenes)]


def is_dialogue(scene: Scene, target: str) -> bool:
    speakers = {t.speaker for t in scene.turns}
    return len(speakers) >= 2 and target in speakers


def role_turns(scene: Scene, target: str) -> list[Utterance]:
    """The scene as alternating A/B utterances, trimmed to start with A and end with B (a
    response without a stimulus, or a stimulus without a response, trains nothing)."""
    utts: list[Utterance] = []
    for t in scene.turns:
        role = "B" if t.speaker == target else "A"
        if utts and utts[-1].role == role:
            last = utts[-1]
            speakers = last.speakers + ((t.speaker,) if t.speaker not in last.speakers else ())
            utts[-1] = Utterance(role, last.start, max(last.end, t.end), speakers)
        else:
            utts.append(Utterance(role, t.start, t.end, (t.speaker,)))
    while utts and utts[0].role == "B":
        utts.pop(0)
    while utts and utts[-1].role == "A":
        utts.pop()
    return utts


def single_turn_pairs(utts: list[Utterance]) -> list[tuple[Utterance, Utterance]]:
    """Every (A, B) stimulus-response pair of a multi-turn dialogue, for training."""
    return [(a, b) for a, b in zip(utts[::2], utts[1::2])]


def dialogues(episode_id: str, turns: list[Turn], target: str, max_pause_s: float = DEFAULT_MAX_PAUSE_S):
    """(scene, utterances) for every scene of the episode that makes a dialogue for ``target``."""
    for scene in split_scenes(episode_id, turns, max_pause_s):
        if is_dialogue(scene, target):
            utts = role_turns(scene, target)
            if utts:
                yield scene, utts
