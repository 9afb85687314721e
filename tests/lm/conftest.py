"""Fixtures of the LM tests: a synthetic corpus with speech tokens and the tiny tokenizer."""
from __future__ import annotations

from pathlib import Path

import pytest
from lm_fixtures import write_corpus


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("lm") / "corpus")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from audiorole_ray.lm.tiny import build_tokenizer

    return build_tokenizer(64)
