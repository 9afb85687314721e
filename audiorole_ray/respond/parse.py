"""Split what the LM generated into the answer's text and speech tokens.

GLM-4-Voice answers in blocks of 13 text tokens then 26 audio tokens; when the text runs out the
remaining audio follows, and the turn ends with ``<|user|>``. The demo simply sorts ids into
text (below the first ``<|audio_N|>`` id) and speech; we do the same and also check the block
pattern, so a malformed answer is recorded with what is wrong rather than silently decoded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from audiorole_ray.lm.format import AUDIO_BLOCK, TEXT_BLOCK, ChatTokens


@dataclass
class Response:
    text_ids: list[int]
    speech: list[int]  # speech codes 0..n_audio-1
    finished: bool  # ended with <|user|> (else cut by the token limit)
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.speech:
            return "no_speech"
        return "malformed" if self.problems else "ok"


def split_response(ids: list[int], ct: ChatTokens) -> Response:
    special = {ct.system, ct.assistant, ct.begin_audio, ct.end_audio}
    finished = False
    kept: list[int] = []
    problems: list[str] = []
    for i in ids:
        if i == ct.user:
            finished = True
            break
        kept.append(i)
    n_audio = ct.n_audio or 1 << 30
    runs: list[tuple[str, int]] = []  # (kind, length) of consecutive text / speech ids
    text, speech, stray = [], [], 0
    for i in kept:
        if i in special or i in ct.prefix:
            stray += 1
            continue
        kind = "a" if ct.audio_offset <= i < ct.audio_offset + n_audio else "t"
        (speech.append(i - ct.audio_offset) if kind == "a" else text.append(i))
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        else:
            runs.append((kind, 1))
    if stray:
        problems.append(f"{stray} control token(s) inside the answer")
    if not finished:
        problems.append("no <|user|> at the end (cut by the token limit)")
    if runs and runs[0][0] == "a" and text:
        problems.append("speech before the first text block")
    # every text run but the last is a full block, and so is every speech run between two text runs
    text_runs = [n for k, n in runs if k == "t"]
    if any(n != TEXT_BLOCK for n in text_runs[:-1]):
        problems.append(f"text blocks of {text_runs[:-1]} tokens, expected {TEXT_BLOCK}")
    inner_speech = [n for j, (k, n) in enumerate(runs) if k == "a" and j + 1 < len(runs)]
    if any(n != AUDIO_BLOCK for n in inner_speech):
        problems.append(f"speech blocks of {inner_speech} tokens between text blocks, expected {AUDIO_BLOCK}")
    return Response(text_ids=text, speech=speech, finished=finished, problems=problems)
