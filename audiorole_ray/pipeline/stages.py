"""Pipeline stages: plain Python over plain rows (dicts), testable without Ray.

A stage declares its resources and batch size, loads its model once in ``setup()`` and
processes a batch of rows in ``process()``. A row that fails comes back with ``status="error"``
and the reason; it never takes the batch down. ``audiorole_ray.pipeline.ray_runner`` maps
stages onto Ray Data.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audiorole_ray.io import audio as audio_io
from audiorole_ray.io.storage import join, read_json, write_json
from audiorole_ray.pipeline.metrics import record


@dataclass
class Stage:
    name: str = "stage"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 1

    def setup(self) -> None:
        """Load models; called once per worker."""

    def process_row(self, row: dict) -> dict:
        raise NotImplementedError

    def process(self, rows: list[dict]) -> list[dict]:
        out = []
        for row in rows:
            if row.get("status") == "error":  # failed in an earlier stage: pass it on untouched
                out.append(row)
                continue
            t = time.perf_counter()
            try:
                result = {**row, **self.process_row(row), "status": "ok", "error": ""}
            except BaseException as exc:  # noqa: BLE001 - a bad item is recorded, the job goes on
                if not is_item_failure(exc):
                    raise
                result = {**row, "status": "error", "error": error_text(exc), "error_stage": self.name}
                record(self.name, error=True)
            result[f"{self.name}_wall_s"] = time.perf_counter() - t
            out.append(result)
        return out


def is_item_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is one item's failure, to record and move past. Native extensions raise
    their panics as BaseException (PyO3's PanicException), so Exception alone would let one bad
    clip take the job down; interrupts and exits still stop it."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))


def error_text(exc: BaseException) -> str:
    if isinstance(exc, (audio_io.AudioDecodeError, ValueError, FileNotFoundError)):
        return f"{type(exc).__name__}: {exc}"
    # unexpected: keep where it happened, the last frames are enough to act on
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc} | {''.join(tb[-2:]).strip()[-600:]}"


@dataclass
class DiarizeStage(Stage):
    """Decode an episode to 16 kHz mono (with its container metadata), diarize it, and write
    its completion marker.

    Reading metadata lives here rather than in a stage of its own: a separate CPU stage upstream
    of a full actor pool would wait for CPUs the pool holds.

    The marker (``<state>/diarized/<series>/<stem>.json``) holds the turns and speaker centroids:
    it is both the resume point and what the linking step reads, so rows stay small.
    """

    name: str = "diarize"
    backend: str = "embedded"
    backend_options: dict[str, Any] = field(default_factory=dict)
    state_uri: str = ""
    device: str = "auto"
    torch_threads: int = 1

    def setup(self) -> None:
        import torch

        from audiorole_ray.diarize import make_backend

        # one thread per worker: actors scale across cores instead of fighting over them
        torch.set_num_threads(self.torch_threads)
        self._backend = make_backend(self.backend, self.backend_options, device=resolve_device(self.device, self.num_gpus))
        self._backend.load()

    def process_row(self, row: dict) -> dict:
        t = time.perf_counter()
        wave, info = audio_io.load(row["uri"])
        row = {**row, "sample_rate": info.sample_rate, "channels": info.channels, "codec": info.codec}
        t_decode = time.perf_counter() - t
        result = self._backend.diarize(row["episode_id"], wave)
        audio_s = len(wave) / audio_io.SAMPLE_RATE
        wall = time.perf_counter() - t
        marker = {
            "episode": {k: row.get(k) for k in ("series", "episode_id", "uri", "sample_rate", "channels", "codec")},
            "decoded_s": audio_s,
            "backend": {"name": self.backend, "options": self.backend_options},
            "diarization": result.to_row(),
            "timings": {"decode": t_decode, "total": wall},
        }
        write_json(marker_uri(self.state_uri, row["episode_id"]), marker)
        record(self.name, audio_s=audio_s, wall_s=wall)
        return {
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "codec": info.codec,
            "decoded_s": audio_s,
            "speech_s": sum(result.speech_s.values()),
            "n_local_speakers": len(result.centroids),
        }


def resolve_device(device: str, num_gpus: float) -> str:
    """``device`` as given, or for "auto": CUDA when the stage reserves a GPU and one is there."""
    if device != "auto":
        return device
    if num_gpus > 0:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def marker_uri(state_uri: str, episode_id: str, kind: str = "diarized") -> str:
    """Where a stage's completion marker for an episode lives: ``<state>/<kind>/<series>/<stem>.json``."""
    series, stem = episode_id.split("/", 1)
    return join(state_uri, kind, series, f"{stem}.json")


def read_markers(uris: list[str], keep: Callable[[str, dict], bool]) -> dict[str, dict]:
    """{episode id: marker} of the markers that ``keep(episode_id, marker)`` accepts; a torn
    marker (a crash while writing it) or a stale one is skipped, so its episode is redone."""
    out = {}
    for uri in uris:
        try:
            m = read_json(uri)
        except (ValueError, OSError):
            continue
        series, name = uri.rsplit("/", 2)[-2:]
        eid = f"{series}/{name.removesuffix('.json')}"
        if keep(eid, m):
            out[eid] = m
    return out
