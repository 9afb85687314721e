"""Read a built corpus: what the tokenizer, trainers, inference and evaluation jobs consume.

Stable entry points, whatever the corpus layout on disk: dialogue rows as a pandas DataFrame,
the shards that hold their audio, and one clip's audio.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from audiorole_ray.corpus.shards import read_shard
from audiorole_ray.errors import InputError
from audiorole_ray.io.audio import decode_bytes
from audiorole_ray.io.storage import join

DIALOGUES = "dialogues.parquet"


def read_dialogues(corpus: str, columns: Sequence[str] | None = None, filters=None) -> pd.DataFrame:
    """Dialogue rows (one per A/B turn), a file or a folder of Parquet files alike.

    ``filters`` are pyarrow filters, e.g. ``[("target", "=", "sitcom_spk00"), ("split", "=", "train")]``."""
    fs, path = url_to_fs(join(corpus, DIALOGUES))
    if not fs.exists(path):
        raise InputError(f"{corpus!r} is not a corpus: no {DIALOGUES} (build it with jobs/build_corpus.py)")
    table = pq.read_table(path, filesystem=fs, columns=list(columns) if columns else None, filters=filters)
    return table.to_pandas()


def shard_paths(dialogues: pd.DataFrame) -> list[str]:
    """The shards (relative to the corpus root) that hold the rows' audio, sorted."""
    return sorted(dialogues["audio_path"].unique())


def iter_shard_clips(corpus: str, audio_path: str, keys: set[str] | None = None) -> Iterator[tuple[str, np.ndarray, int, dict]]:
    """(key, mono float32 audio, sample rate, metadata) of a shard's clips, or of ``keys`` only."""
    for key, sample in sorted(read_shard(join(corpus, audio_path)).items()):
        if keys is not None and key not in keys:
            continue
        audio, rate = decode_bytes(sample["flac"])
        yield key, audio, rate, sample.get("json", {})


def clip_audio(corpus: str, audio_path: str, audio_key: str) -> tuple[np.ndarray, int]:
    """One clip's audio (reads its whole shard: for a few clips, not for loops over a corpus)."""
    for _, audio, rate, _ in iter_shard_clips(corpus, audio_path, {audio_key}):
        return audio, rate
    raise InputError(f"no clip {audio_key!r} in {join(corpus, audio_path)}")
