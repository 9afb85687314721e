"""Cross-episode speaker linking: our step beyond the paper.

The paper diarizes a whole series as one stream so labels agree across episodes; that is
quadratic in series length. We diarize episodes independently (in parallel) and then cluster
the per-episode speaker centroids of a series. Two local speakers of one episode are never
linked (diarization already said they differ), and centroids are weighted by speech time so a
few seconds of a minor speaker cannot pull the main character's cluster.

The threshold is calibrated on the series itself (``calibrate_link``): the speakers of one
episode are known to be different people, so their centroid distances show how far apart two
people are in this series; a centroid's nearest centroid in another episode shows how close one
person is to himself. The threshold lies half-way between the two. The main character (most
speech) is then checked: a cluster whose members are as far apart as two known-different people
is split (a merge of several people), and a cluster that never shares an episode with it and is
closer to it than any two known-different people is folded into it (a split of one person).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from audiorole_ray.diarize.clustering import agglomerative, normalize
from audiorole_ray.records import EpisodeDiarization, SeriesSpeaker, Turn

DEFAULT_LINK_THRESHOLD = 0.25  # when a series gives nothing to calibrate on (one episode, one speaker each)
LINK_ALPHA = 0.5  # where between "same person" and "different people" the threshold lies
DIFF_QUANTILE = 0.1  # "different people" distance: this quantile of same-episode centroid distances
LINK_CLIP = (0.08, 0.45)


@dataclass(frozen=True)
class LinkConfig:
    threshold: float | None = None  # average-linkage cosine distance; None: calibrated per series
    alpha: float = LINK_ALPHA
    check_main: bool = True  # split a main cluster that merges people, fold in a split of the main

    def __post_init__(self):
        if self.threshold is not None and not 0 < self.threshold < 2:
            raise ValueError(f"link threshold must be in (0, 2), got {self.threshold}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"link alpha must be in (0, 1), got {self.alpha}")


@dataclass
class SeriesSpeakers:
    series: str
    mapping: dict[tuple[str, str], str]  # (episode_id, local label) -> series speaker id
    speech_s: dict[str, float]
    n_episodes: dict[str, int]
    main: str | None
    threshold: float | None = None  # the linking threshold used
    calibration: dict = field(default_factory=dict)  # what it was computed from, and main checks

    def rows(self) -> list[SeriesSpeaker]:
        """The speakers, main character first."""
        return [
            SeriesSpeaker(self.series, spk, round(self.speech_s[spk], 3), self.n_episodes[spk], spk == self.main)
            for spk in sorted(self.speech_s, key=lambda s: (-self.speech_s[s], s))
        ]

    def labels(self, episode_id: str) -> dict[str, str]:
        """{episode-local label: series speaker id} of one episode."""
        if not hasattr(self, "_by_episode"):
            self._by_episode: dict[str, dict[str, str]] = defaultdict(dict)
            for (eid, local), spk in self.mapping.items():
                self._by_episode[eid][local] = spk
        return dict(self._by_episode.get(episode_id, {}))


def calibrate_link(x: np.ndarray, groups: np.ndarray, alpha: float = LINK_ALPHA) -> tuple[float, dict]:
    """Linking threshold from L2-normalised centroids ``x`` and their episodes ``groups``."""
    d = 1.0 - x @ x.T
    same_ep = groups[:, None] == groups[None, :]
    iu = np.triu_indices(len(x), 1)
    known_diff = d[iu][same_ep[iu]]
    if known_diff.size == 0 or len(np.unique(groups)) < 2:
        return DEFAULT_LINK_THRESHOLD, {"reason": "nothing to calibrate on"}
    diff = float(np.quantile(known_diff, DIFF_QUANTILE))
    cross = np.where(same_ep, np.inf, d).min(axis=1)  # nearest centroid in another episode
    recurring = cross[cross < diff]  # those closer than known-different people: the same person
    same = float(np.median(recurring)) if recurring.size else 0.0
    t = float(np.clip(same + alpha * (diff - same), *LINK_CLIP))
    return t, {"same_person": same, "different_people": diff, "min_different": float(known_diff.min()),
               "pairs_known_different": int(known_diff.size), "recurring": int(recurring.size)}


def link_series(series: str, episodes: list[EpisodeDiarization], config: LinkConfig | None = None) -> SeriesSpeakers:
    """Series-level ids ``<series>_spk00``... numbered by decreasing speech, so spk00 is the main character."""
    config = config or LinkConfig()
    keys, vecs, weights, groups = [], [], [], []
    for ep in sorted(episodes, key=lambda e: e.episode_id):
        for label, vec in sorted(ep.centroids.items()):
            keys.append((ep.episode_id, label))
            vecs.append(vec)
            weights.append(max(ep.speech_s.get(label, 0.0), 1e-3))
            groups.append(ep.episode_id)
    if not keys:
        return SeriesSpeakers(series, {}, {}, {}, None)
    x, w, g = normalize(np.asarray(vecs)), np.asarray(weights), np.asarray(groups)
    if config.threshold is not None:
        threshold, info = config.threshold, {"reason": "given"}
        _, stats = calibrate_link(x, g, config.alpha)
        info.update({k: v for k, v in stats.items() if k != "reason"})
    else:
        threshold, info = calibrate_link(x, g, config.alpha)
    labels = agglomerative(x, threshold, weights=w, groups=groups)
    if config.check_main and "different_people" in info:
        labels, info["main_checks"] = check_main(x, w, g, labels, threshold, info["min_different"], info["different_people"])
    speech: dict[int, float] = defaultdict(float)
    eps: dict[int, set] = defaultdict(set)
    for (ep_id, _), lab, wt in zip(keys, labels, w):
        speech[lab] += wt
        eps[lab].add(ep_id)
    order = sorted(speech, key=lambda k: (-speech[k], k))
    name = {k: f"{series}_spk{i:02d}" for i, k in enumerate(order)}
    mapping = {key: name[lab] for key, lab in zip(keys, labels)}
    return SeriesSpeakers(
        series,
        mapping,
        {name[k]: speech[k] for k in order},
        {name[k]: len(eps[k]) for k in order},
        name[order[0]],
        threshold,
        info,
    )


def _centroid(x: np.ndarray, w: np.ndarray, m: np.ndarray) -> np.ndarray:
    return normalize(np.average(x[m], axis=0, weights=w[m]))


def check_main(x, w, groups, labels, threshold, min_diff, diff) -> tuple[np.ndarray, list[str]]:
    """Make the cluster with the most speech one person (see the module docstring)."""
    labels = labels.copy()
    notes = []
    for _ in range(len(labels)):
        speech = np.bincount(labels, weights=w)
        main = int(np.argmax(speech))
        m = labels == main
        # a merge of people: members as far apart as two people one episode told apart
        if m.sum() > 1:
            d = 1.0 - x[m] @ x[m].T
            if d.max() >= diff:
                sub = agglomerative(x[m], threshold, weights=w[m], groups=list(groups[m]))
                # complete linkage would be stricter still; split along average linkage at a
                # threshold tightened to the nearest known-different distance
                sub = agglomerative(x[m], min(threshold, min_diff) * 0.75, weights=w[m], groups=list(groups[m])) \
                    if len(set(sub)) == 1 else sub
                if len(set(sub)) > 1:
                    idx = np.flatnonzero(m)
                    top = np.argmax(np.bincount(sub, weights=w[m]))
                    new = labels.max() + 1
                    for s in set(sub) - {top}:
                        labels[idx[sub == s]] = new
                        new += 1
                    notes.append(f"split a main cluster of {m.sum()} centroids whose diameter {d.max():.3f} >= {diff:.3f}")
                    continue
        # a split of the main: another cluster never in the same episode and closer to the main
        # than any two people an episode told apart
        cm = _centroid(x, w, m)
        merged = False
        for k in sorted(set(labels.tolist()) - {main}, key=lambda k: -speech[k]):
            mk = labels == k
            if set(groups[mk]) & set(groups[m]):
                continue
            dist = float(1.0 - cm @ _centroid(x, w, mk))
            if dist < min_diff:
                labels[mk] = main
                notes.append(f"folded a cluster at {dist:.3f} < {min_diff:.3f} into the main character")
                merged = True
                break
        if not merged:
            break
    return np.unique(labels, return_inverse=True)[1], notes


def relabel(turns: list[Turn], labels: dict[str, str]) -> list[Turn]:
    """Turns with their episode-local speaker labels replaced by series-level ids."""
    return [Turn(t.start, t.end, labels[t.speaker]) for t in turns]
