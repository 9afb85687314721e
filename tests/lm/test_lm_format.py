"""GLM-4-Voice's chat format: the 13/26 interleave at its edges, labels, cuts, and equality with
the tokenizer's own ids for the equivalent string."""
from __future__ import annotations

import pytest

from audiorole_ray.errors import ConfigError
from audiorole_ray.lm.format import (
    IGNORE,
    SYSTEM_PROMPT,
    ChatTokens,
    Turn,
    build_sample,
    exchange_ids,
    head_ids,
    interleave,
    render,
)

T = [f"t{i}" for i in range(100)]  # stand-ins: interleave works on any ids
S = [f"s{i}" for i in range(200)]


def test_interleave_text_shorter_than_one_block():
    assert interleave(T[:5], S[:60]) == T[:5] + S[:60]


def test_interleave_blocks_then_the_rest_of_the_speech():
    out = interleave(T[:30], S[:100])
    assert out == T[:13] + S[:26] + T[13:26] + S[26:52] + T[26:30] + S[52:100]
    assert interleave(T[:13], S[:40]) == T[:13] + S[:40]  # exactly one text block


def test_interleave_text_longer_than_the_speech():
    out = interleave(T[:45], S[:30])
    # blocks while both last, then the text goes on alone; nothing is lost or reordered
    assert out == T[:13] + S[:26] + T[13:26] + S[26:30] + T[26:45]
    assert [x for x in out if x.startswith("t")] == T[:45] and [x for x in out if x.startswith("s")] == S[:30]


def test_interleave_empty_transcript_and_empty_speech():
    assert interleave([], S[:7]) == S[:7]
    assert interleave(T[:20], []) == T[:20]
    assert interleave([], []) == []


@pytest.fixture(scope="module")
def ct(tiny_tokenizer):
    return ChatTokens.from_tokenizer(tiny_tokenizer, 64)


def _enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


TEXTS = [
    "I told you already, the keys are in the kitchen.",
    "Hi.",
    "",
    # long enough for several blocks, with block edges inside words and punctuation
    "Well, well, well... what do we have here? Supercalifragilistic expialidocious, d'you think? 1234567 $$$ antidisestablishment.",
]


@pytest.mark.parametrize("text", TEXTS, ids=["sentence", "short", "empty", "long"])
def test_ids_equal_the_tokenizer_on_the_equivalent_string(tiny_tokenizer, ct, text):
    tok = tiny_tokenizer
    turns = [Turn(a_speech=[1, 2, 3], b_text=_enc(tok, text), b_speech=list(range(40))),
             Turn(a_speech=[63], b_text=_enc(tok, "And then?"), b_speech=[5, 6])]
    sample = build_sample(ct, turns)
    string = render(tok, ct, turns)
    assert tok(string).input_ids == sample.input_ids
    assert string.startswith("<|system|>\n" + SYSTEM_PROMPT + "<|user|>\n<|begin_of_audio|><|audio_1|><|audio_2|><|audio_3|><|end_of_audio|>"
                             "<|assistant|>streaming_transcription\n")
    assert string.endswith("<|audio_5|><|audio_6|><|user|>")


def test_sample_layout_and_labels(tiny_tokenizer, ct):
    tok = tiny_tokenizer
    b_text = _enc(tok, TEXTS[3])
    assert len(b_text) > 26
    turns = [Turn([1, 2], b_text, list(range(60))), Turn([3], _enc(tok, "Sure."), [7] * 30)]
    s = build_sample(ct, turns)
    assert s.input_ids[: len(ct.prefix)] == list(ct.prefix)
    assert s.input_ids[-1] == ct.user and s.labels[-1] == ct.user
    assert len(s.labels) == len(s.input_ids) and s.turns == 2 and s.cut == 0
    trained = [i for i, label in enumerate(s.labels) if label != IGNORE]
    for i in trained:
        assert s.labels[i] == s.input_ids[i]
    # exactly the responses and their closing <|user|> are trained on, the history (A turns, B headers) is not
    head = head_ids(ct)
    p1, r1 = exchange_ids(ct, turns[0])
    p2, r2 = exchange_ids(ct, turns[1])
    assert s.input_ids == head + p1 + r1 + p2 + r2
    starts = [len(head) + len(p1), len(head) + len(p1) + len(r1) + len(p2)]
    assert trained == list(range(starts[0], starts[0] + len(r1))) + list(range(starts[1], starts[1] + len(r2)))
    # the first response: 13 text ids, 26 speech ids, 13 text, 26 speech, the rest of the text, the rest of the speech
    speech = [ct.audio_offset + c for c in range(60)]
    assert r1[:-1] == b_text[:13] + speech[:26] + b_text[13:26] + speech[26:52] + b_text[26:39] + speech[52:] + b_text[39:]
    assert s.boundaries == [len(head), starts[0] + len(r1), len(s.input_ids)]


def test_max_tokens_cuts_at_a_turn_boundary(tiny_tokenizer, ct):
    tok = tiny_tokenizer
    turns = [Turn([1] * 20, _enc(tok, t), list(range(50))) for t in TEXTS]
    full = build_sample(ct, turns)
    for limit in range(full.boundaries[1], full.boundaries[-1] + 1, 7):
        cut = build_sample(ct, turns, max_tokens=limit)
        kept_end = max(b for b in full.boundaries if b <= limit)
        assert cut.input_ids == full.input_ids[:kept_end]  # a prefix of whole exchanges, never inside a block
        assert cut.labels == full.labels[:kept_end]
        assert cut.turns + cut.cut == len(turns) and cut.input_ids[-1] == ct.user
    assert build_sample(ct, turns, max_tokens=full.boundaries[1] - 1) is None  # not even the first exchange fits
    assert build_sample(ct, turns, max_tokens=len(full.input_ids)).cut == 0


def test_speech_codes_outside_the_tokenizer_are_refused(ct):
    with pytest.raises(ConfigError, match="out of range"):
        build_sample(ct, [Turn([64], [], [1])])  # the tiny tokenizer was built for 64 codes


def test_a_tokenizer_with_too_few_audio_tokens_is_refused(tiny_tokenizer):
    with pytest.raises(ConfigError, match="cannot hold the 65 codes"):
        ChatTokens.from_tokenizer(tiny_tokenizer, 65)


def test_a_tokenizer_without_glm_tokens_is_refused():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")),
                                    unk_token="[UNK]")
    with pytest.raises(ConfigError, match="<\\|system\\|>"):
        ChatTokens.from_tokenizer(plain, 64)
