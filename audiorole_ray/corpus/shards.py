"""WebDataset tar shards: each sample is ``<key>.flac`` plus ``<key>.json`` (its metadata).

One shard per episode, ``audio/<series>/<stem>.tar`` (see :mod:`audiorole_ray.corpus.layout`).
"""
from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable

from audiorole_ray.io.storage import read_bytes


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # identical input gives byte-identical shards
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def shard_bytes(samples: Iterable[tuple[str, bytes, dict]]) -> bytes:
    """A tar of (key, flac bytes, metadata) samples."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, flac, meta in samples:
            if "." in key or "/" in key:
                raise ValueError(f"WebDataset key {key!r} must not contain '.' or '/'")
            _add(tar, f"{key}.flac", flac)
            _add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
    return buf.getvalue()


def read_shard(uri: str) -> dict[str, dict]:
    """{key: {"flac": bytes, "json": dict}} of a shard (for checks and small jobs)."""
    out: dict[str, dict] = {}
    with tarfile.open(fileobj=io.BytesIO(read_bytes(uri)), mode="r") as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            data = tar.extractfile(member).read()
            out.setdefault(key, {})[ext] = json.loads(data) if ext == "json" else data
    return out
