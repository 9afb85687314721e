"""Thresholds chosen from the data itself (placeholder while exploring)."""
from __future__ import annotations

DEFAULT_CLUSTER_THRESHOLD = 0.45


def episode_threshold(analysis) -> float:
    return DEFAULT_CLUSTER_THRESHOLD
