"""Diarize stage: decode an episode to 16 kHz mono (with its container metadata) and diarize it.

Reading metadata lives here rather than in a stage of its own: a separate CPU stage upstream
of a full actor pool would wait for CPUs the pool holds. The marker holds the turns and the
speaker centroids: it is both the resume point and what linking reads, so rows stay small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audiorole_ray import registry
from audiorole_ray.io import audio as audio_io
from audiorole_ray.pipeline.stage import Output, Stage, resolve_device
from audiorole_ray.records import Diarized


@dataclass
class DiarizeStage(Stage):
    name = "diarize"
    marker_kind = "diarized"

    backend: str = "embedded"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    torch_threads: int = 1

    def settings(self) -> dict:
        return {"backend": self.backend, "version": registry.get("diarizer", self.backend).version,
                "model": self.model, "options": self.options}

    def setup(self) -> None:
        import torch

        # one thread per worker: actors scale across cores instead of fighting over them
        torch.set_num_threads(self.torch_threads)
        device = resolve_device(self.device, self.num_gpus)
        self._backend = registry.create("diarizer", self.backend, model=self.model, device=device, **self.options)
        self._backend.load()

    def process_item(self, item: dict) -> Output:
        wave, info = audio_io.load(item["uri"])
        result = self._backend.diarize(item["id"], wave)
        decoded_s = len(wave) / audio_io.SAMPLE_RATE
        return Output(Diarized(info, decoded_s, result), audio_s=decoded_s)
