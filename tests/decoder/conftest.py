"""Fixtures of the decoder and respond tests: a corpus of the sample's main character."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    from decoder_fixtures import write_sample_corpus

    return write_sample_corpus(tmp_path_factory.mktemp("decoder") / "corpus")
