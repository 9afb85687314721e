import numpy as np
import pytest

from audiorole_ray.diarize.clustering import agglomerative
from audiorole_ray.link import LinkConfig, link_series, relabel
from audiorole_ray.records import EpisodeDiarization, Turn


def blobs(centers, n, noise, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + noise * rng.standard_normal((n, len(c))) for c in centers])
    return x, np.repeat(np.arange(len(centers)), n)


def voices(k, dim=32, seed=1):
    return np.random.default_rng(seed).standard_normal((k, dim))


def test_agglomerative_recovers_separated_clusters():
    x, truth = blobs(voices(3), 20, 0.1)
    labels = agglomerative(x, threshold=0.5)
    assert len(set(labels)) == 3
    # same partition as the truth
    assert all(len(set(labels[truth == k])) == 1 for k in range(3))


def test_scipy_path_and_own_path_agree():
    x, _ = blobs(voices(4), 10, 0.4, seed=3)
    fast = agglomerative(x, 0.6)  # unweighted, unconstrained: scipy
    own = agglomerative(x, 0.6, weights=np.ones(len(x)))  # same maths, our loop
    assert (fast == own).all()


def test_threshold_extremes():
    x, _ = blobs(voices(3), 5, 0.1)
    assert len(set(agglomerative(x, 1e-9))) == len(x)
    assert len(set(agglomerative(x, 1.99))) == 1


def test_cannot_link_groups_never_merge():
    v = voices(1)[0]
    x = np.stack([v, v + 0.01, v + 0.02])  # all the same voice
    labels = agglomerative(x, 0.5, weights=np.ones(3), groups=["ep1", "ep1", "ep2"])
    assert labels[0] != labels[1]  # same episode: kept apart
    assert len(set(labels)) == 2  # ep2's item joins one of them


def _episode(eid, vecs_speech):
    centroids = {f"S{i}": v.tolist() for i, (v, _) in enumerate(vecs_speech)}
    speech = {f"S{i}": s for i, (_, s) in enumerate(vecs_speech)}
    turns = [Turn(float(i), float(i) + 0.5, f"S{i}") for i in range(len(vecs_speech))]
    return EpisodeDiarization(eid, turns, centroids, speech)


def test_link_series_names_main_character_spk00():
    rng = np.random.default_rng(0)
    main, other, third = voices(3, seed=7)
    jitter = lambda v: v + 0.15 * rng.standard_normal(v.shape)  # noqa: E731
    eps = [
        _episode("show/e1", [(jitter(other), 20.0), (jitter(main), 60.0)]),
        _episode("show/e2", [(jitter(main), 50.0), (jitter(third), 10.0)]),
        _episode("show/e3", [(jitter(third), 5.0), (jitter(other), 30.0), (jitter(main), 40.0)]),
    ]
    linked = link_series("show", eps, LinkConfig(threshold=0.45))
    assert linked.main == "show_spk00"
    assert linked.mapping[("show/e1", "S1")] == linked.mapping[("show/e2", "S0")] == linked.mapping[("show/e3", "S2")] == "show_spk00"
    assert linked.speech_s["show_spk00"] == pytest.approx(150.0)
    assert linked.n_episodes == {"show_spk00": 3, "show_spk01": 2, "show_spk02": 2}
    rows = linked.rows()
    assert [r.is_main for r in rows] == [True, False, False]
    assert {t.speaker for t in relabel(eps[0].turns, linked.labels(eps[0].episode_id))} == {"show_spk00", "show_spk01"}


def test_link_threshold_validated():
    with pytest.raises(ValueError, match="threshold"):
        LinkConfig(threshold=0)
