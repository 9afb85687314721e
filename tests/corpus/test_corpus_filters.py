import pytest

from audiorole_ray.filters import FilterConfig, duration_verdict, foreign_share, text_drop_reason

C = FilterConfig()


def test_duration_boundaries():
    assert duration_verdict(10.0, 10.99, C) == ("too_short", 10.99)
    assert duration_verdict(10.0, 11.0, C) == ("", 11.0)
    assert duration_verdict(0.1, 1.1, C) == ("", 1.1)  # 0.9999999 s in floats is still 1 s
    assert duration_verdict(0.0, 30.0, C) == ("", 30.0)
    assert duration_verdict(5.0, 35.001, C) == ("", 35.0)  # truncated to 30 s


@pytest.mark.parametrize("n,reason", [(1, "text_too_short"), (2, ""), (512, ""), (513, "text_too_long")])
def test_text_length_boundaries(n, reason):
    assert text_drop_reason("a" * n, "en", C) == reason


def test_text_is_stripped_before_counting():
    assert text_drop_reason("  a  ", "en", C) == "text_too_short"


def test_purity_boundary_exactly_ten_percent():
    # 9 Latin letters + 1 CJK = 0.1 exactly: kept; 8 + 1: 0.111: dropped
    assert foreign_share("abcdefghi中", "en") == pytest.approx(0.1)
    assert text_drop_reason("abcdefghi中", "en", C) == ""
    assert text_drop_reason("abcdefgh中", "en", C) == "foreign_script"


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
