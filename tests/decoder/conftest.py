"""Fixtures of the decoder and respond tests: a corpus of the sample's main character."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    """sitcom's true turns in the corpus layout, Allison Smith (the main character, a real voice)
    as ``sitcom_spk00``; clips of at most 8 s, stored at 24 kHz; whisper-units tokens with a
    64-code codebook fitted on the training clips."""
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("decoder") / "corpus", max_s=8.0, tokens=True, codebook_size=64)
