"""Plan an episode's dialogues from its series-level turns: which utterances to transcribe,
enhance and keep, before any audio is touched (SPEC §1 steps 3-5 and the duration filter).

A plan is a list of plain dicts, one per A/B utterance of every dialogue of every target, in
dialogue order. Utterances the duration filter drops stay in the plan with their ``drop``
reason, so that assembling dialogues later can cut them where the gaps are.
"""
from __future__ import annotations

import hashlib
import json
import re

from audiorole_ray.filters import FilterConfig, FilterStats, filter_duration
from audiorole_ray.scenes import DEFAULT_MAX_PAUSE_S, Scene, Utterance, dialogues
from audiorole_ray.types import Turn

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe(text: str) -> str:
    """A name usable in a WebDataset key: no dots (they start the extension), no slashes."""
    return _UNSAFE.sub("_", text)


def scene_split(scene_id: str, seed: int, test_fraction: float) -> str:
    """Train or test for a whole scene, from a hash of (seed, scene id): stable across runs, resumes
    and added episodes, and the same for every target of the scene."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{scene_id}".encode()).digest()[:8], "big")
    return "test" if h / 2**64 < test_fraction else "train"


def overlap_seconds(turns: tuple[Turn, ...], start: float, end: float) -> float:
    """Seconds within [start, end] during which two or more speakers' turns are active."""
    edges = sorted({start, end, *(t for turn in turns for t in (turn.start, turn.end) if start < t < end)})
    total = 0.0
    for a, b in zip(edges, edges[1:]):
        mid = (a + b) / 2
        if len({t.speaker for t in turns if t.start <= mid < t.end}) >= 2:
            total += b - a
    return total


def _speaker_time(scene: Scene, u: Utterance) -> dict[str, float]:
    time: dict[str, float] = {}
    for t in scene.turns:
        if t.speaker in u.speakers:
            time[t.speaker] = time.get(t.speaker, 0.0) + max(0.0, min(t.end, u.end) - max(t.start, u.start))
    return time


def plan_episode(
    episode_id: str,
    turns: list[Turn],
    targets: list[str],
    max_pause_s: float = DEFAULT_MAX_PAUSE_S,
    filters: FilterConfig | None = None,
    seed: int = 0,
    test_fraction: float = 0.1,
) -> tuple[list[dict], FilterStats]:
    filters = filters or FilterConfig()
    stats = FilterStats()
    series, stem = episode_id.split("/", 1)
    rows: list[dict] = []
    for target in targets:
        for scene, utts in dialogues(episode_id, turns, target, max_pause_s):
            split = scene_split(scene.scene_id, seed, test_fraction)
            for i, u in enumerate(utts):
                time = _speaker_time(scene, u)
                rows.append(
                    {
                        "key": f"{safe(series)}-{safe(stem)}-s{scene.index:04d}-{safe(target)}-u{i:03d}",
                        "scene_id": scene.scene_id,
                        "target": target,
                        "index": i,
                        "role": u.role,
                        "start": round(u.start, 3),
                        "end": round(u.end, 3),
                        # B is the target; A may merge several speakers: name the one heard most
                        "speaker_id": max(sorted(time), key=time.get),
                        "speakers": list(u.speakers),
                        "overlap_s": round(overlap_seconds(scene.turns, u.start, u.end), 3),
                        "split": split,
                        "drop": "",
                        "truncated": False,
                    }
                )
    # the duration filter marks rather than removes, so dialogues can be cut where it dropped
    planned = []
    for r in rows:
        kept = filter_duration([r], filters, stats)
        planned.append(kept[0] if kept else {**r, "drop": "too_short"})
    return planned, stats


def plan_hash(plan: list[dict], **settings) -> str:
    """Fingerprint of a plan and the settings that shape its results, for resume checks."""
    blob = json.dumps({"plan": plan, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
