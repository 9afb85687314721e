"""Per-stage Ray metrics (exported to the dashboard / Prometheus). Outside Ray they are no-ops."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def _metrics():
    try:
        import ray
        from ray.util.metrics import Counter, Gauge

        if not ray.is_initialized():
            return None
    except ImportError:
        return None
    keys = ("stage",)
    return {
        "audio": Counter("audiorole_audio_seconds", "Audio seconds processed", tag_keys=keys),
        "items": Counter("audiorole_items", "Items (episodes, utterances) processed", tag_keys=keys),
        "errors": Counter("audiorole_errors", "Items that failed", tag_keys=keys),
        "rtf": Gauge("audiorole_rtf", "Real-time factor of the last item (wall / audio)", tag_keys=keys),
    }


def record(stage: str, audio_s: float = 0.0, wall_s: float = 0.0, error: bool = False) -> None:
    m = _metrics()
    if m is None:
        return
    tags = {"stage": stage}
    if error:
        m["errors"].inc(1, tags)
        return
    m["items"].inc(1, tags)
    if audio_s > 0:
        m["audio"].inc(audio_s, tags)
        m["rtf"].set(wall_s / audio_s, tags)
