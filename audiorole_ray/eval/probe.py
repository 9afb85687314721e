"""Does a judge endpoint actually hear audio? Checked before any CP score is asked for.

Some OpenAI-compatible servers accept ``input_audio`` parts and silently drop them (transformers
serve with a text model does): the model then "scores" audio it never heard. Before the pass,
the audio judge is asked to transcribe two short real-speech clips of the bundled sample whose
words are known. A judge that hears them gets most words right; one that does not cannot, since
the words are nowhere in the text it sees. Unless both pass, CP is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from audiorole_ray.errors import ConfigError
from audiorole_ray.eval.judge import ChatClient, audio_part, text_part
from audiorole_ray.io.audio import SAMPLE_RATE, load_segments
from audiorole_ray.sample import SAMPLE_SERIES

# (episode file, start, end, words): Allison Smith's prompts in the sitcom sample (truth/sitcom)
PROBES = [
    ("sitcom/ep01.wav", 20.197, 23.18, "That feature is not available on this line."),
    ("sitcom/ep01.wav", 37.95, 40.181, "The echo test has been completed."),
]
QUESTION = "Transcribe the speech in this audio. Answer with the spoken words only."
MIN_RECALL = 0.6


@dataclass
class ProbeResult:
    heard: bool
    answers: list[str]
    recalls: list[float]

    def explain(self) -> str:
        got = "; ".join(f"{r:.0%} of the words in {a[:60]!r}" for a, r in zip(self.answers, self.recalls))
        return f"asked to transcribe {len(PROBES)} known clips, it returned {got}"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def recall(truth: str, answer: str) -> float:
    want, got = words(truth), set(words(answer))
    return sum(w in got for w in want) / max(len(want), 1)


def probe_clips():
    for rel, start, end, text in PROBES:
        (clip,) = load_segments(str(SAMPLE_SERIES / rel), [(start, end)])
        yield clip, text


def probe_audio(chat: ChatClient) -> ProbeResult:
    answers, recalls = [], []
    for clip, text in probe_clips():
        content = [text_part(QUESTION), audio_part(clip, SAMPLE_RATE)]
        response, _ = chat.create([{"role": "user", "content": content}], temperature=0, max_tokens=48)
        answer = (response.choices[0].message.content or "") if response.choices else ""
        answers.append(answer)
        recalls.append(recall(text, answer))
    return ProbeResult(all(r >= MIN_RECALL for r in recalls), answers, recalls)


def require_audio(chat: ChatClient) -> ProbeResult:
    """Raise ConfigError unless the endpoint demonstrably hears ``input_audio``."""
    try:
        result = probe_audio(chat)
    except RuntimeError as exc:  # the server refused audio outright (llama.cpp answers 500)
        raise ConfigError(f"the audio judge {chat.model} at {chat.url} cannot take input_audio: {exc}; CP refused") from None
    if not result.heard:
        raise ConfigError(f"the audio judge {chat.model} at {chat.url} does not hear its input audio "
                          f"({result.explain()}); it would score audio it never heard, so CP is refused")
    return result
