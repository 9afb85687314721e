"""Local paths and object-store URIs (s3://...) through fsspec, so every stage reads and writes alike."""
from __future__ import annotations

import json
import posixpath
from typing import Any

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from audiorole_ray.types import Episode

# Containers FFmpeg reads that we accept as episodes; anything else in the input folder is ignored.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".mp4", ".mkv", ".ogg", ".opus", ".webm", ".mka"}
)


class InputError(ValueError):
    """The job's input location is wrong (missing, empty, not laid out as <series>/<episode>.<ext>)."""


def join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts) if "://" in base else posixpath.join(base, *parts)


def list_episodes(input_uri: str) -> list[Episode]:
    """Find ``<series>/<episode>.<ext>`` files below ``input_uri``; sorted, ids ``<series>/<stem>``."""
    try:
        fs, root = url_to_fs(input_uri)
    except (ImportError, ValueError) as exc:
        raise InputError(f"cannot open input {input_uri!r}: {exc}") from exc
    if not fs.exists(root):
        raise InputError(f"input {input_uri!r} does not exist")
    if not fs.isdir(root):
        raise InputError(f"input {input_uri!r} is a file; expected a folder of <series>/<episode>.<ext>")
    protocol = input_uri.split("://", 1)[0] + "://" if "://" in input_uri else ""
    root = root.rstrip("/")
    episodes = []
    for path in sorted(fs.find(root)):
        rel = path[len(root) :].lstrip("/")
        parts = rel.split("/")
        stem, ext = posixpath.splitext(parts[-1])
        if len(parts) != 2 or ext.lower() not in AUDIO_EXTENSIONS or stem.startswith("."):
            continue
        series = parts[0]
        episodes.append(Episode(series=series, episode_id=f"{series}/{stem}", uri=protocol + path))
    if not episodes:
        raise InputError(
            f"no episodes under {input_uri!r}: expected <series>/<episode>.<ext> with ext in "
            f"{sorted(AUDIO_EXTENSIONS)}"
        )
    ids = [e.episode_id for e in episodes]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"two files share an episode id (same stem, other extension): {dupes}")
    return episodes


def write_text(uri: str, text: str) -> None:
    """Write via a temporary name then rename where the filesystem allows, so readers never
    see half a file (object stores write whole objects anyway)."""
    fs, path = url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        tmp = path + ".tmp"
        with fs.open(tmp, "w") as f:
            f.write(text)
        fs.mv(tmp, path)
    else:
        with fs.open(path, "w") as f:
            f.write(text)


def write_json(uri: str, obj: Any) -> None:
    write_text(uri, json.dumps(obj, sort_keys=True))


def read_json(uri: str) -> Any:
    fs, path = url_to_fs(uri)
    # Another process (a Ray worker) may have written or rewritten this object since this process
    # listed its folder. s3fs would take size and ETag from that cached listing and fail with
    # FileNotFoundError (new object) or 412 Precondition Failed (rewritten one), so drop it.
    fs.invalidate_cache(path)
    with fs.open(path, "r") as f:
        return json.load(f)


def list_json(folder_uri: str) -> list[str]:
    """All ``*.json`` below a folder (recursively), as URIs; [] when the folder does not exist."""
    fs, root = url_to_fs(folder_uri)
    fs.invalidate_cache(root)  # workers write here: never answer "missing" from a cached listing
    if not fs.exists(root):
        return []
    protocol = folder_uri.split("://", 1)[0] + "://" if "://" in folder_uri else ""
    return sorted(protocol + p for p in fs.find(root) if p.endswith(".json"))
