"""Data-driven thresholds: the episode's two distance populations, the series' linking threshold,
and the main-character checks (a merge of people is split, a split of the main is folded in)."""
import numpy as np
import pytest

from audiorole_ray.diarize import calibrate
from audiorole_ray.diarize.clustering import normalize
from audiorole_ray.link import LinkConfig, calibrate_link, check_main, link_series
from audiorole_ray.records import EpisodeDiarization, Turn


def test_two_gaussians_recovers_both_populations():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.25, 0.05, 3000), rng.normal(0.6, 0.07, 7000)])
    mu, sd, pi = calibrate.two_gaussians(d)
    assert mu == pytest.approx([0.25, 0.6], abs=0.01) and sd == pytest.approx([0.05, 0.07], abs=0.01)
    assert pi == pytest.approx([0.3, 0.7], abs=0.02)
    t, info = calibrate.threshold_between(d, alpha=0.5)
    assert t == pytest.approx(0.425, abs=0.01) and info["mu_same"] < t < info["mu_diff"]
    # moves with the data: the same speakers on a noisier channel are all further apart
    assert calibrate.threshold_between(d + 0.05, alpha=0.5)[0] == pytest.approx(0.475, abs=0.01)


def test_one_population_or_too_few_items_use_the_default():
    rng = np.random.default_rng(1)
    one = rng.normal(0.3, 0.05, 5000)
    assert calibrate.threshold_between(one)[0] == calibrate.DEFAULT_CLUSTER_THRESHOLD
    assert calibrate.threshold_between(one[:10])[0] == calibrate.DEFAULT_CLUSTER_THRESHOLD


def test_episode_threshold_on_embeddings():
    rng = np.random.default_rng(2)
    voices = normalize(rng.standard_normal((3, 64)))
    emb = normalize(np.concatenate([v + 0.09 * rng.standard_normal((40, 64)) for v in voices]))

    class A:  # the part of embedded.Analysis the calibration reads
        pass

    a = A()
    a.emb = emb
    t = calibrate.episode_threshold(a)
    d = 1 - emb @ emb.T
    same = np.kron(np.eye(3), np.ones((40, 40))).astype(bool)
    assert d[same & ~np.eye(120, dtype=bool)].mean() < t < d[~same].mean()


def _ep(eid, vecs, speech):
    names = [f"S{i}" for i in range(len(vecs))]
    return EpisodeDiarization(eid, [Turn(float(i), i + 0.5, n) for i, n in enumerate(names)],
                              {n: v.tolist() for n, v in zip(names, vecs)}, dict(zip(names, speech)))


def _voices(k, seed=3, dim=64):
    return normalize(np.random.default_rng(seed).standard_normal((k, dim)))


def test_link_threshold_is_calibrated_between_same_and_different():
    rng = np.random.default_rng(4)
    v = _voices(4)
    jit = lambda x: normalize(x + 0.03 * rng.standard_normal(x.shape))  # noqa: E731
    eps = [_ep(f"s/e{i}", [jit(v[0]), jit(v[1 + i % 3]), jit(v[1 + (i + 1) % 3])], [60, 20, 10]) for i in range(4)]
    linked = link_series("s", eps)
    c = linked.calibration
    assert c["same_person"] < linked.threshold < c["different_people"]
    assert len(linked.speech_s) == 4 and linked.main == "s_spk00" and linked.n_episodes["s_spk00"] == 4
    assert linked.speech_s["s_spk00"] == pytest.approx(240)
    # a given threshold is used as is
    assert link_series("s", eps, LinkConfig(threshold=0.3)).threshold == 0.3
    # nothing to calibrate on: one episode
    assert calibrate_link(normalize(np.stack([v[0], v[1]])), np.array(["a", "a"]))[1]["reason"]


def test_check_main_splits_a_merge_of_people():
    v = _voices(3, seed=5)
    other = normalize(v[0] + 0.8 * v[1])  # another person, at a distance of about 0.2-0.4
    x = normalize(np.stack([v[0], v[0], other, v[2], v[2]]))
    groups = np.array(["e1", "e2", "e3", "e1", "e2"])
    w = np.array([50.0, 50.0, 60.0, 5.0, 5.0])
    merged = np.array([0, 0, 0, 1, 1])  # the person of e3 wrongly joined the main character
    d = 1 - x @ x.T
    assert d[0, 2] > 0.15
    labels, notes = check_main(x, w, groups, merged, threshold=0.1, min_diff=0.12, diff=0.15)
    assert labels[0] == labels[1] != labels[2] and notes
    # members closer than known-different people are left together
    same, _ = check_main(x, w, groups, merged, threshold=0.1, min_diff=0.9, diff=0.95)
    assert same[0] == same[1] == same[2]


def test_check_main_folds_a_split_of_the_main():
    rng = np.random.default_rng(6)
    v = _voices(3, seed=7)
    x = normalize(np.stack([v[0], v[1], v[0] + 0.02 * rng.standard_normal(64), v[2]]))
    groups = np.array(["e1", "e1", "e2", "e2"])
    w = np.array([50.0, 40.0, 45.0, 5.0])
    split = np.array([0, 1, 2, 3])  # the main is split between e1 and e2
    d = 1 - x @ x.T
    labels, notes = check_main(x, w, groups, split, threshold=0.001, min_diff=float(min(d[0, 1], d[2, 3])),
                               diff=float(max(d[0, 1], d[2, 3])))
    assert labels[0] == labels[2] and len(set(labels.tolist())) == 3 and notes


def test_link_config_validated():
    with pytest.raises(ValueError):
        LinkConfig(alpha=1.5)
    assert LinkConfig().threshold is None
