"""Thresholds chosen from the data itself, per episode and per series.

Within-episode clustering (``episode_threshold``). The cosine distances between all pairs of an
episode's embedding windows mix two populations: pairs of one speaker (small distances) and pairs
of two speakers (large). A two-component Gaussian mixture fitted to those distances (EM in one
dimension) estimates both means, mu_same and mu_diff, on the episode itself: the recording's
channel, noise and language move both. Average linkage merges two clusters while their mean
pairwise distance is below the threshold, so the threshold is put between the two populations:

    threshold = mu_same + alpha * (mu_diff - mu_same)

``alpha`` was chosen on the dev part of ``benchmarks/devset`` (curves in
``benchmarks/RESULTS.md``): 0.45, a little below half-way. Every alpha from 0.3 to 0.475 keeps
the main characters one person each (worst dev purity 92.5 %, lost at turn edges, not to another
person); at 0.5 one episode's clusters merge another person into a main character (86.7 %). A
wrong main character costs the corpus more than a minor speaker split in two. With too few windows, or two components that do not separate (one
speaker, or a mixture that collapsed), the default threshold is used.
"""
from __future__ import annotations

import numpy as np

DEFAULT_CLUSTER_THRESHOLD = 0.45
ALPHA = 0.45
MIN_ITEMS = 12  # fewer embeddings than this: not enough pairs to fit two populations
MIN_SEPARATION = 0.1  # mu_diff - mu_same below this: no second population (one speaker)
CLIP = (0.3, 0.65)  # calibrated thresholds stay in the range where CAM++ distances make sense
MAX_PAIRS = 20_000  # distances sampled for the fit (long episodes have millions of pairs)


def two_gaussians(d: np.ndarray, iters: int = 200, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a two-component 1-D Gaussian mixture: (means, standard deviations, weights), the
    first component the lower one. Starts from the 15th and 85th percentiles."""
    d = np.asarray(d, dtype=np.float64)
    mu = np.quantile(d, [0.15, 0.85])
    sd = np.full(2, max(d.std() / 2, 1e-3))
    pi = np.full(2, 0.5)
    prev = -np.inf
    for _ in range(iters):
        logp = np.log(pi) - np.log(sd) - 0.5 * ((d[:, None] - mu) / sd) ** 2
        top = logp.max(axis=1, keepdims=True)
        ll = float(np.sum(top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))))
        r = np.exp(logp - top)
        r /= r.sum(axis=1, keepdims=True)
        n = r.sum(axis=0) + 1e-12
        pi = n / n.sum()
        mu = (r * d[:, None]).sum(axis=0) / n
        sd = np.sqrt((r * (d[:, None] - mu) ** 2).sum(axis=0) / n) + 1e-4
        if ll - prev < tol * abs(ll):
            break
        prev = ll
    order = np.argsort(mu)
    return mu[order], sd[order], pi[order]


def pair_distances(emb: np.ndarray, max_pairs: int = MAX_PAIRS, seed: int = 0) -> np.ndarray:
    """Cosine distances of all pairs of L2-normalised rows (a fixed random sample if too many)."""
    n = len(emb)
    i, j = np.triu_indices(n, 1)
    if len(i) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(i), max_pairs, replace=False)
        i, j = i[pick], j[pick]
    return 1.0 - np.einsum("ij,ij->i", emb[i], emb[j])


def threshold_between(d: np.ndarray, alpha: float = ALPHA, default: float = DEFAULT_CLUSTER_THRESHOLD) -> tuple[float, dict]:
    """The calibrated threshold for distances ``d`` and what it was computed from."""
    if len(d) < MIN_ITEMS * (MIN_ITEMS - 1) // 2:
        return default, {"reason": "too few items"}
    mu, sd, pi = two_gaussians(d)
    info = {"mu_same": float(mu[0]), "mu_diff": float(mu[1]), "sd": sd.tolist(), "weights": pi.tolist()}
    if mu[1] - mu[0] < MIN_SEPARATION or pi.min() < 0.02:
        return default, {**info, "reason": "one population"}
    t = float(np.clip(mu[0] + alpha * (mu[1] - mu[0]), *CLIP))
    return t, info


def episode_threshold(analysis, alpha: float = ALPHA) -> float:
    """Clustering threshold for one episode's embeddings (``embedded.Analysis``)."""
    if len(analysis.emb) < MIN_ITEMS:
        return DEFAULT_CLUSTER_THRESHOLD
    return threshold_between(pair_distances(analysis.emb), alpha)[0]
