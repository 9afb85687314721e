"""One resumable pass of a stage over items, on Ray Data: the only resume code there is.

Given a stage, its items and the marker store, :func:`run_pass` hashes each item (the stage's
settings and the item's ``inputs``), keeps the items whose marker is current, runs the stage on
the rest, and returns every current marker and this pass's errors. Workers send their markers
back in the result rows; nothing they wrote is read again.

An item is a dict with ``id`` (unique, path-like: ``<series>/<stem>``), ``uri`` (what the error
table names), ``inputs`` (a fingerprint of what the item is made from: a file's size and time,
an upstream marker's hash) and the fields the stage declares.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from audiorole_ray.pipeline.stage import Stage
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import ErrorRecord, Marker, from_dict

log = logging.getLogger("audiorole_ray")


@dataclass
class PassResult:
    done: dict[str, Any]  # every finished item (resumed and new): what ``keep`` kept of its marker
    errors: list[ErrorRecord] = field(default_factory=list)
    resumed: int = 0
    wall_s: float = 0.0


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able parts (settings, upstream hashes, plans)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def item_hash(stage: Stage, item: dict) -> str:
    return fingerprint(stage.marker_kind, stage.settings(), item["inputs"])


def run_pass(stage: Stage, items: list[dict], store: MarkerStore, workers: int = 1, local: bool = False,
             keep: Callable[[Marker], Any] = lambda m: m) -> PassResult:
    """Run ``stage`` over the items whose marker is missing or stale: ``workers`` actors on Ray
    Data, or with ``local`` in this process without Ray (tests, small jobs). ``keep`` maps each
    finished item's marker to what the caller holds on to (called once per item, resumed or
    new), so a large pass never holds every marker."""
    t0 = time.perf_counter()
    hashes = {it["id"]: item_hash(stage, it) for it in items}
    if len(hashes) != len(items):
        raise ValueError(f"{stage.name}: item ids are not unique")
    done = store.current(stage.marker_kind, hashes, keep)
    todo = [it for it in items if it["id"] not in done]
    resumed = len(items) - len(todo)
    log.info("%s: %d items, %d already done, %d to do", stage.name, len(items), resumed, len(todo))
    errors: list[ErrorRecord] = []
    if todo:
        stage = replace(stage, state_uri=store.state_uri)
        keys = ("id", "uri", *stage.fields)
        rows = [{**{k: it[k] for k in keys}, "hash": hashes[it["id"]]} for it in todo]
        by_id = {it["id"]: it for it in todo}
        for row in _execute(stage, rows, workers, local):
            if row["status"] == "ok":
                done[row["id"]] = keep(from_dict(Marker, json.loads(row["marker"])))
            else:
                it = by_id[row["id"]]
                errors.append(ErrorRecord(it["uri"], it.get("episode_id", it["id"]), stage.name, row["error"]))
    return PassResult(done, errors, resumed, round(time.perf_counter() - t0, 2))


def _execute(stage: Stage, rows: list[dict], workers: int, local: bool):
    if local:
        stage.setup()
        yield from stage.process(rows)
        return
    import ray

    from audiorole_ray.pipeline.ray_runner import apply_stage

    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    yield from apply_stage(ds, stage, workers=min(workers, len(rows))).iter_rows()
