import pytest

from audiorole_ray.filters import (
    FilterConfig,
    FilterStats,
    apply_text_filters,
    filter_duration,
    foreign_share,
)


def test_duration_boundaries():
    rows = [{"start": 10.0, "end": 10.99}, {"start": 10.0, "end": 11.0}, {"start": 0.1, "end": 1.1}, {"start": 0.0, "end": 30.0}, {"start": 5.0, "end": 35.001}]
    stats = FilterStats()
    kept = filter_duration(rows, FilterConfig(), stats)
    assert [(r["start"], r["end"]) for r in kept] == [(10.0, 11.0), (0.1, 1.1), (0.0, 30.0), (5.0, 35.0)]
    assert kept[-1]["truncated"] and "truncated" not in kept[2]
    assert stats.as_dict() == {"dropped": {"too_short": 1}, "truncated": 1}


@pytest.mark.parametrize("n,kept", [(1, False), (2, True), (512, True), (513, False)])
def test_text_length_boundaries(n, kept):
    rows, stats = apply_text_filters([{"text": "a" * n}], "en")
    assert bool(rows) == kept
    assert sum(stats.dropped.values()) == (0 if kept else 1)


def test_text_is_stripped_before_counting():
    rows, _ = apply_text_filters([{"text": "  a  "}], "en")
    assert rows == []


def test_purity_boundary_exactly_ten_percent():
    # 9 Latin letters + 1 CJK = 0.1 exactly: kept; 8 + 1: 0.111: dropped
    assert foreign_share("abcdefghi中", "en") == pytest.approx(0.1)
    kept, _ = apply_text_filters([{"text": "abcdefghi中"}], "en")
    dropped, stats = apply_text_filters([{"text": "abcdefgh中"}], "en")
    assert len(kept) == 1 and dropped == [] and stats.dropped["foreign_script"] == 1


def test_foreign_share_counts_letters_only():
    assert foreign_share("Hello, world! 123 ...", "en") == 0.0
    assert foreign_share("Café déjà vu", "fr") == 0.0
    assert foreign_share("你好 hello", "zh") == pytest.approx(5 / 7)
    assert foreign_share("こんにちは世界", "ja") == 0.0
    assert foreign_share("Привет", "en") == 1.0
    assert foreign_share("", "en") == 0.0
    with pytest.raises(ValueError, match="klingon"):
        foreign_share("x", "klingon")


@pytest.mark.parametrize("bad", [dict(min_duration_s=0), dict(min_duration_s=40), dict(min_chars=600), dict(max_foreign_share=1.5)])
def test_config_validated(bad):
    with pytest.raises(ValueError):
        FilterConfig(**bad)
