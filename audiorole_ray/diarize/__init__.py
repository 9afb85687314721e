"""Diarization backends (registered in :mod:`audiorole_ray.registry` under kind ``diarizer``)."""
from audiorole_ray.diarize.base import DiarizationBackend

__all__ = ["DiarizationBackend"]
