"""Diarization backends, chosen by name so a Ray stage can build one inside its worker."""
from __future__ import annotations

from typing import Any

from audiorole_ray.diarize.base import DiarizationBackend

BACKENDS = ("embedded", "pyannote")


def make_backend(name: str, options: dict[str, Any] | None = None, device: str = "cpu") -> DiarizationBackend:
    options = dict(options or {})
    if name == "embedded":
        from audiorole_ray.diarize.embedded import EmbeddedBackend, EmbeddedConfig

        return EmbeddedBackend(EmbeddedConfig(**options), device=device)
    if name == "pyannote":
        from audiorole_ray.diarize.pyannote_backend import PyannoteBackend

        return PyannoteBackend(**options, device=device)
    raise ValueError(f"unknown diarization backend {name!r}; choose one of {BACKENDS}")
