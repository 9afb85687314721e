"""A k-means codebook over encoder frames: fit (seeded, deterministic), save with its hash, load,
and assign each frame to its nearest centroid.

Frames are standardised per dimension (mean and scale kept in the codebook) before k-means, so
no single encoder dimension with a large range decides the clusters. Assignment is always by
nearest centroid in that standardised space; the same rule is used while fitting, so a frame of
the training set gets the label its final centroid implies.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np
from fsspec.core import url_to_fs

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import write_bytes

CODEBOOK_FILE = "codebook.npz"
_CHUNK = 8192  # frames per distance block: bounds memory at _CHUNK x k floats


@dataclass(frozen=True)
class Codebook:
    centroids: np.ndarray  # (k, dim) float32, in standardised space
    mean: np.ndarray  # (dim,) float32
    scale: np.ndarray  # (dim,) float32, > 0
    meta: dict  # how it was fitted: seed, iterations, frames, encoder ...

    @property
    def size(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def hash(self) -> str:
        """sha256 of the arrays that decide the codes (not of ``meta``): equal hash, equal tokens."""
        h = hashlib.sha256()
        for a in (self.centroids, self.mean, self.scale):
            a = np.ascontiguousarray(a, dtype=np.float32)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def assign(self, frames: np.ndarray) -> np.ndarray:
        """Index of the nearest centroid of every frame, int64 of shape (n,)."""
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.dim:
            raise ValueError(f"frames must be (n, {self.dim}), got {frames.shape}")
        return _nearest((frames - self.mean) / self.scale, self.centroids)

    def save(self, uri: str) -> str:
        """Write ``codebook.npz`` to ``uri`` (a file path); returns the hash."""
        buf = io.BytesIO()
        np.savez(buf, centroids=self.centroids, mean=self.mean, scale=self.scale,
                 meta=np.frombuffer(json.dumps({**self.meta, "hash": self.hash}, sort_keys=True).encode(), dtype=np.uint8))
        write_bytes(uri, buf.getvalue())  # through a temporary name
        return self.hash


def load_codebook(uri: str) -> Codebook:
    fs, path = url_to_fs(uri)
    if not fs.exists(path):
        raise InputError(f"no codebook at {uri}")
    with fs.open(path, "rb") as f:
        data = np.load(io.BytesIO(f.read()))
        meta = json.loads(bytes(data["meta"]).decode())
        book = Codebook(data["centroids"].astype(np.float32), data["mean"].astype(np.float32), data["scale"].astype(np.float32), meta)
    if meta.get("hash") and meta["hash"] != book.hash:
        raise InputError(f"codebook {uri} is corrupt: its arrays hash to {book.hash[:12]}, it says {meta['hash'][:12]}")
    return book


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """argmin_j ||x_i - c_j||^2, in blocks; ties go to the lowest index (np.argmin)."""
    c = centroids.astype(np.float64)
    c_sq = (c * c).sum(1)
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), _CHUNK):
        block = x[s : s + _CHUNK].astype(np.float64)
        # ||x||^2 is the same for every centroid: leave it out of the argmin
        out[s : s + _CHUNK] = np.argmin(c_sq[None, :] - 2.0 * block @ c.T, axis=1)
    return out


def fit_codebook(frames: np.ndarray, k: int, seed: int = 0, iterations: int = 50, meta: dict | None = None) -> Codebook:
    """k-means++ seeding then Lloyd iterations, all from ``np.random.default_rng(seed)``.

    The same frames in the same order and the same seed give the same codebook. An empty cluster
    is re-seeded with the frame farthest from its centroid, so all ``k`` codes stay in use."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ConfigError(f"no frames to fit a codebook on (got shape {x.shape})")
    if k < 2:
        raise ConfigError(f"codebook size must be at least 2, got {k}")
    if len(x) < k:
        raise ConfigError(f"{len(x)} frames cannot fit a {k}-entry codebook: use a smaller --codebook-size or more training audio")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    c = _kmeans_pp(z, k, rng)
    labels = _nearest(z, c)
    done = 0
    for done in range(1, iterations + 1):
        c = _update(z, labels, c)
        new = _nearest(z, c)
        if np.array_equal(new, labels):
            break
        labels = new
    info = {"k": k, "seed": seed, "iterations": done, "frames": int(len(x)), "dim": int(x.shape[1]),
            "inertia": float(((z - c[labels]) ** 2).sum() / len(x)), **(meta or {})}
    return Codebook(c.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32), info)


def _kmeans_pp(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    c = np.empty((k, z.shape[1]))
    z_sq = (z * z).sum(1)

    def dist(v):  # squared distances of every frame to v, through one matrix-vector product
        return np.maximum(z_sq - 2.0 * (z @ v) + v @ v, 0.0)

    c[0] = z[rng.integers(len(z))]
    d2 = dist(c[0])
    for j in range(1, k):
        total = d2.sum()
        # all remaining frames coincide with a centroid: take any (duplicates are re-seeded later)
        i = rng.choice(len(z), p=d2 / total) if total > 0 else int(rng.integers(len(z)))
        c[j] = z[i]
        d2 = np.minimum(d2, dist(c[j]))
    return c


def _update(z: np.ndarray, labels: np.ndarray, old: np.ndarray) -> np.ndarray:
    k = len(old)
    counts = np.bincount(labels, minlength=k)
    # sum the frames of each cluster in one pass over the frames sorted by label (stable sort:
    # a fixed summation order, so the result does not depend on anything but the inputs)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.zeros_like(old)
    used_idx = np.flatnonzero(counts)
    sums[used_idx] = np.add.reduceat(z[order], starts[used_idx], axis=0)
    c = old.copy()
    used = counts > 0
    c[used] = sums[used] / counts[used, None]
    empty = np.flatnonzero(~used)
    if len(empty):
        far = np.argsort(-((z - c[labels]) ** 2).sum(1), kind="stable")
        c[empty] = z[far[: len(empty)]]
    return c
