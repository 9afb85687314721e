"""Local paths and object-store URIs (s3://...) through fsspec, so every stage reads and writes alike.

Object storage gets bounded waits: connect and read timeouts and a bounded number of attempts
(``AUDIOROLE_STORAGE_CONNECT_TIMEOUT``, ``..._READ_TIMEOUT``, ``..._ATTEMPTS``; the jobs set them
from ``--storage-timeout``/``--storage-attempts`` and pass them to Ray workers), and every failure
becomes one :class:`StorageError` line naming the URI and the cause. Missing files stay
``FileNotFoundError``, which callers act on.
"""
from __future__ import annotations

import json
import os
import posixpath
import uuid
from contextlib import contextmanager
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from audiorole_ray.errors import AudioRoleError, InputError, StorageError
from audiorole_ray.records import Episode

# Containers FFmpeg reads that we accept as episodes; anything else in the input folder is ignored.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".mp4", ".mkv", ".ogg", ".opus", ".webm", ".mka"}
)

# env var -> default; read in every process, so Ray workers get what the driver was given
STORAGE_SETTINGS = {
    "AUDIOROLE_STORAGE_CONNECT_TIMEOUT": 10.0,
    "AUDIOROLE_STORAGE_READ_TIMEOUT": 20.0,
    "AUDIOROLE_STORAGE_ATTEMPTS": 3,
}


def storage_settings() -> dict[str, float]:
    return {k: type(v)(os.environ.get(k, v)) for k, v in STORAGE_SETTINGS.items()}


def join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts) if "://" in base else posixpath.join(base, *parts)


def _protocol(uri: str) -> str:
    return uri.split("://", 1)[0] + "://" if "://" in uri else ""


_LOCAL = LocalFileSystem()


def filesystem(uri: str):
    """(fsspec filesystem, path) for ``uri``, with the storage timeouts applied to object stores."""
    if "://" not in uri or uri.startswith("file://"):  # the common case, without fsspec's URL parsing
        return _LOCAL, os.path.abspath(uri.removeprefix("file://"))
    options: dict[str, Any] = {}
    if uri.startswith(("s3://", "s3a://")):
        s = storage_settings()
        attempts = max(1, int(s["AUDIOROLE_STORAGE_ATTEMPTS"]))
        options["config_kwargs"] = {
            "connect_timeout": s["AUDIOROLE_STORAGE_CONNECT_TIMEOUT"],
            "read_timeout": s["AUDIOROLE_STORAGE_READ_TIMEOUT"],
            "retries": {"max_attempts": attempts, "mode": "standard"},
        }
    try:
        fs, path = url_to_fs(uri, **options)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc
    if options:
        fs.retries = 1  # botocore retries (bounded above); s3fs would multiply them by its own 5
    return fs, path


@contextmanager
def storage_op(uri: str, what: str):
    """Turn any storage failure into one StorageError line; FileNotFoundError passes through."""
    try:
        yield
    except (FileNotFoundError, AudioRoleError):
        raise
    except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and OS errors alike
        cause = str(exc).splitlines()[0] if str(exc) else ""
        raise StorageError(f"cannot {what} {uri}: {type(exc).__name__}{': ' + cause if cause else ''}") from exc


def list_files(root_uri: str, recursive: bool = True) -> dict[str, int]:
    """{path relative to the folder: size} of the files below a folder ({} when it does not
    exist). Always a fresh listing: workers write here."""
    fs, root = filesystem(root_uri)
    with storage_op(root_uri, "list"):
        fs.invalidate_cache(root)
        if not fs.exists(root):
            return {}
        if recursive:
            found = fs.find(root, detail=True)
        else:
            found = {e["name"]: e for e in fs.ls(root, detail=True) if e.get("type") != "directory"}
    root = fs._strip_protocol(root).rstrip("/")
    return {fs._strip_protocol(p)[len(root) + 1 :]: int(e.get("size") or 0) for p, e in found.items()}


def _fingerprint(entry: dict) -> str:
    size = entry.get("size")
    stamp = entry.get("ETag") or entry.get("mtime") or entry.get("LastModified") or ""
    return f"{size}:{stamp}".replace('"', "")


def list_episodes(input_uri: str, skipped: list[str] | None = None) -> list[Episode]:
    """Find ``<series>/<episode>.<ext>`` files below ``input_uri`` in one listing; sorted, ids
    ``<series>/<stem>``. Audio files elsewhere (in the root, or deeper) are appended to
    ``skipped`` with the reason, for the job to report."""
    fs, root = filesystem(input_uri)
    with storage_op(input_uri, "list"):
        if not fs.exists(root):
            raise InputError(f"input {input_uri!r} does not exist")
        if not fs.isdir(root):
            raise InputError(f"input {input_uri!r} is a file; expected a folder of <series>/<episode>.<ext>")
        found = fs.find(root, detail=True)
    proto = _protocol(input_uri)
    root = root.rstrip("/")
    episodes = []
    for path, entry in sorted(found.items()):
        rel = path[len(root) :].lstrip("/")
        parts = rel.split("/")
        stem, ext = posixpath.splitext(parts[-1])
        if ext.lower() not in AUDIO_EXTENSIONS or stem.startswith("."):
            continue
        if len(parts) != 2:
            if skipped is not None:
                where = "in the input root" if len(parts) == 1 else "nested too deep"
                skipped.append(f"{proto + path}: {where}; expected <series>/<episode>{ext}")
            continue
        episodes.append(Episode(parts[0], f"{parts[0]}/{stem}", proto + path, _fingerprint(entry)))
    if not episodes:
        raise InputError(
            f"no episodes under {input_uri!r}: expected <series>/<episode>.<ext> with ext in {sorted(AUDIO_EXTENSIONS)}"
        )
    ids = [e.episode_id for e in episodes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"two files share an episode id (same stem, other extension): {dupes}")
    return episodes


def write_bytes(uri: str, data: bytes) -> int:
    """Write via a temporary name then rename where the filesystem allows, so readers never see
    half a file (object stores write whole objects anyway); returns the size."""
    fs, path = filesystem(uri)
    with storage_op(uri, "write"):
        if isinstance(fs, LocalFileSystem):
            # only local folders need making: on an object store makedirs would create a missing bucket
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            # unique, and hidden: readers of a folder (Parquet datasets, WebDataset globs) skip it
            tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
            with fs.open(tmp, "wb") as f:
                f.write(data)
            fs.mv(tmp, path)
        else:
            with fs.open(path, "wb") as f:
                f.write(data)
    return len(data)


def write_text(uri: str, text: str) -> int:
    return write_bytes(uri, text.encode())


def write_json(uri: str, obj: Any) -> int:
    return write_text(uri, json.dumps(obj, sort_keys=True))


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with storage_op(uri, "read"):
        # Another process (a Ray worker) may have written this object since this process listed
        # its folder; s3fs would trust the cached listing's size and ETag, so drop it.
        fs.invalidate_cache(path)
        with fs.open(path, "rb") as f:
            return f.read()


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def read_many(uris: list[str]) -> dict[str, bytes]:
    """{uri: bytes} of the files that exist, read concurrently on object stores."""
    if not uris:
        return {}
    fs, _ = filesystem(uris[0])
    with storage_op(uris[0], "read"):
        paths = [filesystem(u)[1] for u in uris]
        for p in paths:
            fs.invalidate_cache(p)
        got = fs.cat(paths, on_error="omit")
    back = dict(zip(paths, uris))
    return {back[p]: data for p, data in got.items() if p in back}


def remove(uris: list[str]) -> None:
    if not uris:
        return
    fs, _ = filesystem(uris[0])
    with storage_op(uris[0], "remove"):
        fs.rm([filesystem(u)[1] for u in uris])


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    with storage_op(uri, "check"):
        fs.invalidate_cache(path)
        return fs.exists(path)


def remove_tree(uri: str) -> None:
    """Remove a folder and everything under it (nothing when it does not exist)."""
    fs, path = filesystem(uri)
    with storage_op(uri, "remove"):
        fs.invalidate_cache(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def check_reachable(uris: dict[str, str]) -> None:
    """One cheap request (does the path exist?) to each object-store URI of ``{option: uri}``,
    within the storage timeouts and attempts, so an endpoint that cannot be reached or refuses
    the credentials stops the job before any work, with one InputError line. Local paths are
    left to the checks that read or write them."""
    for option, uri in uris.items():
        if not uri or "://" not in uri or uri.startswith("file://"):
            continue
        try:
            if not exists(uri):  # fine for an output not written yet, but its bucket must be there
                bucket = _protocol(uri) + filesystem(uri)[1].split("/", 1)[0]
                if not exists(bucket):
                    raise InputError(f"{option} {uri!r}: there is no bucket {bucket!r} at this endpoint: create it, or fix the URI")
        except StorageError as exc:
            s = storage_settings()
            cause = str(exc).removeprefix(f"cannot check {uri}: ")
            raise InputError(f"{option} {uri!r} cannot be reached: {cause} ({s['AUDIOROLE_STORAGE_ATTEMPTS']:g} attempt(s), "
                             f"{s['AUDIOROLE_STORAGE_READ_TIMEOUT']:g} s each): check the endpoint (AWS_ENDPOINT_URL) and "
                             "credentials, or raise --storage-timeout/--storage-attempts") from exc


def check_writable(output_uri: str, what: str = "output") -> None:
    """Create the output folder and write and delete a probe file, so an unwritable output stops
    the job before any work (one InputError line naming the output and the cause). A local
    ``_state/`` folder the probe had to create is removed with it."""
    state = join(output_uri, "_state")
    probe = join(state, f".write-probe-{uuid.uuid4().hex[:8]}")
    fs, state_path = filesystem(state)
    made_state = isinstance(fs, LocalFileSystem) and not os.path.isdir(state_path)
    try:
        write_bytes(probe, b"ok")
        remove([probe])
        if made_state:
            os.rmdir(state_path)
    except (StorageError, OSError) as exc:
        cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
        raise InputError(f"{what} {output_uri!r} is not writable: {type(cause).__name__}: {cause}") from exc
