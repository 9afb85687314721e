"""Read a corpus's speech tokens: what the LM and decoder trainers consume.

    from audiorole_ray.tokens import read_tokenizer_info, read_tokens, tokens_by_key
    info = read_tokenizer_info("out/corpus", "whisper-units")  # vocab_size, frame_rate, ...
    tokens = tokens_by_key("out/corpus", "whisper-units")       # {audio_key: [ids]}
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from audiorole_ray.errors import InputError
from audiorole_ray.io.storage import join, read_json

TOKENIZER_FILE = "tokenizer.json"


def tokens_uri(corpus: str, tokenizer: str) -> str:
    return join(corpus, "tokens", tokenizer)


def read_tokenizer_info(corpus: str, tokenizer: str) -> dict:
    """``tokenizer.json``: name, frame_rate, vocab_size (ids run 0..vocab_size-1), codebook_hash,
    model, settings (the hash the token files carry) and the last run's coverage."""
    uri = join(tokens_uri(corpus, tokenizer), TOKENIZER_FILE)
    fs, path = url_to_fs(uri)
    if not fs.exists(path):
        raise InputError(f"no {tokenizer!r} tokens in {corpus!r} (no {uri}): run jobs/tokenize_corpus.py --corpus {corpus} --tokenizer {tokenizer}")
    return read_json(uri)


def read_tokens(corpus: str, tokenizer: str, keys: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per clip: audio_key, audio_path, tokens (list of ints), frame_rate, n_tokens,
    duration. Only token files made with the settings ``tokenizer.json`` names are read, so a
    half-finished re-run with a new codebook never mixes two codebooks' ids."""
    info = read_tokenizer_info(corpus, tokenizer)
    fs, root = url_to_fs(join(tokens_uri(corpus, tokenizer), "shards"))
    tables = []
    for path in sorted(p for p in fs.find(root) if p.endswith(".parquet")):
        with fs.open(path, "rb") as f:
            table = pq.read_table(f)
        if (table.schema.metadata or {}).get(b"audiorole.settings", b"").decode() == info["settings"]:
            tables.append(table.replace_schema_metadata(None))
    if not tables:
        raise InputError(f"no token files of the current {tokenizer!r} settings under {corpus!r}: re-run jobs/tokenize_corpus.py")
    df = pa.concat_tables(tables).to_pandas()
    if keys is not None:
        df = df[df.audio_key.isin(set(keys))]
    return df.sort_values("audio_key").reset_index(drop=True)


def tokens_by_key(corpus: str, tokenizer: str, keys: Iterable[str] | None = None) -> dict[str, list[int]]:
    df = read_tokens(corpus, tokenizer, keys)
    return {k: [int(t) for t in v] for k, v in zip(df.audio_key, df.tokens)}
