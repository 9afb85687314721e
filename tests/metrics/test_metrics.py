"""Hand-computed checks of audiorole_ray.metrics.der, plus a pyannote.metrics cross-check when
that package is importable (it is not a project dependency, so that test usually skips)."""
import random
import time

import pytest

from audiorole_ray.metrics.der import clean_purity, cluster_purity_coverage, der, der_many, silence_share
from audiorole_ray.diarize.evaluate import score_turns
from audiorole_ray.records import Turn

T = Turn
REF = [T(0, 10, "A"), T(10, 20, "B")]


def close(a, b, tol=1e-6):
    return abs(a - b) <= tol


def test_perfect():
    r = der(REF, REF, collar=0.0)
    assert r.der == 0 and close(r.total, 20) and r.mapping == {"A": "A", "B": "B"}


def test_swapped_labels_are_mapped():
    r = der(REF, [T(0, 10, "x"), T(10, 20, "y")], collar=0.0)
    assert close(r.der, 0) and r.mapping == {"x": "A", "y": "B"}


def test_pure_missed():
    r = der(REF, [T(0, 10, "x")], collar=0.0)
    assert close(r.missed, 10) and r.false_alarm == 0 and close(r.confusion, 0) and close(r.der, 0.5)


def test_pure_false_alarm():
    r = der(REF, REF + [T(20, 25, "x")], collar=0.0)
    assert close(r.false_alarm, 5) and r.missed == 0 and close(r.confusion, 0) and close(r.der, 0.25)


def test_half_confusion():
    # "x" covers A fully and the first half of B: best map x->A, so B[10, 15) is confused
    r = der(REF, [T(0, 15, "x"), T(15, 20, "y")], collar=0.0)
    assert close(r.confusion, 5) and close(r.missed, 0) and close(r.der, 0.25)
    assert r.mapping == {"x": "A", "y": "B"}


def test_collar_excludes_small_boundary_error():
    hyp = [T(0, 10.2, "x"), T(10.2, 20, "y")]  # boundary 0.2 s late
    assert close(der(REF, hyp, collar=0.0).confusion, 0.2)
    r = der(REF, hyp, collar=0.25)
    assert close(r.der, 0)
    # +-0.25 s around boundaries 0, 10 and 20 removes 0.25 + 0.5 + 0.25 s of reference speech
    assert close(r.total, 19.0)


def test_overlap_counted_twice():
    ref = [T(0, 10, "A"), T(5, 10, "B")]
    r = der(ref, [T(0, 10, "x")], collar=0.0)
    assert close(r.total, 15) and close(r.missed, 5) and close(r.der, 5 / 15)
    r = der(ref, [T(0, 10, "x")], collar=0.0, skip_overlap=True)
    assert close(r.total, 5) and close(r.der, 0)


def test_empty_hypothesis():
    r = der(REF, [], collar=0.25)
    assert close(r.der, 1.0) and close(r.missed, r.total) and r.mapping == {}


def test_empty_reference():
    assert der([], [], collar=0.25).der == 0.0
    r = der([], [T(0, 3, "x")], collar=0.25)
    assert r.total == 0 and close(r.false_alarm, 3) and r.der == 1.0


def test_global_vs_per_file_mapping():
    pairs = {
        "ep1": (REF, [T(0, 10, "s1"), T(10, 20, "s2")]),
        "ep2": (REF, [T(0, 10, "s2"), T(10, 20, "s1")]),  # labels swapped in this episode
    }
    local = der_many(pairs, collar=0.0)
    assert close(local.der, 0) and close(local.total, 40)
    assert local.per_file["ep2"].mapping == {"s2": "A", "s1": "B"}
    glob = der_many(pairs, collar=0.0, global_mapping=True)
    assert glob.mapping == {"s1": "A", "s2": "B"} or glob.mapping == {"s1": "B", "s2": "A"}
    assert close(glob.confusion, 20) and close(glob.der, 0.5)


def test_cluster_purity_coverage():
    ref = {"ep1": [T(0, 10, "hero"), T(10, 20, "B")], "ep2": [T(0, 10, "hero"), T(10, 14, "C")]}
    # "k" covers hero in ep1 (10 s) plus 5 s of B; in ep2 hero is split 6 s "k" / 4 s "m"
    hyp = {"ep1": [T(0, 15, "k"), T(15, 20, "m")], "ep2": [T(0, 6, "k"), T(6, 14, "m")]}
    purity, coverage, lab = cluster_purity_coverage(ref, hyp, "hero")
    assert lab == "k" and close(purity, 16 / 21) and close(coverage, 16 / 20)
    assert cluster_purity_coverage(ref, hyp, "nobody") == (0.0, 0.0, None)


def test_purity_with_a_collar_leaves_boundary_time_out():
    # hero 0-10 s then B 10-20 s; "k" runs 0.2 s past hero's end and starts 0.1 s before it
    ref = {"ep1": [T(0, 10, "hero"), T(10, 20, "B")]}
    hyp = {"ep1": [T(0.1, 10.2, "k"), T(10.2, 20, "m")]}
    purity, coverage, lab = cluster_purity_coverage(ref, hyp, "hero")
    assert lab == "k" and close(purity, 9.9 / 10.1) and close(coverage, 9.9 / 10)
    # +-0.25 s around 0, 10 and 20 s unscored: k keeps 0.25-9.75 s, hero the same: both exact
    purity, coverage, lab = cluster_purity_coverage(ref, hyp, "hero", collar=0.25)
    assert lab == "k" and close(purity, 1.0) and close(coverage, 1.0)
    # a wrong person far from any boundary still counts
    hyp["ep1"].append(T(14, 16, "k"))
    purity, _, _ = cluster_purity_coverage(ref, hyp, "hero", collar=0.25)
    assert close(purity, 9.5 / 11.5)
    # label= scores the given cluster, not the best one (m never meets hero; "x" is absent)
    assert cluster_purity_coverage(ref, hyp, "hero", label="m") == (0.0, 0.0, None)
    assert cluster_purity_coverage(ref, hyp, "hero", label="x") == (0.0, 0.0, None)
    # a file with no reference has no boundaries: all of k's 3 s there are scored, none is hero
    hyp["ep2"] = [T(0, 3, "k")]
    purity, coverage, _ = cluster_purity_coverage(ref, hyp, "hero", collar=0.25)
    assert close(purity, 9.5 / 14.5) and close(coverage, 1.0)
    del hyp["ep2"]
    s = score_turns(ref, hyp, "hero")
    assert s["purity_collar"] == 0.25 and close(s["main_purity_collar"], 9.5 / 11.5)
    assert close(s["main_scored_collar"], 11.5 / 12.1) and close(s["main_coverage_collar"], 1.0)
    assert close(score_turns(ref, hyp, "hero", purity_collar=0.0)["main_purity_collar"], s["main_purity"])
    with pytest.raises(ValueError, match="collar"):
        cluster_purity_coverage(ref, hyp, "hero", collar=-0.1)


def test_clean_purity_counts_missed_overlap_and_other_people():
    # hero 0-4 s, B 3-6 s (overlap 3-4); "k" alone 0-5 s: 3 s of hero alone in 5 s
    ref = {"ep1": [T(0, 4, "hero"), T(3, 6, "B")], "ep2": [T(0, 2, "hero")]}
    hyp = {"ep1": [T(0, 5, "k")], "ep2": [T(0, 2, "k"), T(1, 2, "m")]}  # ep2: 1-2 s not clean (m named too)
    share, seconds = clean_purity(ref, hyp, "hero", "k")
    assert close(seconds, 6) and close(share, 4 / 6)
    # naming the overlap (k and m at 3-4 s) leaves only clean time
    hyp["ep1"].append(T(3, 5, "m"))
    assert clean_purity(ref, hyp, "hero", "k") == pytest.approx((1.0, 4.0))
    assert clean_purity(ref, hyp, "nobody", "k") == (0.0, 4.0)
    assert clean_purity(ref, hyp, "hero", "absent") == (0.0, 0.0)
    # time the diarizer marks as possible overlap is not clean time
    hyp["ep1"].pop()
    assert clean_purity(ref, hyp, "hero", "k", possible_overlap={"ep1": [[3, 5]]}) == pytest.approx((1.0, 4.0))
    assert clean_purity(ref, hyp, "hero", "k", possible_overlap={"ep1": [[2, 3.5]]}) == pytest.approx((3 / 4.5, 4.5))


def test_silence_share_is_the_clusters_time_where_nobody_speaks():
    # "k": ep1 0-5 s (hero or B speak throughout) and 6-8 s (nobody), ep2 0-3 s (hero to 2 s)
    ref = {"ep1": [T(0, 4, "hero"), T(3, 6, "B")], "ep2": [T(0, 2, "hero")]}
    hyp = {"ep1": [T(0, 5, "k"), T(6, 8, "k"), T(0, 8, "m")], "ep2": [T(0, 3, "k")]}
    assert silence_share(ref, hyp, "k") == pytest.approx(3 / 10)  # 6-8 s and 2-3 s of 10 s
    assert silence_share(ref, hyp, "absent") == 0.0
    s = score_turns(ref, hyp, "hero")
    assert s["main_cluster"] == "k" and s["main_silence"] == pytest.approx(0.3)
    # hero under k: ep1 0-4 s, ep2 0-2 s: purity 6 / 10; over speech 6 / 7
    assert s["main_purity"] == pytest.approx(0.6) and s["main_purity_speech"] == pytest.approx(6 / 7)


def test_fast_one_hour_thirty_speakers():
    rng = random.Random(0)
    ref = [T(t, t + 2.0, f"S{rng.randrange(30)}") for t in range(0, 3600, 2)]
    hyp = [T(t + 0.3, t + 2.3, f"h{rng.randrange(30)}") for t in range(0, 3600, 2)]
    t0 = time.perf_counter()
    der(ref, hyp)
    assert time.perf_counter() - t0 < 5.0


# --- cross-check against pyannote.metrics (collar convention: pyannote's is full width) ---

def _random_turns(rng, n_spk, dur, prefix):
    turns = []
    for k in range(n_spk):
        t = rng.uniform(0, 5)
        while t < dur:
            d = rng.uniform(0.3, 6)
            turns.append(T(round(t, 2), round(min(t + d, dur), 2), f"{prefix}{k}"))
            t += d + rng.uniform(0.1, 20)
    return turns


def _annotation(turns):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for i, t in enumerate(turns):
        ann[Segment(t.start, t.end), i] = t.speaker
    return ann


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("collar,skip_overlap", [(0.0, False), (0.25, False), (0.25, True)])
def test_matches_pyannote(seed, collar, skip_overlap):
    pm = pytest.importorskip("pyannote.metrics.diarization")
    rng = random.Random(seed)
    ref = _random_turns(rng, rng.randint(1, 5), 120, "S")
    hyp = _random_turns(rng, rng.randint(1, 6), 120, "h")
    metric = pm.DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    d = metric(_annotation(ref), _annotation(hyp), detailed=True)
    r = der(ref, hyp, collar=collar, skip_overlap=skip_overlap)
    assert abs(r.der - d["diarization error rate"]) < 1e-3
    for ours, theirs in [(r.total, "total"), (r.missed, "missed detection"),
                         (r.false_alarm, "false alarm"), (r.confusion, "confusion")]:
        assert abs(ours - d[theirs]) < 1e-3 * max(1.0, d["total"])


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("global_mapping", [False, True])
def test_der_many_matches_pyannote(global_mapping):
    pm = pytest.importorskip("pyannote.metrics.diarization")
    rng = random.Random(42)
    pairs = {f"ep{i}": (_random_turns(rng, 4, 100, "S"), _random_turns(rng, 4, 100, "h"))
             for i in range(4)}
    metric = pm.DiarizationErrorRate(collar=0.5)
    if global_mapping:  # one mapping over all files == score the files laid end to end
        shift = lambda ts, o: [T(t.start + o, t.end + o, t.speaker) for t in ts]  # noqa: E731
        ref = [t for i, (r, _) in enumerate(pairs.values()) for t in shift(r, 200 * i)]
        hyp = [t for i, (_, h) in enumerate(pairs.values()) for t in shift(h, 200 * i)]
        metric(_annotation(ref), _annotation(hyp))
    else:
        for r, h in pairs.values():
            metric(_annotation(r), _annotation(h))
    r = der_many(pairs, collar=0.25, global_mapping=global_mapping)
    assert abs(r.der - abs(metric)) < 1e-3
