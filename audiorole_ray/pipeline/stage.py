"""The base of every Ray Data stage: plain Python over plain rows, testable without Ray.

A stage declares its resources, batch size, marker kind and the item fields it reads; loads
its model once in ``setup()``; and turns one item into an :class:`Output` in ``process_item``.
The base class does the rest for every stage alike: it times the item, writes the completion
marker (with the run's hash for the item, so a re-run knows whether it is current), records
the Ray metrics, and turns an item's failure into an error row instead of a dead batch.
"""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

from audiorole_ray.errors import AudioRoleError
from audiorole_ray.pipeline.metrics import record
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import Marker, to_dict


@dataclass
class Output:
    """What a stage made of one item: its marker payload (a record or a dict), the seconds of
    audio it processed (for throughput metrics) and the files it wrote (relative to the output
    root, checked on resume). ``complete=False`` (part of the item failed) writes no marker, so a
    re-run does the item again."""

    payload: Any
    audio_s: float = 0.0
    outputs: dict[str, int] = field(default_factory=dict)
    complete: bool = True


@dataclass
class Stage:
    name: ClassVar[str] = "stage"  # metrics tag and Ray operator name
    marker_kind: ClassVar[str] = ""  # markers live under <state>/<marker_kind>/
    fields: ClassVar[tuple[str, ...]] = ()  # item fields process_item reads, beyond id and uri

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 1
    state_uri: str = ""  # set by the runner

    def settings(self) -> dict:
        """Everything besides the item's own inputs that shapes the result; hashed into every
        marker, so changing it redoes the stage (and only this stage)."""
        return {}

    def setup(self) -> None:
        """Load models; called once per worker."""

    def process_item(self, item: dict) -> Output:
        raise NotImplementedError

    # -- the part every stage shares -------------------------------------------------------
    def process(self, rows: list[dict]) -> list[dict]:
        store = MarkerStore(self.state_uri)
        out = []
        for row in rows:
            t = time.perf_counter()
            try:
                result = self.process_item(row)
                wall = time.perf_counter() - t
                payload = result.payload if isinstance(result.payload, dict) else to_dict(result.payload)
                marker = Marker(self.marker_kind, row["id"], row["hash"], payload, round(result.audio_s, 3),
                                round(wall, 3), result.outputs)
                if result.complete:
                    store.write(marker)
                else:  # an earlier marker must not say it is done
                    store.drop(marker.kind, marker.id)
                record(self.name, audio_s=result.audio_s, wall_s=wall)
                out.append({"id": row["id"], "status": "ok", "error": "", "marker": json.dumps(to_dict(marker))})
            except BaseException as exc:  # noqa: BLE001 - a bad item is recorded, the job goes on
                if not is_item_failure(exc):
                    raise
                record(self.name, error=True)
                out.append({"id": row["id"], "status": "error", "error": error_text(exc), "marker": ""})
        return out


def is_item_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is one item's failure, to record and move past. Native extensions raise
    their panics as BaseException (PyO3's PanicException), so Exception alone would let one bad
    clip take the job down; interrupts and exits still stop it."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def error_text(exc: BaseException) -> str:
    if isinstance(exc, (AudioRoleError, ValueError, FileNotFoundError)):
        return f"{type(exc).__name__}: {exc}"
    # unexpected: keep where it happened, the last frames are enough to act on
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc} | {''.join(tb[-2:]).strip()[-600:]}"


def resolve_device(device: str, num_gpus: float) -> str:
    """``device`` as given, or for "auto": CUDA when the stage reserves a GPU and one is there."""
    if device != "auto":
        return device
    if num_gpus > 0:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"
