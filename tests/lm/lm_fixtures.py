"""A small synthetic corpus with speech tokens and no audio, laid out as jobs/build_corpus.py and
jobs/tokenize_corpus.py write them (their layout helpers): dialogues.parquet/<episode>.parquet +
tokens/<tokenizer>/{tokenizer.json,shards/<episode>.parquet}. Its 'speech' is a pattern the
tiny LM can learn; for real voices see :mod:`audiorole_ray.sample.truth_corpus`."""
from __future__ import annotations

import random
from pathlib import Path

from audiorole_ray.corpus.layout import dialogues_part, shard_path
from audiorole_ray.io.storage import join, write_json
from audiorole_ray.io.tables import write_table
from audiorole_ray.records import DialogueTurn
from audiorole_ray.tokens.reader import TOKENIZER_FILE, tokens_uri
from audiorole_ray.tokens.shards import write_tokens
from audiorole_ray.tokens.stage import shard_id, tokens_file

TARGET = "syn_spk00"
SENTENCES = [
    "I told you already, the keys are in the kitchen.",
    "No way. We are not doing that again tonight.",
    "Fine, but you are paying for the pizza this time.",
    "Who left the door open? The cat is gone!",
]


def speech_for(text: str, vocab: int, seconds: float) -> list[int]:
    """Deterministic 'speech' of a text: a pattern the tiny LM can learn, 12.5 codes a second."""
    n = max(1, round(seconds * 12.5))
    seed = sum(map(ord, text))
    return [(seed + 7 * i + (i // 5)) % vocab for i in range(n)]


def write_corpus(root: Path, n_dialogues: int = 12, vocab: int = 64, exchanges=(1, 3), seed: int = 0,
                 tokenizer: str = "synthetic", missing: set[str] = frozenset()) -> Path:
    rng = random.Random(seed)
    rows, tokens = [], []
    episode = "syn/ep01"
    shard = shard_path(episode)
    for d in range(n_dialogues):
        n = rng.randint(*exchanges)
        dialogue_id = f"syn/ep01/s{d:03d}/{TARGET}/0"
        turns = []
        for k in range(n):
            a_text = f"Question {rng.randint(0, 9)}, what now?"
            b_text = SENTENCES[rng.randrange(len(SENTENCES))]
            turns += [("A", a_text, rng.uniform(1.0, 3.0)), ("B", b_text, 2.0 + len(b_text) / 20)]
        split = "train" if d % 6 else "test"
        groups = [(dialogue_id, "multi", turns)]
        if split == "train" and n >= 2:
            groups += [(f"{dialogue_id}/p{j}", "single", turns[2 * j : 2 * j + 2]) for j in range(n)]
        for did, kind, group in groups:
            for i, (role, text, dur) in enumerate(group):
                key = f"syn_ep01_{d:03d}_{turns.index((role, text, dur)):02d}"
                rows.append({"dialogue_id": did, "turn_index": i, "role": role, "kind": kind, "split": split,
                             "series": "syn", "episode_id": "syn/ep01", "scene_id": f"syn/ep01/s{d:03d}",
                             "target": TARGET, "speaker_id": TARGET if role == "B" else "syn_spk01",
                             "speakers": [TARGET, "syn_spk01"], "start": 0.0, "end": dur, "duration": dur,
                             "text": text, "audio_path": shard, "audio_key": key, "truncated": False})
                if kind == "multi" and key not in missing:
                    codes = speech_for(text, vocab, dur)
                    tokens.append({"audio_key": key, "audio_path": shard, "tokens": codes,
                                   "frame_rate": 12.5, "n_tokens": len(codes), "duration": dur})
    write_table(join(str(root), dialogues_part(episode)), rows, DialogueTurn)
    tok_dir = tokens_uri(str(root), tokenizer)
    settings = f"synthetic-{vocab}"
    write_tokens(join(tok_dir, tokens_file(shard_id(shard))), tokens, settings)
    write_json(join(tok_dir, TOKENIZER_FILE), {"name": tokenizer, "frame_rate": 12.5, "vocab_size": vocab, "settings": settings})
    return root
