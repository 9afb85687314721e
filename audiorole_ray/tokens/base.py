"""What every speech tokenizer backend offers: 16 kHz mono clips in, lists of code ids out."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

SAMPLE_RATE = 16_000
TOKEN_RATE = 12.5  # tokens per second, GLM-4-Voice's rate (1280 samples per token at 16 kHz)
SAMPLES_PER_TOKEN = int(SAMPLE_RATE / TOKEN_RATE)


def expected_tokens(n_samples: int, samples_per_token: int = SAMPLES_PER_TOKEN) -> int:
    """Tokens a clip of ``n_samples`` gets: one per started 80 ms step (GLM-4-Voice's count for
    clips up to 30 s; longer clips are cut into 30 s pieces, each rounded up the same way)."""
    return math.ceil(n_samples / samples_per_token)


class SpeechTokenizer(ABC):
    """A speech tokenizer backend, built as ``cls(model=None | "local/path", device=..., **options)``.

    ``vocab_size`` is the number of speech codes: ids run 0..vocab_size-1 (the LM adds one
    ``<|audio_N|>`` token per code). ``load()`` is called once per worker, before ``tokenize``."""

    name: str = "tokenizer"
    frame_rate: float = TOKEN_RATE

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def tokenize(self, clips: list[np.ndarray]) -> list[list[int]]:
        """One list of code ids per clip, in order; clips are 16 kHz mono float32."""

    def describe(self) -> dict:
        """What tokens.json records: enough to tell whether two token sets are comparable."""
        return {"name": self.name, "frame_rate": self.frame_rate, "vocab_size": self.vocab_size}

    def settings(self) -> dict:
        """Everything that changes the tokens: a change redoes them."""
        return self.describe()
