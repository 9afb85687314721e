"""The style_sim stand-in: its pitch tracker, its statistics, and that it ranks a character's
own answers above other speakers' on real voices of the sample."""
from __future__ import annotations

import numpy as np
import pytest

from audiorole_ray.eval import style

SR = 16_000


def tone(f0: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    # a few harmonics, like a voice
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3)).astype(np.float32)


@pytest.mark.parametrize("f0", [90.0, 140.0, 220.0, 330.0])
def test_pitch_of_a_harmonic_tone(f0):
    est = style.pitch(tone(f0))
    voiced = est[np.isfinite(est)]
    assert voiced.size > 0.9 * est.size
    assert abs(np.median(voiced) - f0) / f0 < 0.02


def test_noise_is_unvoiced():
    rng = np.random.default_rng(0)
    est = style.pitch(rng.normal(0, 0.1, SR).astype(np.float32))
    assert np.isfinite(est).mean() < 0.2


def test_features_see_pauses_rate_and_pitch():
    rng = np.random.default_rng(1)
    word = lambda f, d: tone(f, d) * np.hanning(int(d * SR)).astype(np.float32)  # noqa: E731
    gap = lambda s: rng.normal(0, 1e-4, int(s * SR)).astype(np.float32)  # noqa: E731
    fast = np.concatenate([x for _ in range(10) for x in (word(120, 0.15), gap(0.05))])
    slow = np.concatenate([x for _ in range(4) for x in (word(200, 0.3), gap(0.5))])
    f, s = style.features(fast), style.features(slow)
    assert f["syllable_rate"] > 1.5 * s["syllable_rate"]
    assert s["pause_ratio"] > 0.3 and f["pause_ratio"] < 0.1 and s["pause_mean_s"] == pytest.approx(0.5, abs=0.12)
    assert s["f0_median_st"] - f["f0_median_st"] == pytest.approx(12 * np.log2(200 / 120), abs=0.5)


def test_similarity_is_one_at_the_profile_and_falls_away():
    feats = [{k: v + d for k, v in zip(style.FEATURES, (10, 2, 4, 0.2, 0.3, 8))} for d in (-0.1, 0.0, 0.1)]
    prof = style.profile(feats)
    assert style.similarity(feats[1], prof) == pytest.approx(1.0)
    far = {**feats[1], "f0_median_st": 20.0}
    assert style.similarity(far, prof) < 0.01
    with pytest.raises(ValueError):
        style.profile([])


def test_short_or_silent_clips_are_refused():
    with pytest.raises(ValueError):
        style.features(np.zeros(100, np.float32))
    with pytest.raises(ValueError):
        style.features(np.zeros(SR, np.float32))


def test_own_voice_scores_above_other_voices(tmp_path):
    """On the sample's real voices: Allison's held-out answers against her profile score higher
    than the other speakers' turns that prompted them (the copy-input floor)."""
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    from audiorole_ray.eval.items import ClipReader, reference_rows, exchange_items

    corpus = write_truth_corpus(tmp_path / "c")
    clips = ClipReader(str(corpus))
    refs = reference_rows(str(corpus), "sitcom_spk00", 64)
    prof = style.profile([style.features(clips(r.audio_path, r.audio_key)) for r in refs.itertuples()])
    own, other = [], []
    for it in exchange_items(str(corpus)):
        own.append(style.similarity(style.features(clips(it["b_audio_path"], it["b_audio_key"])), prof))
        other.append(style.similarity(style.features(clips(it["a_audio_path"], it["a_audio_key"])), prof))
    assert np.mean(own) > np.mean(other) + 0.2
