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
    """{key: {"flac": bytes, "json": dict}} of a shard (for checks and small jobs); a damaged
    (cut) shard raises ``tarfile.ReadError``."""
    samples, damage = read_shard_partial(uri)
    if damage:
        raise tarfile.ReadError(damage)
    return samples


def read_shard_partial(uri: str) -> tuple[dict[str, dict], str | None]:
    """The samples of a shard up to the first member that cannot be read, and why reading
    stopped there (None: the whole shard was read). A truncated tar keeps the members before the
    cut. A missing shard raises FileNotFoundError."""
    data = read_bytes(uri)
    out: dict[str, dict] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                key, ext = member.name.split(".", 1)
                blob = tar.extractfile(member).read()
                out.setdefault(key, {})[ext] = json.loads(blob) if ext == "json" else blob
            end = tar.offset
    except tarfile.TarError as exc:
        return out, _damage(uri, data, out, str(exc))
    # tarfile ends quietly at a cut on a header boundary; a whole tar goes on with zero blocks
    rest = data[end : end + tarfile.BLOCKSIZE]
    if not rest or any(rest):
        return out, _damage(uri, data, out, "no end-of-archive block")
    return out, None


def _damage(uri: str, data: bytes, read: dict, why: str) -> str:
    return f"{uri} is cut or damaged ({len(data)} bytes, {len(read)} clips read before it): {why}"
