"""Diarization error rate (DER) and cluster purity/coverage, vectorised on a frame grid.

Conventions (NIST md-eval / pyannote.metrics semantics):

* ``collar`` is the HALF-width: every reference turn boundary ``t`` excludes ``[t - collar, t + collar)``
  from scoring, in reference and hypothesis alike. ``collar=0.25`` here (the NIST/DIHARD
  "0.25 s collar") equals ``pyannote.metrics.diarization.DiarizationErrorRate(collar=0.5)``,
  whose ``collar`` is the full width centred on the boundary.
* Overlap is scored unless ``skip_overlap``: a frame with ``k`` reference speakers counts ``k``
  toward ``total``. Per frame with ``n_ref`` reference and ``n_hyp`` hypothesis speakers:
  missed = max(0, n_ref - n_hyp), false alarm = max(0, n_hyp - n_ref),
  confusion = min(n_ref, n_hyp) - n_correct, where n_correct counts reference speakers whose
  mapped hypothesis speaker is also active.
* The hypothesis -> reference mapping is one-to-one and maximises total co-occurrence over the
  scored region (Hungarian algorithm); pairs with no co-occurrence are left unmapped.
* ``der = (missed + false_alarm + confusion) / total``; with ``total == 0`` it is 0.0 when there
  is no error and 1.0 otherwise (as pyannote.metrics does).

Times are snapped to the ``step`` grid (boundaries rounded to the nearest multiple of ``step``),
so results are exact for grid-aligned times and within ``step / 2`` per boundary otherwise.
Frames are run-length encoded (runs between consecutive boundaries, weighted by length), so the
cost grows with the number of turns rather than with the file duration.
A speaker's overlapping turns with the same label are merged (a speaker is active or not).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from audiorole_ray.records import Turn


@dataclass
class DERResult:
    """DER and its components in seconds. ``mapping`` is hypothesis label -> reference label.
    ``per_file`` is filled by :func:`der_many` only."""

    der: float
    missed: float
    false_alarm: float
    confusion: float
    total: float
    mapping: dict[str, str] = field(default_factory=dict)
    per_file: dict[str, DERResult] = field(default_factory=dict)


@dataclass
class _Stats:
    """Mapping-independent sufficient statistics of one file (seconds)."""

    total: float
    missed: float
    false_alarm: float
    matched: float  # sum over frames of min(n_ref, n_hyp)
    cooc: np.ndarray  # (n_hyp, n_ref) co-occurrence seconds on scored frames
    hyp_labels: list[str]
    ref_labels: list[str]


def _frames(t, step: float) -> np.ndarray:
    return np.maximum(np.rint(np.asarray(t, dtype=np.float64) / step).astype(np.int64), 0)


def _activity(turns: list[Turn], grid: np.ndarray, step: float) -> tuple[np.ndarray, list[str]]:
    """(n_speakers, len(grid) - 1) boolean activity on the segments between consecutive grid
    frames (a run-length encoding of the frame grid), and the sorted speaker labels."""
    if not turns:
        return np.zeros((0, len(grid) - 1), dtype=bool), []
    labels, idx = np.unique([t.speaker for t in turns], return_inverse=True)
    start = np.searchsorted(grid, _frames([t.start for t in turns], step))
    end = np.searchsorted(grid, _frames([t.end for t in turns], step))
    diff = np.zeros((len(labels), len(grid)), dtype=np.int32)
    np.add.at(diff, (idx, start), 1)
    np.add.at(diff, (idx, end), -1)
    return np.cumsum(diff, axis=1)[:, :-1] > 0, [str(x) for x in labels]


def _grid(turns: list[Turn], step: float, extra=()) -> np.ndarray:
    """Sorted unique frame indices where anything starts or ends."""
    t = [x.start for x in turns] + [x.end for x in turns]
    return np.unique(np.concatenate([[0], _frames(t, step), np.asarray(extra, dtype=np.int64)]))


def _collar_edges(reference: list[Turn], collar: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """First and end frames of the unscored collars: ``[t - collar, t + collar)`` around every
    reference turn boundary ``t`` (empty with no collar)."""
    if collar < 0:
        raise ValueError(f"collar must be >= 0 s, got {collar}")
    b = _frames([t.start for t in reference] + [t.end for t in reference], step)
    c = int(_frames(collar, step))
    if not c or not len(b):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.maximum(b - c, 0), b + c


def _scored(grid: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(len(grid) - 1,) True on the grid segments outside every collar [first, end)."""
    diff = np.zeros(len(grid), dtype=np.int32)
    np.add.at(diff, np.searchsorted(grid, first), 1)
    np.add.at(diff, np.searchsorted(grid, end), -1)
    return np.cumsum(diff)[:-1] == 0


def _stats(reference: list[Turn], hypothesis: list[Turn], collar: float, skip_overlap: bool,
           step: float) -> _Stats:
    first, end = _collar_edges(reference, collar, step)
    grid = _grid([*reference, *hypothesis], step, np.concatenate([first, end]))
    ref, ref_labels = _activity(reference, grid, step)
    hyp, hyp_labels = _activity(hypothesis, grid, step)
    w = np.diff(grid).astype(np.float64) * step  # seconds per segment
    n_ref = ref.sum(axis=0)
    keep = _scored(grid, first, end)
    if skip_overlap:
        keep &= n_ref < 2
    ref, hyp, n_ref, w = ref[:, keep], hyp[:, keep], n_ref[keep], w[keep]
    n_hyp = hyp.sum(axis=0)
    return _Stats(
        total=float(n_ref @ w),
        missed=float(np.maximum(n_ref - n_hyp, 0) @ w),
        false_alarm=float(np.maximum(n_hyp - n_ref, 0) @ w),
        matched=float(np.minimum(n_ref, n_hyp) @ w),
        cooc=(hyp * w) @ ref.T.astype(np.float64),
        hyp_labels=hyp_labels,
        ref_labels=ref_labels,
    )


def _optimal_mapping(cooc: np.ndarray, hyp_labels: list[str], ref_labels: list[str]) -> dict[str, str]:
    if cooc.size == 0:
        return {}
    rows, cols = linear_sum_assignment(cooc, maximize=True)
    return {hyp_labels[r]: ref_labels[c] for r, c in zip(rows, cols) if cooc[r, c] > 0}


def _result(s: _Stats, mapping: dict[str, str]) -> DERResult:
    h = {lab: i for i, lab in enumerate(s.hyp_labels)}
    r = {lab: i for i, lab in enumerate(s.ref_labels)}
    correct = sum(s.cooc[h[a], r[b]] for a, b in mapping.items() if a in h and b in r)
    return _finish(s.total, s.missed, s.false_alarm, s.matched - correct, mapping)


def _finish(total, missed, false_alarm, confusion, mapping) -> DERResult:
    confusion = max(confusion, 0.0)
    err = missed + false_alarm + confusion
    rate = err / total if total > 0 else (0.0 if err <= 0 else 1.0)
    return DERResult(rate, missed, false_alarm, confusion, total, dict(mapping))


def der(reference: list[Turn], hypothesis: list[Turn], collar: float = 0.25,
        skip_overlap: bool = False, step: float = 0.001) -> DERResult:
    """DER of one file with the optimal one-to-one speaker mapping (see module docstring)."""
    s = _stats(reference, hypothesis, collar, skip_overlap, step)
    return _result(s, _optimal_mapping(s.cooc, s.hyp_labels, s.ref_labels))


def der_many(pairs: dict[str, tuple[list[Turn], list[Turn]]], collar: float = 0.25,
             skip_overlap: bool = False, step: float = 0.001,
             global_mapping: bool = False) -> DERResult:
    """Corpus DER over ``{file: (reference, hypothesis)}``, summing components over files.

    ``global_mapping=False``: each file gets its own optimal mapping (standard corpus DER).
    ``global_mapping=True``: one mapping for all files, from co-occurrence summed over files, so
    the same hypothesis label must be the same reference speaker in every file (scores
    series-level labels; reference labels are taken as global too). The returned ``mapping`` is
    that global mapping (empty for per-file); ``per_file`` holds each file's result."""
    stats = {k: _stats(r, h, collar, skip_overlap, step) for k, (r, h) in pairs.items()}
    mapping: dict[str, str] = {}
    if global_mapping:
        hl = sorted({x for s in stats.values() for x in s.hyp_labels})
        rl = sorted({x for s in stats.values() for x in s.ref_labels})
        hi, ri = {x: i for i, x in enumerate(hl)}, {x: i for i, x in enumerate(rl)}
        cooc = np.zeros((len(hl), len(rl)))
        for s in stats.values():
            cooc[np.ix_([hi[x] for x in s.hyp_labels], [ri[x] for x in s.ref_labels])] += s.cooc
        mapping = _optimal_mapping(cooc, hl, rl)
        per_file = {k: _result(s, mapping) for k, s in stats.items()}
    else:
        per_file = {k: _result(s, _optimal_mapping(s.cooc, s.hyp_labels, s.ref_labels))
                    for k, s in stats.items()}
    res = [per_file[k] for k in pairs]
    out = _finish(sum(x.total for x in res), sum(x.missed for x in res),
                  sum(x.false_alarm for x in res), sum(x.confusion for x in res), mapping)
    out.per_file = per_file
    return out


def cluster_seconds(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]], ref_speaker: str,
                    step: float = 0.001, collar: float = 0.0) -> tuple[dict[str, float], dict[str, float], float]:
    """Summed over files: per hypothesis label, the seconds it is active together with
    ``ref_speaker`` (overlap included) and its active seconds; and ``ref_speaker``'s seconds.
    ``collar`` (half-width, as in :func:`der`) leaves ``[t - collar, t + collar)`` around every
    reference turn boundary, of any speaker, out of all three; 0: everything is counted."""
    cooc: dict[str, float] = {}
    hyp_time: dict[str, float] = {}
    ref_time = 0.0
    for f in sorted(set(reference) | set(hypothesis)):
        first, end = _collar_edges(list(reference.get(f, [])), collar, step)
        ref = [t for t in reference.get(f, []) if t.speaker == ref_speaker]
        hyp = list(hypothesis.get(f, []))
        grid = _grid(ref + hyp, step, np.concatenate([first, end]))
        w = np.diff(grid) * step * _scored(grid, first, end)
        H, hl = _activity(hyp, grid, step)
        R, _ = _activity(ref, grid, step)
        ref_time += float(R.sum(axis=0) @ w)
        for lab, h, c in zip(hl, H @ w, (H & R.any(axis=0)) @ w):
            hyp_time[lab] = hyp_time.get(lab, 0.0) + float(h)
            cooc[lab] = cooc.get(lab, 0.0) + float(c)
    return cooc, hyp_time, ref_time


def pick_cluster(sums: tuple[dict[str, float], dict[str, float], float],
                 label: str | None = None) -> tuple[float, float, str | None]:
    """``(purity, coverage, h)`` from :func:`cluster_seconds`' sums: ``h`` is ``label`` if given,
    else the hypothesis label with the most co-occurrence with the reference speaker.
    purity = co-occurrence / time of ``h``; coverage = co-occurrence / the speaker's time.
    ``(0.0, 0.0, None)`` when ``h`` never meets the speaker (also for a given ``label``)."""
    cooc, hyp_time, ref_time = sums
    best = label if label is not None else max(sorted(cooc), key=cooc.get, default=None)
    if best is None or cooc.get(best, 0.0) <= 0:
        return 0.0, 0.0, None
    return cooc[best] / hyp_time[best], cooc[best] / ref_time, best


def cluster_purity_coverage(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]],
                            ref_speaker: str, step: float = 0.001, collar: float = 0.0,
                            label: str | None = None) -> tuple[float, float, str | None]:
    """How well one hypothesis cluster captures ``ref_speaker`` across files (global labels):
    :func:`pick_cluster` over :func:`cluster_seconds` (with the same ``collar``)."""
    return pick_cluster(cluster_seconds(reference, hypothesis, ref_speaker, step, collar), label)


def silence_share(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]], hyp_label: str,
                  step: float = 0.001) -> float:
    """Share of ``hyp_label``'s time (over all files) where no reference speaker speaks, no collar:
    the part of its impurity that is boundary slack or false alarm rather than another person.
    0.0 when ``hyp_label`` never speaks."""
    anyone = {f: [Turn(t.start, t.end, "*") for t in turns] for f, turns in reference.items()}
    cooc, hyp_time, _ = cluster_seconds(anyone, hypothesis, "*", step)
    mine = hyp_time.get(hyp_label, 0.0)
    return 1.0 - cooc.get(hyp_label, 0.0) / mine if mine else 0.0


def clean_purity(reference: dict[str, list[Turn]], hypothesis: dict[str, list[Turn]], ref_speaker: str,
                 hyp_label: str, possible_overlap: dict[str, list] | None = None, step: float = 0.001) -> tuple[float, float]:
    """What a corpus of ``hyp_label``'s clean clips would hold: the time where ``hyp_label`` is the
    only hypothesis speaker and not inside a ``possible_overlap`` [start, end] stretch of the file (the
    corpus cuts target clips to such time), and the share of it where ``ref_speaker`` is the only
    reference speaker (no collar). Missed overlap and another person's speech both lower it.
    Returns ``(share, seconds)``; ``(0.0, 0.0)`` with no such time."""
    alone = clean = 0.0
    for f in sorted(set(reference) | set(hypothesis)):
        ref, hyp = list(reference.get(f, [])), list(hypothesis.get(f, []))
        if not any(t.speaker == hyp_label for t in hyp):
            continue
        cut = [Turn(float(a), float(b), "?") for a, b in (possible_overlap or {}).get(f, []) if b > a]
        grid = _grid(ref + hyp + cut, step)
        w = np.diff(grid) * step
        H, hl = _activity(hyp, grid, step)
        R, rl = _activity(ref, grid, step)
        mine = (H.sum(axis=0) == 1) & H[hl.index(hyp_label)]
        if cut:
            mine &= ~_activity(cut, grid, step)[0].any(axis=0)
        theirs = ((R.sum(axis=0) == 1) & R[rl.index(ref_speaker)]) if ref_speaker in rl else np.zeros_like(mine)
        alone += float(mine @ w)
        clean += float((mine & theirs) @ w)
    return (clean / alone if alone else 0.0), alone
