"""Dialogues from transcribed, filtered and enhanced utterances (SPEC §1 steps 5 and 8).

A filter that drops an utterance cuts its dialogue there: the pieces on either side are trimmed
again to start with A and end with B, so every dialogue still alternates stimulus/response.
Single-turn (A, B) pairs are added for the training split only, and only for dialogues of two
or more exchanges (a one-exchange dialogue already is its single-turn pair).
"""
from __future__ import annotations

from itertools import groupby



def _pieces(utts: list[dict]) -> list[list[dict]]:
    pieces, cur = [], []
    for u in utts:
        if u["drop"]:
            pieces.append(cur)
            cur = []
        else:
            cur.append(u)
    pieces.append(cur)
    out = []
    for p in pieces:
        while p and p[0]["role"] == "B":
            p = p[1:]
        while p and p[-1]["role"] == "A":
            p = p[:-1]
        if p:
            out.append(p)
    return out


def assemble(utts: list[dict], episode: dict) -> tuple[list[dict], int]:
    """Rows of ``dialogues.parquet`` for one episode, and how many kept utterances were orphaned.

    ``utts`` are plan rows with ``text`` and ``drop`` filled in and, for kept ones, ``audio_path``
    and ``audio_key``; ``episode`` gives ``series`` and ``episode_id``.
    """
    rows: list[dict] = []
    orphaned = 0
    by_dialogue = groupby(sorted(utts, key=lambda u: (u["scene_id"], u["target"], u["index"])), key=lambda u: (u["scene_id"], u["target"]))
    for (scene_id, target), group in by_dialogue:
        group = list(group)
        pieces = _pieces(group)
        orphaned += sum(not u["drop"] for u in group) - sum(len(p) for p in pieces)
        for k, piece in enumerate(pieces):
            dialogue_id = f"{scene_id}/{target}/{k}"
            rows += [_row(u, episode, dialogue_id, i, "multi") for i, u in enumerate(piece)]
            if piece[0]["split"] == "train" and len(piece) >= 4:
                for j in range(0, len(piece), 2):
                    pair_id = f"{dialogue_id}/p{j // 2}"
                    rows += [_row(u, episode, pair_id, i, "single") for i, u in enumerate(piece[j : j + 2])]
    return rows, orphaned


def _row(u: dict, episode: dict, dialogue_id: str, turn_index: int, kind: str) -> dict:
    return {
        "dialogue_id": dialogue_id,
        "turn_index": turn_index,
        "role": u["role"],
        "kind": kind,
        "split": u["split"],
        "series": episode["series"],
        "episode_id": episode["episode_id"],
        "scene_id": u["scene_id"],
        "target": u["target"],
        "speaker_id": u["speaker_id"],
        "speakers": u["speakers"],
        "start": u["start"],
        "end": u["end"],
        "duration": round(u["end"] - u["start"], 3),
        "text": u["text"],
        "audio_path": u["audio_path"],
        "audio_key": u["audio_key"],
        "truncated": u["truncated"],
    }
