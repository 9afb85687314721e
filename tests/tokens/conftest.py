"""Fixtures of the token tests: a tiny corpus of real speech, real speech at 16 kHz and a small
whisper-units codebook fitted on it."""
from __future__ import annotations

import pytest
from tokens_corpus import EPISODE, make_corpus, sample_turns

from audiorole_ray.io.audio import load_segments


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root)
    return root


@pytest.fixture(scope="session")
def speech16k():
    """Real speech at 16 kHz: the first ten turns of sitcom ep01 (1.4-9 s each)."""
    return load_segments(str(EPISODE), [(s, e) for _, s, e in sample_turns(10)], 16_000)


@pytest.fixture(scope="session")
def units_codebook(speech16k, tmp_path_factory):
    """A 16-code whisper-units codebook fitted on those turns, saved to a file."""
    import numpy as np

    from audiorole_ray.tokens.codebook import fit_codebook
    from audiorole_ray.tokens.whisper_units import WhisperUnits

    frames = np.concatenate(WhisperUnits().encode(speech16k))
    path = tmp_path_factory.mktemp("codebook") / "codebook.npz"
    fit_codebook(frames, 16, seed=0).save(str(path))
    return path
