"""Token files: one Parquet file per corpus shard, ``<tokens dir>/shards/<shard id>.parquet``,
one row per clip. Each file carries the fingerprint of the settings that made it (tokenizer,
model, codebook hash) in its metadata, so readers never mix two codebooks' ids."""
from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from audiorole_ray.io.storage import read_bytes, write_bytes

SETTINGS_KEY = b"audiorole.settings"
FAILED_KEY = b"audiorole.failed"
TOKENS_SCHEMA = pa.schema([
    ("audio_key", pa.string()),
    ("audio_path", pa.string()),
    ("tokens", pa.list_(pa.int32())),
    ("frame_rate", pa.float32()),
    ("n_tokens", pa.int32()),
    ("duration", pa.float64()),  # seconds of the clip as stored in the shard
])


def token_file_bytes(rows: list[dict], settings: str, failed: dict[str, str] | None = None) -> bytes:
    meta = {SETTINGS_KEY: settings}
    if failed:
        meta[FAILED_KEY] = json.dumps(failed, sort_keys=True)
    table = pa.Table.from_pylist(rows, schema=TOKENS_SCHEMA).replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_tokens(uri: str, rows: list[dict], settings: str, failed: dict[str, str] | None = None) -> int:
    """Write one shard's token rows (through a temporary name on local disks); returns the size.
    ``failed`` (clip key -> reason), if given, is kept in the file's metadata too."""
    return write_bytes(uri, token_file_bytes(rows, settings, failed))


def file_settings(table: pa.Table) -> str:
    return (table.schema.metadata or {}).get(SETTINGS_KEY, b"").decode()


def read_token_rows(uri: str, settings: str) -> list[dict]:
    """The rows of a token file made with ``settings``; [] when there is none, or it was made
    with other settings or is not Parquet (nothing worth keeping). A storage failure raises."""
    try:
        table = pq.read_table(io.BytesIO(read_bytes(uri)))
    except (FileNotFoundError, pa.ArrowException):
        return []
    return table.to_pylist() if file_settings(table) == settings else []
