"""Plan an episode's dialogues from its series-level turns: which utterances to transcribe,
enhance and keep, before any audio is touched (SPEC §1 steps 3-5, clean clips and the duration
filter).

A plan is a list of :class:`PlannedUtterance`, one per A/B utterance of every dialogue of every
target, in dialogue order. Utterances a filter drops stay in the plan with their ``drop``
reason, so that assembling dialogues later can cut them where they were.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from audiorole_ray.filters import FilterConfig, duration_verdict
from audiorole_ray.records import PlannedUtterance, Scene, Turn, Utterance
from audiorole_ray.scenes import DEFAULT_MAX_PAUSE_S, dialogues, split_scenes

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MIN_SCENES_FOR_TEST = 10  # a target with this many dialogue scenes always gets a test scene


def safe(text: str) -> str:
    """A name usable in a WebDataset key: no dots (they start the extension), no slashes."""
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class PlanSettings:
    max_pause_s: float = DEFAULT_MAX_PAUSE_S
    filters: FilterConfig = field(default_factory=FilterConfig)
    seed: int = 0
    test_fraction: float = 0.1


@dataclass
class Plan:
    utterances: list[PlannedUtterance]
    too_short: int = 0  # dropped by the duration filter
    truncated: int = 0  # cut to the longest duration
    overlap_trimmed: int = 0  # cut to the part without the other role's voice
    possible_overlap_cut: int = 0  # responses whose clean part the diarizer's possible overlap changed


def split_score(scene_id: str, seed: int) -> float:
    """A scene's place in [0, 1) from a hash of (seed, scene id): stable across runs, resumes and
    added episodes, and the same for every target of the scene."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{scene_id}".encode()).digest()[:8], "big")
    return h / 2**64


def scene_split(scene_id: str, settings: PlanSettings, test_scenes: Iterable[str] = ()) -> str:
    if scene_id in test_scenes or split_score(scene_id, settings.seed) < settings.test_fraction:
        return "test"
    return "train"


def ensure_test_scenes(scenes_by_target: dict[str, list[str]], settings: PlanSettings) -> set[str]:
    """Scenes moved to the test split so that every target with at least ``MIN_SCENES_FOR_TEST``
    dialogue scenes has one: for a target whose scenes all hashed to train, the one nearest the
    test side. Still split by scene and from the seed; empty when there is no test split."""
    forced: set[str] = set()
    if settings.test_fraction <= 0:
        return forced
    for scenes in scenes_by_target.values():
        if len(scenes) < MIN_SCENES_FOR_TEST:
            continue
        if any(scene_split(s, settings, forced) == "test" for s in scenes):
            continue
        forced.add(min(scenes, key=lambda s: (split_score(s, settings.seed), s)))
    return forced


def overlap_seconds(turns: tuple[Turn, ...], start: float, end: float) -> float:
    """Seconds within [start, end] during which two or more speakers' turns are active (one
    sweep over the turns' edges; a speaker's own overlapping turns count once)."""
    events = []
    for t in turns:
        s, e = max(t.start, start), min(t.end, end)
        if s < e:
            events += [(s, 1, t.speaker), (e, -1, t.speaker)]
    events.sort(key=lambda ev: (ev[0], ev[1]))  # at one instant, ends before starts: half-open turns
    active: dict[str, int] = {}
    speaking, total, prev = 0, 0.0, start
    for time, delta, speaker in events:
        if speaking >= 2:
            total += time - prev
        prev = time
        before = active.get(speaker, 0)
        active[speaker] = before + delta
        speaking += (before == 0 and delta > 0) - (before == 1 and delta < 0)
    return total


def clean_span(turns: tuple[Turn, ...], u: Utterance, target: str,
               possible_overlap: Sequence[Sequence[float]] = ()) -> tuple[float, float] | None:
    """The longest part of ``u`` where the other role is silent (no other speaker under a target
    response, no target under a stimulus); ``u``'s own span when it is clean. A response also
    stays out of the diarizer's ``possible_overlap`` stretches ([start, end]: another voice may
    be there though nobody was named)."""
    other = [(max(t.start, u.start), min(t.end, u.end)) for t in turns
             if (t.speaker == target) != (u.role == "B") and t.start < u.end and t.end > u.start]
    if u.role == "B":
        other += [(max(a, u.start), min(b, u.end)) for a, b in possible_overlap if a < u.end and b > u.start]
    other.sort()
    if not other:
        return u.start, u.end
    parts, pos = [], u.start
    for s, e in other:
        if s > pos:
            parts.append((pos, s))
        pos = max(pos, e)
    if pos < u.end:
        parts.append((pos, u.end))
    return max(parts, key=lambda p: (p[1] - p[0], -p[0])) if parts else None


def _speaker_time(scene: Scene, speakers: tuple[str, ...], start: float, end: float) -> dict[str, float]:
    time: dict[str, float] = {}
    for t in scene.turns:
        if t.speaker in speakers:
            time[t.speaker] = time.get(t.speaker, 0.0) + max(0.0, min(t.end, end) - max(t.start, start))
    return time


def plan_episode(episode_id: str, turns: list[Turn], targets: list[str], settings: PlanSettings | None = None,
                 test_scenes: Iterable[str] = (), possible_overlap: Sequence[Sequence[float]] = ()) -> Plan:
    """``possible_overlap``: the diarizer's stretches where another voice may be heard though
    nobody was named; target responses are kept out of them like out of named overlap."""
    settings = settings or PlanSettings()
    test_scenes = set(test_scenes)
    series, stem = episode_id.split("/", 1)
    plan = Plan([])
    scenes = split_scenes(episode_id, turns, settings.max_pause_s)
    for target in targets:
        for scene, utts in dialogues(scenes, target):
            split = scene_split(scene.scene_id, settings, test_scenes)
            for i, u in enumerate(utts):
                drop, start, end = "", u.start, u.end
                span = clean_span(scene.turns, u, target, possible_overlap)
                if possible_overlap and u.role == "B" and span != clean_span(scene.turns, u, target):
                    plan.possible_overlap_cut += 1
                if span != (u.start, u.end):  # the other role is heard: keep the clean part if it is long enough
                    if span is None or round(span[1] - span[0], 3) < settings.filters.min_duration_s:
                        drop = "overlap"
                    else:
                        start, end = span
                        plan.overlap_trimmed += 1
                time = _speaker_time(scene, u.speakers, start, end)
                overlap = round(overlap_seconds(scene.turns, start, end), 3)
                start, end = round(start, 3), round(end, 3)
                truncated = False
                if not drop:
                    drop, cut = duration_verdict(start, end, settings.filters)
                    plan.too_short += drop == "too_short"
                    truncated = cut != end
                    plan.truncated += truncated
                    end = cut
                plan.utterances.append(PlannedUtterance(
                    key=f"{safe(series)}-{safe(stem)}-s{scene.index:04d}-{safe(target)}-u{i:03d}",
                    scene_id=scene.scene_id, target=target, index=i, role=u.role, start=start, end=end,
                    # B is the target; A may merge several speakers: name the one heard most
                    speaker_id=max(sorted(time), key=lambda s: time[s]),
                    speakers=list(u.speakers), overlap_s=overlap,
                    split=split, drop=drop, truncated=truncated,
                ))
    return plan


def dialogue_scenes(plan: Plan) -> dict[str, list[str]]:
    """{target: scene ids with at least one kept A/B pair}, for choosing test scenes."""
    kept: dict[str, dict[str, set[str]]] = {}
    for u in plan.utterances:
        if not u.drop:
            kept.setdefault(u.target, {}).setdefault(u.scene_id, set()).add(u.role)
    return {t: sorted(s for s, roles in scenes.items() if roles == {"A", "B"}) for t, scenes in kept.items()}
