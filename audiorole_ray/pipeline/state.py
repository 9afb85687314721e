"""The marker store: completion markers under ``<output>/_state/<kind>/<id>.json``.

A run's state is the state of its current input: only the markers of the items it is given are
read, a marker counts only when its hash is the run's, and the files it lists must still exist
with their sizes (one listing per folder, not one request per file).
"""
from __future__ import annotations

import json
import posixpath

from audiorole_ray.io.storage import join, list_files, read_many, remove, write_json
from audiorole_ray.records import Marker, from_dict, to_dict


class MarkerStore:
    def __init__(self, state_uri: str):
        self.state_uri = state_uri

    @property
    def output_uri(self) -> str:
        """The output root the markers' ``outputs`` are relative to (the state's parent)."""
        return self.state_uri.rstrip("/").rsplit("/", 1)[0]

    def uri(self, kind: str, item_id: str) -> str:
        return join(self.state_uri, kind, f"{item_id}.json")

    def write(self, marker: Marker) -> None:
        write_json(self.uri(marker.kind, marker.id), to_dict(marker))

    def drop(self, kind: str, item_id: str) -> None:
        """Remove an item's marker, if it has one."""
        try:
            remove([self.uri(kind, item_id)])
        except FileNotFoundError:
            pass

    def ids(self, kind: str) -> set[str]:
        """Every item id with a marker of ``kind`` (current or not)."""
        return {p.removesuffix(".json") for p in list_files(join(self.state_uri, kind)) if p.endswith(".json")}

    def read(self, kind: str, ids: list[str], chunk: int = 256) -> dict[str, Marker]:
        """The markers of ``ids`` that exist and parse; a torn one (a crash while writing) is skipped."""
        return dict(self.iter(kind, ids, chunk))

    def iter(self, kind: str, ids: list[str], chunk: int = 256):
        """(id, marker) of ``ids`` that exist and parse, read ``chunk`` at a time (bounded memory)."""
        have = self.ids(kind)
        wanted = [i for i in ids if i in have]
        for k in range(0, len(wanted), chunk):
            uris = {self.uri(kind, i): i for i in wanted[k : k + chunk]}
            for uri, blob in read_many(list(uris)).items():
                try:
                    yield uris[uri], from_dict(Marker, json.loads(blob))
                except (ValueError, TypeError, KeyError):
                    continue

    def current(self, kind: str, hashes: dict[str, str], keep=lambda m: m) -> dict[str, object]:
        """{id: keep(marker)} for the items in ``hashes`` (id -> the run's hash) whose marker
        matches it and whose outputs are intact; everything else is to be (re)done. Markers are
        read a chunk at a time and ``keep`` is called once per current marker, so memory holds
        what ``keep`` returns, not the markers."""
        sizes = _FolderSizes(self.output_uri)
        out = {}
        for i, m in self.iter(kind, list(hashes)):
            if m.hash == hashes[i] and all(sizes.get(rel) == size for rel, size in m.outputs.items()):
                out[i] = keep(m)
        return out


class _FolderSizes:
    """File sizes under an output root, listing each folder once (not one request per file)."""

    def __init__(self, root: str):
        self.root = root
        self._folders: dict[str, dict[str, int]] = {}

    def get(self, rel: str) -> int | None:
        folder = posixpath.dirname(rel)
        if folder not in self._folders:
            self._folders[folder] = list_files(join(self.root, folder), recursive=False)
        return self._folders[folder].get(posixpath.basename(rel))
