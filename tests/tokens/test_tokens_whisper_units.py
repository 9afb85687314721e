"""The embedded tokenizer (Whisper tiny.en encoder + k-means codes): 12.5 tokens per second for
any clip length, and the same codes for the same clip whatever else is in the batch."""
import math

import numpy as np
import pytest

from audiorole_ray import registry
from audiorole_ray.errors import ConfigError
from audiorole_ray.tokens import TOKEN_RATE, expected_tokens
from audiorole_ray.tokens.codebook import fit_codebook, load_codebook
from audiorole_ray.tokens.whisper_units import WhisperUnits

SR = 16_000


@pytest.fixture(scope="module")
def units(units_codebook):
    tok = registry.create("tokenizer", "whisper-units", codebook=str(units_codebook))
    tok.load()
    return tok


def test_frame_rate_for_every_length(units, speech16k):
    long = np.concatenate(speech16k)  # 53 s of real speech: a 30 s piece and a rest
    assert 30 * SR < long.size < 60 * SR
    clips = [long[:1], long[:1279], long[:1280], long[:1281], long[: SR], speech16k[0], speech16k[3],
             long[: 30 * SR], long[: 30 * SR + 1], long]
    tokens = units.tokenize(clips)
    for clip, t in zip(clips, tokens):
        # one token per started 80 ms step, 30 s pieces (exactly 375 tokens each) included
        assert len(t) == math.ceil(clip.size / 1280) == expected_tokens(clip.size)
        assert abs(len(t) - clip.size / SR * TOKEN_RATE) < 2
    for clip, f in zip(clips[:5], units.encode(clips[:5])):
        assert f.shape == (math.ceil(clip.size / 1280), 384) and f.dtype == np.float32
    assert units.frame_rate == 12.5 and units.vocab_size == 16


def test_codes_are_in_range_and_used(units, speech16k):
    ids = np.concatenate(units.tokenize(speech16k))
    assert ids.min() >= 0 and ids.max() < units.vocab_size
    assert len(np.unique(ids)) >= 12  # fitted on these clips: nearly every code occurs


def test_same_clip_same_codes(units, units_codebook, speech16k):
    alone = [units.tokenize([c])[0] for c in speech16k[:4]]
    batch = units.tokenize(speech16k[:4])
    reordered = units.tokenize([speech16k[3], speech16k[0], speech16k[2], speech16k[1]])
    assert batch == alone
    assert reordered == [alone[3], alone[0], alone[2], alone[1]]
    fresh = WhisperUnits(codebook=str(units_codebook))  # a new process would load the same way
    assert fresh.tokenize(speech16k[:4]) == alone


def test_codebook_decides_the_codes(units, speech16k):
    frames = np.concatenate(units.encode(speech16k))
    other = fit_codebook(frames, 16, seed=1)
    assert other.hash != load_codebook(units.codebook_uri).hash
    assert WhisperUnits(codebook=other).tokenize(speech16k[:3]) != units.tokenize(speech16k[:3])
    d = units.describe()
    assert d["codebook_hash"] == units.codebook.hash and d["vocab_size"] == 16 and d["frame_rate"] == 12.5
    assert units.settings()["codebook_hash"] == units.codebook.hash


def test_errors(units):
    with pytest.raises(ConfigError, match="--fit-codebook"):
        WhisperUnits().tokenize([np.zeros(SR, np.float32)])
    with pytest.raises(ValueError, match="empty"):
        units.tokenize([np.zeros(0, np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        units.tokenize([np.full(SR, np.nan, np.float32)])
    from audiorole_ray.errors import MissingModelError

    with pytest.raises(MissingModelError, match="model.bin"):
        WhisperUnits(model="/nonexistent").load()
