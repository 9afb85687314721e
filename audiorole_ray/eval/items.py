"""What ARP-Eval scores: every (A, B) exchange of the test split's dialogues of every target.

An item is one exchange of one dialogue for one system. It carries references to audio (shard
and key), never audio. Earlier turns of the dialogue travel as ``context`` (JSON) for systems
that use them; the paper's evaluation, and ours, is single-turn.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.corpus.shards import read_shard
from audiorole_ray.errors import InputError
from audiorole_ray.io.audio import SAMPLE_RATE, decode_bytes
from audiorole_ray.io.storage import join
from audiorole_ray.resample import resample

COLUMNS = ["dialogue_id", "turn_index", "role", "kind", "split", "series", "episode_id", "target", "speaker_id",
           "duration", "text", "audio_path", "audio_key"]


def exchange_items(corpus: str, characters: Sequence[str] | None = None) -> list[dict]:
    """One dict per (A, B) exchange of the test split's multi-turn dialogues, sorted by shard so
    that a worker reads each shard once."""
    d = read_dialogues(corpus, columns=COLUMNS, filters=[("split", "=", "test")])
    d = d[d["kind"] == "multi"]
    if characters:
        unknown = sorted(set(characters) - set(read_dialogues(corpus, columns=["target"])["target"]))
        if unknown:
            raise InputError(f"no dialogues of {unknown} in {corpus}")
        d = d[d["target"].isin(list(characters))]
    items = []
    for dialogue_id, turns in d.sort_values(["dialogue_id", "turn_index"]).groupby("dialogue_id", sort=True):
        rows = turns.to_dict("records")
        for i in range(1, len(rows)):
            a, b = rows[i - 1], rows[i]
            if a["role"] != "A" or b["role"] != "B":
                continue
            items.append({
                "character": b["target"],
                "series": b["series"],
                "dialogue_id": dialogue_id,
                "turn_index": int(b["turn_index"]),
                "exchange": (int(b["turn_index"]) - 1) // 2,
                "a_text": a["text"], "a_audio_path": a["audio_path"], "a_audio_key": a["audio_key"],
                "a_duration": float(a["duration"]),
                "b_text": b["text"], "b_audio_path": b["audio_path"], "b_audio_key": b["audio_key"],
                "b_duration": float(b["duration"]),
                "context": json.dumps([{"role": r["role"], "text": r["text"], "audio_path": r["audio_path"],
                                        "audio_key": r["audio_key"]} for r in rows[: i - 1]]),
            })
    items.sort(key=lambda it: (it["b_audio_path"], it["dialogue_id"], it["turn_index"]))
    return items


def characters_of(corpus: str) -> list[str]:
    """Every target character of the corpus (with or without test turns)."""
    return sorted(read_dialogues(corpus, columns=["target"])["target"].unique())


def reference_rows(corpus: str, character: str, max_clips: int) -> pd.DataFrame:
    """The character's reference clips: its own answers (role B) in the training split, at most
    ``max_clips`` of them chosen by a stable hash of the clip key (not the first episodes only).
    Train and test are split by scene, so no test answer is ever its own reference."""
    d = read_dialogues(corpus, columns=COLUMNS, filters=[("split", "=", "train"), ("target", "=", character)])
    d = d[(d["role"] == "B") & (d["speaker_id"] == character)].drop_duplicates("audio_key")
    if d.empty:
        return d
    order = d["audio_key"].map(lambda k: _stable_hash(k))
    return d.assign(_h=order).sort_values("_h").head(max_clips).drop(columns="_h").sort_values(["audio_path", "audio_key"])


def _stable_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    return resample(audio, rate, SAMPLE_RATE)


class ClipReader:
    """Clips of a corpus at 16 kHz, keeping the last few shards in memory: items come sorted by
    shard, so each worker reads a shard about once."""

    def __init__(self, corpus: str, keep: int = 2):
        self.corpus, self.keep = corpus, keep
        self._shards: OrderedDict[str, dict] = OrderedDict()

    def __call__(self, audio_path: str, audio_key: str) -> np.ndarray:
        shard = self._shards.get(audio_path)
        if shard is None:
            shard = read_shard(join(self.corpus, audio_path))
            self._shards[audio_path] = shard
            while len(self._shards) > self.keep:
                self._shards.popitem(last=False)
        else:
            self._shards.move_to_end(audio_path)
        if audio_key not in shard or "flac" not in shard[audio_key]:
            raise InputError(f"no clip {audio_key!r} in {join(self.corpus, audio_path)}")
        audio, rate = decode_bytes(shard[audio_key]["flac"])
        return to_16k(audio, rate)
