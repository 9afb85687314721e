"""Quality filters (SPEC §1 step 7), applied in this order, each counting what it drops.

- duration: drop utterances shorter than 1 s, truncate those longer than 30 s;
- text length: drop transcripts with fewer than 2 or more than 512 characters;
- language purity: drop when the share of letters outside the target language's scripts
  exceeds 0.1 (e.g. CJK characters in an English series).
Rows are plain dicts with at least ``start``, ``end`` and, after ASR, ``text``.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field

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


@dataclass
class FilterStats:
    dropped: Counter = field(default_factory=Counter)
    truncated: int = 0

    def as_dict(self) -> dict:
        return {"dropped": dict(self.dropped), "truncated": self.truncated}


def _ms(x: float) -> int:
    # compare durations in whole milliseconds: 1.0 s stored as 0.9999999 must not be dropped
    return round(x * 1000)


def filter_duration(rows: list[dict], config: FilterConfig, stats: FilterStats) -> list[dict]:
    kept = []
    for row in rows:
        dur = _ms(row["end"] - row["start"])
        if dur < _ms(config.min_duration_s):
            stats.dropped["too_short"] += 1
            continue
        if dur > _ms(config.max_duration_s):
            row = {**row, "end": row["start"] + config.max_duration_s, "truncated": True}
            stats.truncated += 1
        kept.append(row)
    return kept


def filter_text_length(rows: list[dict], config: FilterConfig, stats: FilterStats) -> list[dict]:
    return _keep(rows, stats, lambda row: _length_reason(row.get("text", ""), config))


def _length_reason(text: str, config: FilterConfig) -> str:
    n = len(text.strip())
    return "text_too_short" if n < config.min_chars else "text_too_long" if n > config.max_chars else ""


def _keep(rows: list[dict], stats: FilterStats, reason_of) -> list[dict]:
    kept = []
    for row in rows:
        reason = reason_of(row)
        if reason:
            stats.dropped[reason] += 1
        else:
            kept.append(row)
    return kept


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


def filter_language(rows: list[dict], language: str, config: FilterConfig, stats: FilterStats) -> list[dict]:
    return _keep(rows, stats, lambda row: _language_reason(row.get("text", ""), language, config))


def _language_reason(text: str, language: str, config: FilterConfig) -> str:
    return "foreign_script" if foreign_share(text, language) > config.max_foreign_share else ""


def text_drop_reason(text: str, language: str, config: FilterConfig) -> str:
    """Why the text filters drop a transcript, in their order; "" when it is kept."""
    return _length_reason(text, config) or _language_reason(text, language, config)


def apply_text_filters(rows: list[dict], language: str, config: FilterConfig | None = None) -> tuple[list[dict], FilterStats]:
    """Text length then language purity, for rows that have been transcribed."""
    config = config or FilterConfig()
    stats = FilterStats()
    return _keep(rows, stats, lambda row: text_drop_reason(row.get("text", ""), language, config)), stats
