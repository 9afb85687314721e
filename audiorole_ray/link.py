"""Cross-episode speaker linking: our step beyond the paper.

The paper diarizes a whole series as one stream so labels agree across episodes; that is
quadratic in series length. We diarize episodes independently (in parallel) and then cluster
the per-episode speaker centroids of a series. Two local speakers of one episode are never
linked (diarization already said they differ), and centroids are weighted by speech time so a
few seconds of a minor speaker cannot pull the main character's cluster.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from audiorole_ray.diarize.clustering import agglomerative
from audiorole_ray.types import EpisodeDiarization, Turn


@dataclass(frozen=True)
class LinkConfig:
    threshold: float | None = None  # average-linkage cosine distance; None: calibrated per series

    def __post_init__(self):
        if self.threshold is not None and not 0 < self.threshold < 2:
            raise ValueError(f"link threshold must be in (0, 2), got {self.threshold}")


@dataclass
class SeriesSpeakers:
    series: str
    mapping: dict[tuple[str, str], str]  # (episode_id, local label) -> series speaker id
    speech_s: dict[str, float]
    n_episodes: dict[str, int]
    main: str | None
    threshold: float | None = None  # the linking threshold used

    def rows(self) -> list[dict]:
        return [
            {
                "series": self.series,
                "speaker_id": spk,
                "speech_s": round(self.speech_s[spk], 3),
                "n_episodes": self.n_episodes[spk],
                "is_main": spk == self.main,
            }
            for spk in sorted(self.speech_s, key=lambda s: (-self.speech_s[s], s))
        ]


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
    threshold = config.threshold if config.threshold is not None else 0.45
    labels = agglomerative(np.asarray(vecs), threshold, weights=np.asarray(weights), groups=groups)
    speech: dict[int, float] = defaultdict(float)
    eps: dict[int, set] = defaultdict(set)
    for (ep_id, _), lab, w in zip(keys, labels, weights):
        speech[lab] += w
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
    )


def relabel(ep: EpisodeDiarization, mapping: dict[tuple[str, str], str]) -> list[Turn]:
    """The episode's turns with series-level speaker ids."""
    return [Turn(t.start, t.end, mapping[(ep.episode_id, t.speaker)]) for t in ep.turns]
