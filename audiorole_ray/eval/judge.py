"""LLM judges behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, transformers serve).

- The answer must be one integer in range and nothing else (surrounding white space allowed):
  no digit is fished out of prose. An unparseable answer is asked once more; if the second is
  no better, the item keeps the raw answers and gets no score.
- Rate limits (429), timeouts, dropped connections and 5xx answers are retried with exponential
  backoff (honouring ``Retry-After``), up to ``max_retries`` times; other HTTP errors are not.
- At most ``concurrency`` requests of one judge are in flight at once in a process.
- The API key is read from the environment variable named by ``api_key_env`` inside the
  process that calls the server, is never an argument, and never appears in a message: error
  texts pass through :func:`redact` before they are recorded.
"""
from __future__ import annotations

import base64
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from audiorole_ray.errors import ConfigError, require
from audiorole_ray.wav import wav_bytes

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# Local servers (vLLM, llama.cpp, transformers serve) want no key, but the client insists on one.
NO_KEY = "no-key"


class ChatError(RuntimeError):
    """A request that failed for good. The message is redacted; ``status`` is the HTTP status,
    None when no answer came (refused connection, timeout)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class JudgeResult:
    score: int | None
    raw: list[str] = field(default_factory=list)  # every answer the judge gave, in order
    error: str = ""
    attempts: int = 0  # HTTP requests made, retries included
    wall_s: float = 0.0


def parse_score(text: str | None, low: int, high: int) -> int | None:
    """The integer the answer consists of, when it is in [low, high]; otherwise None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([+-]?[0-9]+)\s*", text)
    if not m:
        return None
    value = int(m.group(1))
    return value if low <= value <= high else None


def api_key(env_name: str = DEFAULT_KEY_ENV) -> str:
    return os.environ.get(env_name) or NO_KEY


def resolve_api_url(given: str | None) -> tuple[str, str]:
    """The endpoint of ``openai:`` systems and where it came from: ``--api-url`` if given, else
    ``OPENAI_BASE_URL``, else the ``openai`` client's own default. Resolved once in the driver, so
    Ray workers (whose environment may differ) send the key to the same host."""
    if given:
        return given, "--api-url"
    if os.environ.get("OPENAI_BASE_URL"):
        return os.environ["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
    openai = require("openai", "openai", "LLM judges and API systems")
    return str(openai.OpenAI(api_key=NO_KEY, max_retries=0).base_url).rstrip("/"), "the openai client's default"


def key_env(given: str | None, flag: str) -> str:
    """The variable a key is read from: a variable named on the command line must be set (the
    user meant a key); the default one may be unset, for local servers that want none."""
    if given and not os.environ.get(given):
        raise ConfigError(f"{flag} {given}: that environment variable is not set; export it, or leave {flag} out")
    return given or DEFAULT_KEY_ENV


def key_note(env_name: str) -> str:
    """Where a key comes from, for printing: the variable's name and whether it is set, never its value."""
    return f"key from ${env_name}" + ("" if os.environ.get(env_name) else " (not set)")


def redact(text: str, secret: str | None) -> str:
    """``text`` without the secret or anything that looks like a piece of it: servers echo
    masked keys such as ``sk-abc****wxyz`` in their error messages."""
    if not secret or secret == NO_KEY:
        return text
    text = text.replace(secret, "[redacted]")
    pieces = (secret[:8], secret[-6:]) if len(secret) >= 16 else ()

    def scrub(m: re.Match) -> str:
        tok = m.group(0)
        return "[redacted]" if "**" in tok or any(p in tok for p in pieces) else tok

    return re.sub(r"[^\s'\"(),]+", scrub, text)


def wav_base64(audio: np.ndarray, sample_rate: int) -> str:
    """16-bit mono WAV, base64 without a ``data:`` prefix: the ``input_audio`` format."""
    return base64.b64encode(wav_bytes(audio, sample_rate)).decode("ascii")


def audio_part(audio: np.ndarray, sample_rate: int) -> dict:
    return {"type": "input_audio", "input_audio": {"data": wav_base64(audio, sample_rate), "format": "wav"}}


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


class ChatClient:
    """One OpenAI-compatible endpoint: retries with backoff, bounded concurrency, redacted errors."""

    # semaphores are per endpoint and process, shared by every client object made for it
    _gates: dict[tuple[str, str], threading.BoundedSemaphore] = {}
    _gates_lock = threading.Lock()

    def __init__(self, url: str, model: str, api_key_env: str = DEFAULT_KEY_ENV, timeout_s: float = 120.0,
                 max_retries: int = 6, backoff_s: float = 1.0, max_backoff_s: float = 60.0, concurrency: int = 4,
                 connect_timeout_s: float | None = None):
        if not url or not model:
            raise ConfigError("a judge or API system needs both an endpoint URL and a model name")
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        self.url, self.model, self.api_key_env = url, model, api_key_env
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.connect_timeout_s = connect_timeout_s  # None: timeout_s for connecting too
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.concurrency = concurrency
        self._client = None
        with self._gates_lock:
            self._gate = self._gates.setdefault((url, model), threading.BoundedSemaphore(concurrency))

    def __getstate__(self):  # travels to Ray workers without the HTTP client (or any key)
        state = dict(self.__dict__)
        state["_client"] = None
        state["_gate"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        with self._gates_lock:
            self._gate = self._gates.setdefault((self.url, self.model), threading.BoundedSemaphore(self.concurrency))

    @property
    def client(self):
        if self._client is None:
            openai = require("openai", "openai", "LLM judges and API systems")
            # retries are ours (counted, with Retry-After), so the client's own are off
            timeout = openai.Timeout(self.timeout_s, connect=self.connect_timeout_s) if self.connect_timeout_s else self.timeout_s
            self._client = openai.OpenAI(base_url=self.url, api_key=api_key(self.api_key_env), timeout=timeout, max_retries=0)
        return self._client

    def describe(self) -> dict:
        return {"url": self.url, "model": self.model, "api_key_env": self.api_key_env}

    def redact(self, text: str) -> str:
        return redact(text, os.environ.get(self.api_key_env))

    def create(self, messages: list[dict], **kwargs):
        """One chat completion, retried on rate limits and transient failures.
        Returns (response, attempts); raises the last error, redacted, as :class:`ChatError`."""
        return self.request(lambda c: c.chat.completions.create(model=self.model, messages=messages, **kwargs))

    def request(self, call):
        """``call(client)`` with this endpoint's retries and gate; returns (result, attempts)."""
        import openai

        retryable = (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError)
        attempts = 0
        while True:
            attempts += 1
            try:
                with self._gate:
                    return call(self.client), attempts
            except retryable as exc:
                if attempts > self.max_retries:
                    raise ChatError(self.redact(f"{type(exc).__name__} after {attempts} attempts: {exc}"),
                                    getattr(exc, "status_code", None)) from None
                time.sleep(self._delay(exc, attempts))
            except openai.OpenAIError as exc:
                raise ChatError(self.redact(f"{type(exc).__name__}: {exc}"), getattr(exc, "status_code", None)) from None

    def _delay(self, exc, attempt: int) -> float:
        retry_after = None
        response = getattr(exc, "response", None)
        if response is not None:
            try:
                retry_after = float(response.headers.get("retry-after"))
            except (TypeError, ValueError):
                retry_after = None
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        wait = retry_after if retry_after is not None else base * (0.5 + random.random() / 2)
        return min(wait, self.max_backoff_s)


class ScoreJudge:
    """Asks for an integer score at temperature 0; one more ask on an unparseable answer."""

    def __init__(self, chat: ChatClient, low: int = 0, high: int = 2, max_tokens: int = 8):
        self.chat, self.low, self.high, self.max_tokens = chat, low, high, max_tokens

    def score(self, content: list[dict]) -> JudgeResult:
        t = time.perf_counter()
        result = JudgeResult(score=None)
        messages = [{"role": "user", "content": content}]
        for _ in range(2):  # the answer, and one retry when it cannot be parsed
            try:
                response, n = self.chat.create(messages, temperature=0, max_tokens=self.max_tokens)
            except RuntimeError as exc:
                result.error = str(exc)
                break
            result.attempts += n
            text = _message_text(response)
            result.raw.append(text if text is not None else "")
            result.score = parse_score(text, self.low, self.high)
            if result.score is not None:
                result.error = ""
                break
            result.error = f"unparseable answer (expected one integer {self.low}-{self.high})"
        result.wall_s = time.perf_counter() - t
        return result


def _message_text(response) -> str | None:
    try:
        return response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None
