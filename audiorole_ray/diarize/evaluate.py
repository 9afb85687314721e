"""Scoring of diarization against reference turns held in memory: the figures issue 13 names
(DER with series-level labels, main-character purity and coverage, overlapped-speech detection).
``audiorole_ray.metrics.score.score_series`` does the same from a job's output folder."""
from __future__ import annotations

import numpy as np

from audiorole_ray.masks import runs
from audiorole_ray.metrics.der import clean_purity, cluster_seconds, der_many, pick_cluster, silence_share
from audiorole_ray.records import Turn


def overlap_time(turns: list[Turn], step: float = 0.001) -> np.ndarray:
    """Frame indices (at ``step``) where two or more speakers are active."""
    if not turns:
        return np.zeros(0, dtype=np.int64)
    ends = max(t.end for t in turns)
    n = int(np.ceil(ends / step)) + 1
    diff = np.zeros(n + 1, dtype=np.int32)
    for spk in {t.speaker for t in turns}:
        mine = np.zeros(n + 1, dtype=np.int32)  # a speaker counts once even if his turns overlap
        for t in turns:
            if t.speaker == spk:
                mine[int(round(t.start / step))] += 1
                mine[int(round(t.end / step))] -= 1
        diff[:-1] += np.cumsum(mine)[:-1] > 0
    return np.flatnonzero(diff[:-1] >= 2)


def overlap_detection(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]],
                      step: float = 0.001) -> dict:
    """Precision and recall of overlapped time (2+ speakers), summed over files, no collar."""
    tp = hyp_s = ref_s = 0.0
    for f in reference:
        r, h = overlap_time(reference[f], step), overlap_time(hypothesis.get(f, []), step)
        tp += np.intersect1d(r, h, assume_unique=True).size * step
        hyp_s += h.size * step
        ref_s += r.size * step
    return {
        "osd_precision": tp / hyp_s if hyp_s else (1.0 if not ref_s else 0.0),
        "osd_recall": tp / ref_s if ref_s else 1.0,
        "overlap_ref_s": ref_s,
        "overlap_hyp_s": hyp_s,
    }


def score_turns(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]], main: str,
                collar: float = 0.25, hyp_main: str | None = None, possible_overlap: dict[str, list] | None = None,
                purity_collar: float | None = None) -> dict:
    """Series-level DER (one mapping over all files; collar 0.25 s, overlap scored), per-file
    mapped DER, main-character purity/coverage (with no collar, and with the DER's) and overlap
    detection for one series.
    ``hyp_main``: the speaker the pipeline calls the main character, checked against the cluster
    that holds the true main character. ``possible_overlap``: per file, the diarizer's [start, end]
    stretches of possible overlap, which clean clips leave out (``main_clean_*``). ``purity_collar``:
    the collar of ``main_*_collar`` (default: ``collar``)."""
    pairs = {k: (reference[k], hypothesis.get(k, [])) for k in reference}
    series = der_many(pairs, collar=collar, global_mapping=True)
    per_file = der_many(pairs, collar=collar, global_mapping=False)
    everything = cluster_seconds(reference, hypothesis, main)
    purity, coverage, label = pick_cluster(everything)
    purity_collar = collar if purity_collar is None else purity_collar
    collared = cluster_seconds(reference, hypothesis, main, collar=purity_collar)
    purity_c, coverage_c, _ = pick_cluster(collared, label) if label else (0.0, 0.0, None)
    clean, clean_s = clean_purity(reference, hypothesis, main, label, possible_overlap) if label else (0.0, 0.0)
    silence = silence_share(reference, hypothesis, label) if label else 0.0
    total = max(series.total, 1e-9)
    return {
        "der": series.der,
        "missed": series.missed / total,
        "false_alarm": series.false_alarm / total,
        "confusion": series.confusion / total,
        "der_per_file_mapping": per_file.der,
        "main_purity": purity,
        "main_coverage": coverage,
        "main_cluster": label,
        # the same cluster with time within ``purity_collar`` of any reference boundary left out
        # (as the DER does), so what remains is who it holds rather than where its turns start
        # and end; and the share of its time that is still scored
        "purity_collar": purity_collar,
        "main_purity_collar": purity_c,
        "main_coverage_collar": coverage_c,
        "main_scored_collar": collared[1].get(label, 0.0) / everything[1][label] if label else 0.0,
        # the cluster's time where nobody speaks (its edges, false alarm), and its purity without it:
        # how much of the impurity is another person
        "main_silence": silence,
        "main_purity_speech": purity / (1 - silence) if silence < 1 else 0.0,
        # of that cluster's time with nobody else named (what clean target clips keep), the share
        # where the true main character speaks alone
        "main_clean_purity": clean,
        "main_clean_s": clean_s,
        # the pipeline's main character (most speech after linking) is the true one's cluster
        "main_found": hyp_main is None or label == hyp_main,
        "ref_speakers": len({t.speaker for ts in reference.values() for t in ts}),
        "hyp_speakers": len({t.speaker for ts in hypothesis.values() for t in ts}),
        **overlap_detection(reference, hypothesis),
    }


def oracle_turns(reference: list[Turn], count: np.ndarray) -> list[Turn]:
    """A front-end's ceiling: its own decisions of how many people talk in each frame (``count``,
    segmentation-3.0's frames of ``diarize.segmented``), named as well as any clustering could.
    Where c people are heard, the reference speakers present are named (those whose turn began
    first, when more than c); where fewer than c are present (speech the front-end hears in a
    pause, an overlap it makes longer than it was), the speakers nearest in time make up the
    number, as a diarizer extending a turn would. Scored like a hypothesis, this shows what
    naming alone can reach on that front-end's speech and overlap decisions."""
    from audiorole_ray.diarize.segmented import frame_time, time_frame  # (imports the model's torch code)

    n = len(count)
    names = sorted({t.speaker for t in reference})
    if not names or not n:
        return []
    active = np.zeros((len(names), n), bool)
    began = np.full((len(names), n), np.inf)
    for t in reference:
        k = names.index(t.speaker)
        a, b = max(int(time_frame(t.start)), 0), min(int(time_frame(t.end)), n)
        active[k, a:b] = True
        began[k, a:b] = np.minimum(began[k, a:b], t.start)
    frames = np.arange(n)
    distance = np.full((len(names), n), np.inf)
    for k in range(len(names)):
        on = np.flatnonzero(active[k])
        if on.size:
            i = np.searchsorted(on, frames)
            distance[k] = np.minimum(np.abs(frames - on[np.clip(i - 1, 0, on.size - 1)]),
                                     np.abs(on[np.clip(i, 0, on.size - 1)] - frames))
    named = np.zeros((len(names), n), bool)
    for g in np.flatnonzero(count >= 1):
        c = int(count[g])
        present = sorted(np.flatnonzero(active[:, g]), key=lambda k: began[k, g])[:c]
        rest = sorted((k for k in range(len(names)) if k not in present), key=lambda k: distance[k, g])
        named[present + rest[: c - len(present)], g] = True
    end = frame_time(n)
    return sorted(Turn(round(float(frame_time(a)), 3), round(float(min(frame_time(b), end)), 3), names[k])
                  for k in range(len(names)) for a, b in runs(named[k]))
