"""Agglomerative clustering of L2-normalised embeddings, shared by per-episode diarization and
cross-episode linking. Average linkage on cosine distance, weighted by speech duration, with
optional cannot-link groups (two items of one group never share a cluster)."""
from __future__ import annotations

import numpy as np


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def agglomerative(
    embeddings: np.ndarray,
    threshold: float,
    weights: np.ndarray | None = None,
    groups: list | None = None,
) -> np.ndarray:
    """Merge the closest pair of clusters while their average cosine distance is below
    ``threshold``. Returns labels 0..K-1 ordered by first appearance.

    ``groups[i]`` names the group of item i (e.g. its episode); clusters that both hold an item of
    the same group are never merged. O(n^2) memory, O(n) numpy work per merge.
    """
    n = len(embeddings)
    if n <= 1:
        return np.zeros(n, dtype=int)
    x = normalize(embeddings)
    if weights is None and groups is None:
        return _first_appearance(_scipy_average(x, threshold))
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, np.inf)
    if groups is not None:
        codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
        member = np.zeros((n, codes.max() + 1), dtype=bool)
        member[np.arange(n), codes] = True
        dist[codes[:, None] == codes[None, :]] = np.inf  # each item starts in one group
    size = w.copy()
    alive = np.ones(n, dtype=bool)
    parent = np.arange(n)
    while True:
        flat = int(np.argmin(dist))
        i, j = divmod(flat, n)
        if not np.isfinite(dist[i, j]) or dist[i, j] >= threshold:
            break
        # average linkage: the new row is the size-weighted mean of the two rows
        merged = (size[i] * dist[i] + size[j] * dist[j]) / (size[i] + size[j])
        if groups is not None:
            member[i] |= member[j]
            clash = (member[i][None, :] & member).any(-1)
            merged[clash] = np.inf
        merged[i] = np.inf
        dist[i], dist[:, i] = merged, merged
        dist[j], dist[:, j] = np.inf, np.inf
        size[i] += size[j]
        alive[j] = False
        parent[parent == j] = i
    return _first_appearance(parent)


def _scipy_average(x: np.ndarray, threshold: float) -> np.ndarray:
    """Unconstrained, unweighted case (thousands of windows in an episode): scipy's O(n^2) linkage."""
    from scipy.cluster.hierarchy import fcluster, linkage

    z = linkage(x, method="average", metric="cosine")
    # fcluster keeps merges with height <= t; ours stop at >= threshold
    return fcluster(z, t=np.nextafter(threshold, 0), criterion="distance")


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..K-1 in order of first appearance, so labels are stable and readable."""
    order: dict = {}
    return np.array([order.setdefault(lab, len(order)) for lab in labels.tolist()], dtype=int)
