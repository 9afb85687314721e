"""Before any work: does each endpoint answer (:func:`require_endpoint`), and does the audio
judge actually hear audio (:func:`require_audio`)?

An ``openai:`` system is checked with one free request, ``GET /models/MODEL`` (OpenAI answers it
without cost and says whether the key is good and the model exists); a server without that route
gets a one-token text completion instead. A refused connection, a refused key or an unknown model
is then one line before the pass, not minutes of retries per item.

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
from audiorole_ray.eval.judge import ChatClient, ChatError, audio_part, text_part
from audiorole_ray.io.audio import SAMPLE_RATE, load_segments
from audiorole_ray.sample import SAMPLE_SERIES

# (episode file, start, end, words): Allison Smith's prompts in the sitcom sample (truth/sitcom)
PROBES = [
    ("sitcom/ep01.wav", 20.197, 23.18, "That feature is not available on this line."),
    ("sitcom/ep01.wav", 37.95, 40.181, "The echo test has been completed."),
]
QUESTION = "Transcribe the speech in this audio. Answer with the spoken words only."
MIN_RECALL = 0.6
# statuses after which a text completion cannot tell more: no answer at all, or the key refused
FINAL = (None, 401, 403)


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
    except ChatError as exc:
        if exc.status in FINAL + (404,):  # no server, a refused key, no such model: not about audio
            raise endpoint_problem(chat, f"the audio judge {chat.model}", exc, "--audio-judge-url", "--judge-key-env") from None
        # the server refused audio outright (llama.cpp answers 500)
        raise ConfigError(f"the audio judge {chat.model} at {chat.url} cannot take input_audio: {exc}; CP refused") from None
    if not result.heard:
        raise ConfigError(f"the audio judge {chat.model} at {chat.url} does not hear its input audio "
                          f"({result.explain()}); it would score audio it never heard, so CP is refused")
    return result


def endpoint_problem(chat: ChatClient, what: str, exc: ChatError, url_flag: str = "--api-url (or OPENAI_BASE_URL)",
                     key_flag: str = "--api-key-env") -> ConfigError:
    """One line: what refused, why, and what to do about it (``url_flag`` / ``key_flag``: the
    options that set this endpoint and its key variable)."""
    import os

    detail = " ".join(str(exc).split())
    where = f"{what} at {chat.url}"
    if exc.status is None:
        return ConfigError(f"{where} cannot be reached ({detail}): check that it runs and this machine reaches it, "
                           f"or give the right {url_flag}")
    if exc.status in (401, 403):
        why = f"refused the key in ${chat.api_key_env}" if os.environ.get(chat.api_key_env) else \
            f"wants a key and ${chat.api_key_env} is not set"
        return ConfigError(f"{where} {why} ({detail}): export a key for this endpoint, or name its variable with {key_flag}")
    if exc.status == 404:
        return ConfigError(f"{where} has no model {chat.model!r} ({detail}): check the model name")
    return ConfigError(f"{where} does not answer ({detail})")


def require_endpoint(chat: ChatClient, what: str) -> str:
    """One cheap request: the endpoint answers, takes the key and knows the model; raise ConfigError
    otherwise. Returns what showed it."""
    try:
        chat.request(lambda c: c.models.retrieve(chat.model))
        return "model listed"
    except ChatError as exc:
        if exc.status in FINAL:
            raise endpoint_problem(chat, what, exc) from None
    # no /models/MODEL route here, or no such model: the chat route tells which
    try:
        chat.create([{"role": "user", "content": "Reply with 1."}], max_tokens=1, temperature=0)
        return "answers"
    except ChatError as exc:
        if exc.status == 400:  # it knows the model and took the key; only the probe's shape (text only) was refused
            return "answers (refused the text-only probe)"
        raise endpoint_problem(chat, what, exc) from None
