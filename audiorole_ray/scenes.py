"""Dialogue scenes and role-centric turns (SPEC §1 steps 4–5), pure functions over Turns.

A scene is a maximal run of turns in which no pause between consecutive turns exceeds
``max_pause_s``; it is kept when it has at least two speakers and at least one target turn.
Inside a scene, consecutive non-target turns merge into one "A" utterance (the stimulus) and
consecutive target turns into one "B" utterance (the response), in temporal order.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from audiorole_ray.records import Scene, Turn, Utterance

DEFAULT_MAX_PAUSE_S = 3.0
T = TypeVar("T")


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


def trim_ab(seq: Sequence[T], role: Callable[[T], str] = lambda u: u.role) -> list[T]:
    """Trim a run of utterances to start with A and end with B: a response without a stimulus,
    or a stimulus without a response, trains nothing. The one rule for planning and assembly."""
    lo, hi = 0, len(seq)
    while lo < hi and role(seq[lo]) == "B":
        lo += 1
    while hi > lo and role(seq[hi - 1]) == "A":
        hi -= 1
    return list(seq[lo:hi])


def ab_pairs(seq: Sequence[T]) -> list[tuple[T, T]]:
    """Every (A, B) stimulus-response pair of an alternating, trimmed dialogue."""
    return list(zip(seq[::2], seq[1::2]))


def role_turns(scene: Scene, target: str) -> list[Utterance]:
    """The scene as alternating A/B utterances, trimmed to start with A and end with B."""
    utts: list[Utterance] = []
    for t in scene.turns:
        role = "B" if t.speaker == target else "A"
        if utts and utts[-1].role == role:
            last = utts[-1]
            speakers = last.speakers + ((t.speaker,) if t.speaker not in last.speakers else ())
            utts[-1] = Utterance(role, last.start, max(last.end, t.end), speakers)
        else:
            utts.append(Utterance(role, t.start, t.end, (t.speaker,)))
    return trim_ab(utts)


def dialogues(scenes: list[Scene], target: str) -> Iterator[tuple[Scene, list[Utterance]]]:
    """(scene, utterances) for every scene that makes a dialogue for ``target``."""
    for scene in scenes:
        if is_dialogue(scene, target):
            utts = role_turns(scene, target)
            if utts:
                yield scene, utts
