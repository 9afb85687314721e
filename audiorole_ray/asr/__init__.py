"""ASR backends, chosen by name so a Ray stage can build one inside its worker."""
from __future__ import annotations

from typing import Any

from audiorole_ray.asr.base import AsrBackend

ASR_BACKENDS = ("whisper", "mooer")


def make_asr(name: str, options: dict[str, Any] | None = None, device: str = "cpu") -> AsrBackend:
    if name == "whisper":
        from audiorole_ray.asr.whisper import WhisperBackend

        return WhisperBackend(**(options or {}), device=device)
    if name == "mooer":
        from audiorole_ray.asr.mooer import MooerBackend

        return MooerBackend(**(options or {}), device=device)
    raise ValueError(f"unknown ASR backend {name!r}; choose one of {ASR_BACKENDS}")
