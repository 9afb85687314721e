"""Word error rate with a light normalisation (case, punctuation, whitespace)."""
from __future__ import annotations

import re

_PUNCT = re.compile(r"[^\w\s']")


def normalize(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower()).replace("'", "").split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: total word edits over total reference words."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    words = edits = 0
    for r, h in zip(refs, hyps):
        rw = normalize(r)
        words += len(rw)
        edits += edit_distance(rw, normalize(h))
    return edits / words if words else float(bool(edits))
