"""Parquet outputs on any fsspec filesystem (local or s3://)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs


def write_parquet(uri: str, rows: list[dict], schema: pa.Schema) -> None:
    fs, path = url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f)


def read_parquet(uri: str):
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


EPISODES = pa.schema(
    [
        ("series", pa.string()),
        ("episode_id", pa.string()),
        ("uri", pa.string()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("channels", pa.int32()),
        ("codec", pa.string()),
        ("speech_s", pa.float64()),
        ("status", pa.string()),
    ]
)
SPEAKERS = pa.schema(
    [
        ("series", pa.string()),
        ("speaker_id", pa.string()),
        ("speech_s", pa.float64()),
        ("n_episodes", pa.int32()),
        ("is_main", pa.bool_()),
    ]
)
ERRORS = pa.schema([("uri", pa.string()), ("episode_id", pa.string()), ("stage", pa.string()), ("error", pa.string())])
DIALOGUES = pa.schema(
    [
        ("dialogue_id", pa.string()),
        ("turn_index", pa.int32()),
        ("role", pa.string()),  # "A" stimulus (anyone else) or "B" response (the target)
        ("kind", pa.string()),  # "multi" (whole dialogue) or "single" (one A/B pair, train only)
        ("split", pa.string()),
        ("series", pa.string()),
        ("episode_id", pa.string()),
        ("scene_id", pa.string()),
        ("target", pa.string()),
        ("speaker_id", pa.string()),
        ("speakers", pa.list_(pa.string())),
        ("start", pa.float64()),
        ("end", pa.float64()),
        ("duration", pa.float64()),
        ("text", pa.string()),
        ("audio_path", pa.string()),  # shard relative to the corpus root
        ("audio_key", pa.string()),  # sample key in the shard: <key>.flac and <key>.json
        ("truncated", pa.bool_()),
    ]
)
