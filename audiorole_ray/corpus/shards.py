"""WebDataset tar shards: each sample is ``<key>.flac`` plus ``<key>.json`` (its metadata).

One shard per episode, ``audio/shard-<n>.tar`` with ``n`` the episode's position in the sorted
input: a re-run rewrites exactly the shards of the episodes it redoes and nothing else.
"""
from __future__ import annotations

import io
import json
import posixpath
import tarfile
from collections.abc import Iterable

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem


def shard_name(index: int) -> str:
    return f"audio/shard-{index:06d}.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # identical input gives byte-identical shards
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shard(uri: str, samples: Iterable[tuple[str, bytes, dict]]) -> int:
    """Write (key, flac bytes, metadata) samples to a tar at ``uri``; returns the sample count.
    Local files go through a temporary name so a crash never leaves a torn shard behind."""
    fs, path = url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    target = path + ".tmp" if isinstance(fs, LocalFileSystem) else path
    n = 0
    with fs.open(target, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, flac, meta in samples:
            if "." in key or "/" in key:
                raise ValueError(f"WebDataset key {key!r} must not contain '.' or '/'")
            _add(tar, f"{key}.flac", flac)
            _add(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode())
            n += 1
    if target != path:
        fs.mv(target, path)
    return n


def read_shard(uri: str) -> dict[str, dict]:
    """{key: {"flac": bytes, "json": dict}} of a shard (for checks and small jobs)."""
    fs, path = url_to_fs(uri)
    out: dict[str, dict] = {}
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r") as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            data = tar.extractfile(member).read()
            out.setdefault(key, {})[ext] = json.loads(data) if ext == "json" else data
    return out
