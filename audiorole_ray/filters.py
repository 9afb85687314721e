"""Quality filters (SPEC §1 step 7), applied in this order, each counting what it drops.

- duration: drop utterances shorter than 1 s, truncate those longer than 30 s;
- text length: drop transcripts with fewer than 2 or more than 512 characters;
- language purity: drop when the share of letters outside the target language's scripts
  exceeds 0.1 (e.g. CJK characters in an English series).
Each filter is one function that gives a verdict on one utterance.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Scripts a language is written in, by the first word of Unicode character names.
LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    **{lang: frozenset({"LATIN"}) for lang in ("en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "tr", "vi", "id")},
    "zh": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
    "ru": frozenset({"CYRILLIC"}),
    "uk": frozenset({"CYRILLIC"}),
    "el": frozenset({"GREEK"}),
    "ar": frozenset({"ARABIC"}),
    "he": frozenset({"HEBREW"}),
    "hi": frozenset({"DEVANAGARI"}),
    "th": frozenset({"THAI"}),
}


@dataclass(frozen=True)
class FilterConfig:
    min_duration_s: float = 1.0
    max_duration_s: float = 30.0
    min_chars: int = 2
    max_chars: int = 512
    max_foreign_share: float = 0.1

    def __post_init__(self):
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError(f"need 0 < min_duration_s <= max_duration_s, got {self.min_duration_s}, {self.max_duration_s}")
        if not 0 <= self.min_chars <= self.max_chars:
            raise ValueError(f"need 0 <= min_chars <= max_chars, got {self.min_chars}, {self.max_chars}")
        if not 0 <= self.max_foreign_share <= 1:
            raise ValueError(f"max_foreign_share must be in [0, 1], got {self.max_foreign_share}")


def _ms(x: float) -> int:
    # compare durations in whole milliseconds: 1.0 s stored as 0.9999999 must not be dropped
    return round(x * 1000)


def duration_verdict(start: float, end: float, config: FilterConfig) -> tuple[str, float]:
    """(drop reason or "", end): too short is dropped, too long truncated to the maximum."""
    dur = _ms(end - start)
    if dur < _ms(config.min_duration_s):
        return "too_short", end
    if dur > _ms(config.max_duration_s):
        return "", start + config.max_duration_s
    return "", end


def script_of(ch: str) -> str | None:
    """The script of a letter ("LATIN", "CJK", "CYRILLIC", ...), None for non-letters."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def foreign_share(text: str, language: str) -> float:
    """Share of letters in ``text`` not written in ``language``'s scripts (0.0 without letters)."""
    try:
        own = LANGUAGE_SCRIPTS[language]
    except KeyError:
        raise ValueError(f"no script known for language {language!r}; known: {sorted(LANGUAGE_SCRIPTS)}") from None
    scripts = [s for s in map(script_of, text) if s is not None]
    if not scripts:
        return 0.0
    return sum(s not in own for s in scripts) / len(scripts)


def text_drop_reason(text: str, language: str, config: FilterConfig) -> str:
    """Why the text filters drop a transcript, in their order (length, then script purity);
    "" when it is kept."""
    n = len(text.strip())
    if n < config.min_chars:
        return "text_too_short"
    if n > config.max_chars:
        return "text_too_long"
    return "foreign_script" if foreign_share(text, language) > config.max_foreign_share else ""
