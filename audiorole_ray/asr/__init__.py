"""ASR backends (registered in :mod:`audiorole_ray.registry` under kind ``asr``)."""
from audiorole_ray.asr.base import AsrBackend

__all__ = ["AsrBackend"]
