"""Pack short clips into one fixed-length ASR window, and give each clip back its words.

Whisper-class models pad every input to a 30 s window, so a 2 s utterance costs as much as
30 s of audio. Packing consecutive utterances (with a short silence between them) into one
window and assigning the recognised words back by their timestamps cut ASR time 5x on the
sample series at a slightly lower WER (measured in benchmarks/RESULTS.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pack:
    clips: tuple[int, ...]  # indices into the caller's list, in window order
    spans: tuple[tuple[float, float], ...]  # where each clip lies in the window, seconds


def pack_clips(durations: list[float], window_s: float = 30.0, gap_s: float = 0.5) -> list[Pack]:
    """Greedy, order-preserving packing: a clip joins the current window while the window stays
    within ``window_s``; a clip longer than the window gets a window of its own."""
    packs: list[Pack] = []
    clips: list[int] = []
    spans: list[tuple[float, float]] = []
    pos = 0.0
    for i, d in enumerate(durations):
        if clips and pos + d > window_s:
            packs.append(Pack(tuple(clips), tuple(spans)))
            clips, spans, pos = [], [], 0.0
        clips.append(i)
        spans.append((pos, pos + d))
        pos += d + gap_s
    if clips:
        packs.append(Pack(tuple(clips), tuple(spans)))
    return packs


def window_audio(clips: list[np.ndarray], pack: Pack, sample_rate: int, gap_s: float = 0.5) -> np.ndarray:
    gap = np.zeros(round(gap_s * sample_rate), np.float32)
    parts = []
    for k, i in enumerate(pack.clips):
        if k:
            parts.append(gap)
        parts.append(clips[i].astype(np.float32, copy=False))
    return np.concatenate(parts)


def assign_words(words: list[tuple[float, float, str]], spans: tuple[tuple[float, float], ...]) -> list[str]:
    """Text per span from (start, end, word) triples: a word goes to the span holding its
    midpoint, or the nearest span when it falls in a gap (timestamps drift by ~0.1 s)."""
    texts = [""] * len(spans)
    for start, end, word in words:
        mid = (start + end) / 2
        best = min(range(len(spans)), key=lambda k: _distance(mid, spans[k]))
        texts[best] += word
    return [" ".join(t.split()) for t in texts]


def _distance(t: float, span: tuple[float, float]) -> float:
    lo, hi = span
    return 0.0 if lo <= t <= hi else min(abs(t - lo), abs(t - hi))
