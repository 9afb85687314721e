"""Parquet tables on any filesystem (local or s3://), in the schema of their record class."""
from __future__ import annotations

import io

import pyarrow.parquet as pq

from audiorole_ray.io.storage import filesystem, read_bytes, storage_op, write_bytes
from audiorole_ray.records import to_table


def parquet_bytes(records: list, cls: type) -> bytes:
    buf = io.BytesIO()
    pq.write_table(to_table(records, cls), buf)
    return buf.getvalue()


def write_table(uri: str, records: list, cls: type) -> int:
    """Write records (or dicts with the record's keys) as one Parquet file; returns its size."""
    return write_bytes(uri, parquet_bytes(records, cls))


def read_table(uri: str, columns=None, filters=None):
    """A Parquet file, or a folder of them (a dataset), as an Arrow table."""
    fs, path = filesystem(uri)
    with storage_op(uri, "read"):
        if fs.isdir(path):
            return pq.read_table(path, filesystem=fs, columns=columns, filters=filters)
    return pq.read_table(io.BytesIO(read_bytes(uri)), columns=columns, filters=filters)
