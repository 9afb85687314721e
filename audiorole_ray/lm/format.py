"""GLM-4-Voice's chat format for one training dialogue: token ids and labels, pure.

A dialogue of alternating A (stimulus) and B (the target's response) turns becomes, as the
GLM-4-Voice demo builds its prompt (TRAINING-NOTES.md)::

    [prefix]<|system|>\\n{SYSTEM_PROMPT}<|user|>
    \\n<|begin_of_audio|>{A1 speech}<|end_of_audio|><|assistant|>streaming_transcription\\n{B1}<|user|>
    \\n<|begin_of_audio|>{A2 speech}<|end_of_audio|><|assistant|>streaming_transcription\\n{B2}<|user|>

where ``{Bk}`` interleaves the transcript's text tokens with the B turn's speech tokens, 13 text
then 26 speech, and the rest of the speech after the text runs out. Only ``{Bk}<|user|>`` is
trained on: the demo stops generating at ``<|user|>``, so the model must learn to emit it.
``[prefix]`` is what the tokenizer puts before any text (``[gMASK]<sop>`` for GLM-4's).

Ids are built from the pieces (text tokenized alone, speech as ``audio_offset + code``), as a
model sees them; :func:`render` gives the equivalent string, which the tokenizer maps to the
same ids (tests check that).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

IGNORE = -100  # label of tokens not trained on (PyTorch cross-entropy's ignore_index)
TEXT_BLOCK, AUDIO_BLOCK = 13, 26

# GLM-4-Voice's system prompt for speech input, verbatim from its demo (the trailing space included)
SYSTEM_PROMPT = (
    "User will provide you with a speech instruction. Do it step by step. First, think about the "
    "instruction and respond in a interleaved manner, with 13 text token followed by 26 audio tokens. "
)
RESPONSE_HEADER = "streaming_transcription\n"
SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_audio|>", "<|end_of_audio|>")


def audio_token(code: int) -> str:
    return f"<|audio_{code}|>"


def interleave(text_ids: Sequence[int], speech_ids: Sequence[int], text_block: int = TEXT_BLOCK,
               audio_block: int = AUDIO_BLOCK) -> list[int]:
    """``text_block`` text ids, then ``audio_block`` speech ids, repeated; what is left of either
    follows once the other runs out (speech after the text, as GLM-4-Voice answers; text after
    the speech when a transcript is longer than its audio allows)."""
    out: list[int] = []
    t = a = 0
    while t < len(text_ids):
        out += text_ids[t : t + text_block]
        t += text_block
        out += speech_ids[a : a + audio_block]
        a += audio_block
    out += speech_ids[a:]
    return list(out)


@dataclass(frozen=True)
class ChatTokens:
    """The ids the format needs from one tokenizer, looked up once (picklable, no tokenizer)."""

    prefix: tuple[int, ...]
    system: int
    user: int
    assistant: int
    begin_audio: int
    end_audio: int
    audio_offset: int  # id of <|audio_0|>; <|audio_N|> is audio_offset + N
    system_text: tuple[int, ...]  # "\n" + SYSTEM_PROMPT
    newline: tuple[int, ...]  # "\n"
    response_header: tuple[int, ...]  # "streaming_transcription\n"
    n_audio: int = 0  # speech codes 0..n_audio-1 are allowed (0: unchecked)

    @classmethod
    def from_tokenizer(cls, tokenizer, n_audio: int, system_prompt: str = SYSTEM_PROMPT) -> "ChatTokens":
        """Look the ids up; ``n_audio`` is the speech tokenizer's number of codes, all of which
        must be consecutive ``<|audio_N|>`` tokens of this tokenizer."""
        from audiorole_ray.errors import ConfigError

        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*SPECIAL_TOKENS, audio_token(0))}
        missing = [t for t, i in ids.items() if i is None or i == tokenizer.unk_token_id]
        if missing:
            raise ConfigError(f"the tokenizer has no {', '.join(missing)}: it is not a GLM-4-Voice tokenizer")
        offset = ids[audio_token(0)]
        last = tokenizer.convert_tokens_to_ids(audio_token(n_audio - 1))
        if last != offset + n_audio - 1:
            raise ConfigError(f"the LM's tokenizer has no <|audio_{n_audio - 1}|> at id {offset + n_audio - 1}: "
                              f"it cannot hold the {n_audio} codes of this speech tokenizer")
        enc = lambda s: tuple(tokenizer.encode(s, add_special_tokens=False))  # noqa: E731
        prefix = tuple(tokenizer.encode("", add_special_tokens=True))  # what it puts before any text
        return cls(prefix=prefix, system=ids["<|system|>"], user=ids["<|user|>"], assistant=ids["<|assistant|>"],
                   begin_audio=ids["<|begin_of_audio|>"], end_audio=ids["<|end_of_audio|>"], audio_offset=offset,
                   system_text=enc("\n" + system_prompt), newline=enc("\n"), response_header=enc(RESPONSE_HEADER),
                   n_audio=n_audio)

    def speech(self, codes: Sequence[int]) -> list[int]:
        if self.n_audio and len(codes) and (min(codes) < 0 or max(codes) >= self.n_audio):
            from audiorole_ray.errors import ConfigError

            raise ConfigError(f"speech code out of range 0..{self.n_audio - 1}: the tokens come from another speech tokenizer")
        return [self.audio_offset + int(c) for c in codes]


@dataclass
class Turn:
    """One exchange: the A turn's speech codes, the B turn's transcript ids and speech codes."""

    a_speech: Sequence[int]
    b_text: Sequence[int]
    b_speech: Sequence[int]


@dataclass
class Sample:
    input_ids: list[int]
    labels: list[int]
    turns: int  # exchanges kept
    cut: int = 0  # exchanges dropped by max_tokens
    boundaries: list[int] = field(default_factory=list)  # end offset of the head and of each exchange


def head_ids(ct: ChatTokens) -> list[int]:
    return [*ct.prefix, ct.system, *ct.system_text, ct.user]


def exchange_ids(ct: ChatTokens, turn: Turn) -> tuple[list[int], list[int]]:
    """(prompt part, trained part) of one exchange; the trained part ends with <|user|>."""
    prompt = [*ct.newline, ct.begin_audio, *ct.speech(turn.a_speech), ct.end_audio, ct.assistant, *ct.response_header]
    response = [*interleave(list(turn.b_text), ct.speech(turn.b_speech)), ct.user]
    return prompt, response


def build_sample(ct: ChatTokens, turns: Sequence[Turn], max_tokens: int | None = None) -> Sample | None:
    """One dialogue as ids and labels (-100 outside the responses).

    With ``max_tokens`` the dialogue is cut after the last whole exchange that fits (never inside
    a turn, so never inside a 13/26 block); ``None`` when not even the first exchange fits."""
    ids = head_ids(ct)
    labels = [IGNORE] * len(ids)
    bounds = [len(ids)]
    kept = 0
    for turn in turns:
        prompt, response = exchange_ids(ct, turn)
        if max_tokens is not None and len(ids) + len(prompt) + len(response) > max_tokens:
            break
        ids += prompt + response
        labels += [IGNORE] * len(prompt) + response
        bounds.append(len(ids))
        kept += 1
    if kept == 0:
        return None
    return Sample(input_ids=ids, labels=labels, turns=kept, cut=len(turns) - kept, boundaries=bounds)


def render(tokenizer, ct: ChatTokens, turns: Sequence[Turn], system_prompt: str = SYSTEM_PROMPT) -> str:
    """The string a tokenizer maps to :func:`build_sample`'s ids (without the prefix tokens it
    adds itself): text blocks are decoded back from their ids."""

    def speech(codes):
        return "".join(audio_token(int(c)) for c in codes)

    parts = ["<|system|>", "\n" + system_prompt, "<|user|>"]
    for turn in turns:
        parts += ["\n<|begin_of_audio|>", speech(turn.a_speech), "<|end_of_audio|><|assistant|>", RESPONSE_HEADER]
        text, t, a = list(turn.b_text), 0, 0
        while t < len(text):
            parts.append(tokenizer.decode(text[t : t + TEXT_BLOCK]))
            parts.append(speech(turn.b_speech[a : a + AUDIO_BLOCK]))
            t, a = t + TEXT_BLOCK, a + AUDIO_BLOCK
        parts += [speech(turn.b_speech[a:]), "<|user|>"]
    return "".join(parts)
