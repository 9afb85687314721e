"""Dialogues from transcribed, filtered and enhanced utterances (SPEC §1 steps 5 and 8).

A filter that drops an utterance cuts its dialogue there: the pieces on either side are trimmed
again to start with A and end with B, so every dialogue still alternates stimulus/response.
Single-turn (A, B) pairs are added for the training split only, and only for dialogues of two
or more exchanges (a one-exchange dialogue already is its single-turn pair).
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from audiorole_ray.records import DialogueTurn, PlannedUtterance, TargetStats
from audiorole_ray.scenes import ab_pairs, trim_ab


def pieces(group: list[PlannedUtterance]) -> Iterator[list[PlannedUtterance]]:
    """The runs of kept utterances between dropped ones, each trimmed to A...B."""
    for dropped, run in groupby(group, key=lambda u: bool(u.drop)):
        if not dropped:
            piece = trim_ab(list(run))
            if piece:
                yield piece


def assemble(utts: list[PlannedUtterance], series: str, episode_id: str, audio_path: str) -> tuple[list[DialogueTurn], int]:
    """Rows of ``dialogues.parquet`` for one episode, and how many kept utterances were orphaned."""
    rows: list[DialogueTurn] = []
    orphaned = 0
    ordered = sorted(utts, key=lambda u: (u.scene_id, u.target, u.index))
    for (scene_id, target), group in groupby(ordered, key=lambda u: (u.scene_id, u.target)):
        group = list(group)
        kept = list(pieces(group))
        orphaned += sum(not u.drop for u in group) - sum(map(len, kept))
        for k, piece in enumerate(kept):
            dialogue_id = f"{scene_id}/{target}/{k}"
            rows += [_row(u, series, episode_id, audio_path, dialogue_id, i, "multi") for i, u in enumerate(piece)]
            if piece[0].split == "train" and len(piece) >= 4:
                for j, pair in enumerate(ab_pairs(piece)):
                    rows += [_row(u, series, episode_id, audio_path, f"{dialogue_id}/p{j}", i, "single")
                             for i, u in enumerate(pair)]
    return rows, orphaned


def target_stats(rows: list[DialogueTurn]) -> dict[str, TargetStats]:
    """Per target: scenes, dialogues, train/test exchanges of multi-turn dialogues, single pairs."""
    stats: dict[str, TargetStats] = {}
    scenes: dict[str, set] = {}
    for r in rows:
        s = stats.setdefault(r.target, TargetStats())
        if r.kind == "single":
            s.single_pairs += r.turn_index == 0
            continue
        scenes.setdefault(r.target, set()).add(r.scene_id)
        s.dialogues += r.turn_index == 0
        if r.role == "B":  # one exchange = one A/B pair
            s.train_turns += r.split == "train"
            s.test_turns += r.split == "test"
    for target, ids in scenes.items():
        stats[target].scenes = len(ids)
    return stats


def _row(u: PlannedUtterance, series: str, episode_id: str, audio_path: str, dialogue_id: str, turn_index: int, kind: str) -> DialogueTurn:
    return DialogueTurn(
        dialogue_id=dialogue_id, turn_index=turn_index, role=u.role, kind=kind, split=u.split, series=series,
        episode_id=episode_id, scene_id=u.scene_id, target=u.target, speaker_id=u.speaker_id, speakers=u.speakers,
        start=u.start, end=u.end, duration=round(u.end - u.start, 3), text=u.text, audio_path=audio_path,
        audio_key=u.key, truncated=u.truncated,
    )
