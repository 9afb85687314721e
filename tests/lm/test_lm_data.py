"""Training samples from dialogues.parquet + speech tokens, and the preview file."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from lm_fixtures import TARGET, write_corpus

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.lm import data
from audiorole_ray.lm.format import IGNORE, ChatTokens, Turn, build_sample


@pytest.fixture(scope="module")
def ct(tiny_tokenizer):
    return ChatTokens.from_tokenizer(tiny_tokenizer, 64)


def _build(corpus, tok, ct, max_tokens=None):
    dialogues = data.target_dialogues(str(corpus), TARGET)
    codes, info = data.read_speech_tokens(str(corpus), data.resolve_tokenizer(str(corpus), None))
    return dialogues, codes, info, *data.build_samples(dialogues, codes, ct, lambda s: tok.encode(s, add_special_tokens=False), max_tokens)


def test_every_training_dialogue_becomes_one_sample(synthetic_corpus, tiny_tokenizer, ct):
    dialogues, codes, info, samples, counts = _build(synthetic_corpus, tiny_tokenizer, ct)
    table = pd.read_parquet(synthetic_corpus / "dialogues.parquet")
    train = table[(table.split == "train") & (table.target == TARGET)]
    assert info["vocab_size"] == 64
    assert [s["dialogue_id"] for s in samples] == (sorted(train[train.kind == "multi"].dialogue_id.unique())
                                                  + sorted(train[train.kind == "single"].dialogue_id.unique()))
    assert counts["samples"] == len(samples) == train.dialogue_id.nunique()
    assert counts["samples_single"] == train[train.kind == "single"].dialogue_id.nunique() > 0
    assert not set(table[table.split == "test"].dialogue_id) & {s["dialogue_id"] for s in samples}
    # each sample is exactly the format of its dialogue's turns, with its history
    for s in samples:
        turns = train[train.dialogue_id == s["dialogue_id"]].sort_values("turn_index").to_dict("records")
        expect = build_sample(ct, [Turn(codes[a["audio_key"]], tiny_tokenizer.encode(b["text"], add_special_tokens=False),
                                        codes[b["audio_key"]]) for a, b in zip(turns[0::2], turns[1::2])])
        assert s["input_ids"] == expect.input_ids and s["labels"] == expect.labels
    assert counts["tokens"] == sum(len(s["input_ids"]) for s in samples)
    assert counts["trained_tokens"] == sum(sum(label != IGNORE for label in s["labels"]) for s in samples)


def test_too_long_dialogues_are_cut_and_counted(synthetic_corpus, tiny_tokenizer, ct):
    *_, full, _ = _build(synthetic_corpus, tiny_tokenizer, ct)
    limit = sorted(len(s["input_ids"]) for s in full)[len(full) // 2]
    *_, cut, counts = _build(synthetic_corpus, tiny_tokenizer, ct, max_tokens=limit)
    assert all(len(s["input_ids"]) <= limit for s in cut)
    assert counts["cut_too_long"] > 0
    assert counts["samples"] + counts.get("dropped_too_long", 0) == len(full)
    by_id = {s["dialogue_id"]: s for s in full}
    for s in cut:  # a cut sample is a prefix of the whole one ending at a response's <|user|>
        whole = by_id[s["dialogue_id"]]["input_ids"]
        assert whole[: len(s["input_ids"])] == s["input_ids"] and s["input_ids"][-1] == ct.user


def test_missing_speech_tokens_cut_the_dialogue_there(tmp_path, tiny_tokenizer, ct):
    corpus = write_corpus(tmp_path / "c", exchanges=(2, 3))
    table = pd.read_parquet(corpus / "dialogues.parquet")
    multi = table[(table.kind == "multi") & (table.split == "train")]
    first = multi[multi.dialogue_id == multi.dialogue_id.iloc[0]].sort_values("turn_index")
    third_turn_key = first.audio_key.iloc[2]  # the second exchange's A turn
    corpus = write_corpus(tmp_path / "c2", exchanges=(2, 3), missing={third_turn_key})
    *_, samples, counts = _build(corpus, tiny_tokenizer, ct)
    sample = next(s for s in samples if s["dialogue_id"] == first.dialogue_id.iloc[0])
    assert sum(1 for i in sample["input_ids"] if i == ct.assistant) == 1  # only the first exchange is left
    assert counts["cut_missing_tokens"] >= 1


def test_preview_shows_tokens_and_what_is_trained(tmp_path, synthetic_corpus, tiny_tokenizer, ct):
    *_, samples, _ = _build(synthetic_corpus, tiny_tokenizer, ct)
    path = tmp_path / "lm" / "preview.jsonl"
    data.write_preview(str(path), samples, tiny_tokenizer, n=2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2
    for row, s in zip(rows, samples):
        assert row["tokens"] == tiny_tokenizer.convert_ids_to_tokens(s["input_ids"])
        assert len(row["labels_mask"]) == len(row["tokens"])
        trained = [t for t, m in zip(row["tokens"], row["labels_mask"]) if m]
        assert trained[-1] == "<|user|>" and any(t.startswith("<|audio_") for t in trained)
        assert row["tokens"][:3] == ["[gMASK]", "<sop>", "<|system|>"]
        # nothing of the prompt side is trained: no A-turn audio markers, no assistant header
        assert not {"<|begin_of_audio|>", "<|end_of_audio|>", "<|assistant|>", "<|system|>"} & set(trained)


def test_input_errors(tmp_path, synthetic_corpus):
    with pytest.raises(ConfigError, match="has no dialogues"):
        data.target_dialogues(str(synthetic_corpus), "nobody_spk09")
    with pytest.raises(ConfigError, match="no tokens of speech tokenizer 'other'"):
        data.resolve_tokenizer(str(synthetic_corpus), "other")
    empty = tmp_path / "untokenized"
    empty.mkdir()
    pd.read_parquet(synthetic_corpus / "dialogues.parquet").to_parquet(empty / "dialogues.parquet")
    with pytest.raises(InputError, match="tokenize_corpus.py"):
        data.resolve_tokenizer(str(empty), None)
    two = write_corpus(tmp_path / "two", tokenizer="a")
    write_corpus(two, tokenizer="b")
    with pytest.raises(ConfigError, match="several speech tokenizers"):
        data.resolve_tokenizer(str(two), None)
    with pytest.raises(InputError, match="not a corpus"):
        data.target_dialogues(str(tmp_path / "nothing"), TARGET)
