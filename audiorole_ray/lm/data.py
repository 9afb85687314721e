"""Training samples of one character: ``dialogues.parquet`` + speech tokens -> ids and labels.

Every training dialogue of the target (``split == "train"``) becomes one sample: the multi-turn
dialogues with their history, and the single-turn (A, B) pairs the corpus adds for training
(``kind == "single"``), as the paper does. Speech tokens come from
``CORPUS/tokens/<tokenizer>/`` as ``jobs/tokenize_corpus.py`` writes it (one row per clip:
``audio_key``, ``tokens``; ``tokenizer.json``: name, frame_rate, vocab_size = number of codes),
read through :mod:`audiorole_ray.tokens.reader`.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
from fsspec.core import url_to_fs

from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import join, write_text
from audiorole_ray.lm.format import IGNORE, ChatTokens, Turn, build_sample

TOKENS = "tokens"


def tokenizer_names(corpus: str) -> list[str]:
    fs, root = url_to_fs(join(corpus, TOKENS))
    if not fs.isdir(root):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False) if fs.isfile(f"{p.rstrip('/')}/tokenizer.json"))


def resolve_tokenizer(corpus: str, name: str | None) -> str:
    names = tokenizer_names(corpus)
    if not names:
        raise InputError(f"{corpus!r} has no speech tokens ({join(corpus, TOKENS, '<tokenizer>')}): run jobs/tokenize_corpus.py on it first")
    if name is None:
        if len(names) > 1:
            raise ConfigError(f"{corpus!r} has tokens of several speech tokenizers {names}: choose one with --tokenizer")
        return names[0]
    if name not in names:
        raise ConfigError(f"no tokens of speech tokenizer {name!r} in {corpus!r}; found {names}")
    return name


def read_speech_tokens(corpus: str, tokenizer: str) -> tuple[dict[str, list[int]], dict]:
    """({audio_key: speech codes}, the tokenizer's tokenizer.json), through the tokens reader."""
    from audiorole_ray.tokens.reader import read_tokenizer_info, tokens_by_key

    return tokens_by_key(corpus, tokenizer), read_tokenizer_info(corpus, tokenizer)


def target_dialogues(corpus: str, target: str) -> pd.DataFrame:
    rows = read_dialogues(corpus, columns=["dialogue_id", "turn_index", "role", "kind", "split", "target", "text", "audio_key"])
    if target not in set(rows["target"]):
        known = sorted(set(rows["target"]))
        raise ConfigError(f"--target {target!r} has no dialogues in {corpus!r}; targets: {known}")
    rows = rows[(rows["target"] == target) & (rows["split"] == "train")]
    return rows.sort_values(["dialogue_id", "turn_index"]).reset_index(drop=True)


def exchanges(turns: pd.DataFrame) -> list[tuple[dict, dict]]:
    """(A, B) row pairs of one dialogue, in order (a dialogue starts with A and ends with B)."""
    recs = turns.to_dict("records")
    pairs = []
    for a, b in zip(recs[0::2], recs[1::2]):
        if a["role"] != "A" or b["role"] != "B":
            raise InputError(f"dialogue {a['dialogue_id']} does not alternate A/B at turn {a['turn_index']}")
        pairs.append((a, b))
    return pairs


def build_samples(dialogues: pd.DataFrame, codes: Mapping[str, Sequence[int]], ct: ChatTokens,
                  encode: Callable[[str], list[int]], max_tokens: int | None = None) -> tuple[list[dict], dict]:
    """One sample per dialogue (multi-turn first, then single-turn pairs, each by id) and counts.

    A dialogue whose clip has no speech tokens keeps the exchanges before it; one too long for
    ``max_tokens`` keeps the whole exchanges that fit. Both are counted, and so are dialogues
    left with nothing."""
    counts: Counter = Counter()
    samples = []
    order = dialogues.assign(_single=dialogues["kind"] != "multi").sort_values(["_single", "dialogue_id", "turn_index"])
    for dialogue_id, group in order.groupby(["_single", "dialogue_id"], sort=False):
        dialogue_id = dialogue_id[1]
        counts["dialogues"] += 1
        turns = []
        for a, b in exchanges(group):
            if a["audio_key"] not in codes or b["audio_key"] not in codes:
                counts["cut_missing_tokens"] += 1
                break
            turns.append(Turn(a_speech=codes[a["audio_key"]], b_text=encode(b["text"] or ""), b_speech=codes[b["audio_key"]]))
        if not turns:
            counts["dropped_missing_tokens"] += 1
            continue
        sample = build_sample(ct, turns, max_tokens)
        if sample is None:
            counts["dropped_too_long"] += 1
            continue
        if sample.cut:
            counts["cut_too_long"] += 1
            counts["exchanges_cut"] += sample.cut
        kind = group["kind"].iloc[0]
        counts[f"samples_{kind}"] += 1
        counts["samples"] += 1
        counts["exchanges"] += sample.turns
        counts["tokens"] += len(sample.input_ids)
        counts["trained_tokens"] += sum(label != IGNORE for label in sample.labels)
        counts["max_len"] = max(counts["max_len"], len(sample.input_ids))
        samples.append({"dialogue_id": dialogue_id, "kind": kind, "input_ids": sample.input_ids, "labels": sample.labels})
    return samples, dict(counts)


def preview_rows(samples: Sequence[dict], tokenizer, n: int = 3) -> list[dict]:
    """What the model is trained on: each token string and whether its label counts."""
    return [{"dialogue_id": s["dialogue_id"], "kind": s["kind"],
             "tokens": tokenizer.convert_ids_to_tokens(list(s["input_ids"])),
             "labels_mask": [int(label != IGNORE) for label in s["labels"]]} for s in samples[:n]]


def write_preview(path: str, samples: Sequence[dict], tokenizer, n: int = 3) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in preview_rows(samples, tokenizer, n)))
