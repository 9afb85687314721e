"""Overlap-aware diarization from pyannote segmentation-3.0 windows and CAM++ embeddings.

segmentation-3.0 says well *when* one or two people talk (speech and overlap), but within a 10 s
window it often gives two different people the same local label when they do not overlap
(on the dev set, 30-40 % of the local speakers with over 0.5 s of solo speech mixed two people).
CAM++ on short windows tells people apart better. So:

1. ``speaker_count``: per frame of the episode, the rounded mean number of active local speakers
   over the windows that cover it: 0 (no speech), 1 or 2 (overlap).
2. Frames with one speaker form *solo regions*; the caller embeds 1.5 s windows inside them
   (never across overlapped speech), clusters them and cuts each region where the nearest
   window's speaker changes (as the ``vad`` mode does on VAD regions).
3. Each overlapped stretch gets two speakers: those its local speakers are identified with
   through their own single-speaker frames (``overlap_votes``); when only one is found (a
   backchannel that never speaks alone, say), the second is the cluster whose centroid is
   nearest to the CAM++ embedding of the overlapped audio, leaving out the first (the mixture
   is closest to its loudest voice, which is usually the one already found); with no embedding,
   the nearest other speaker in time (``nearest_label``).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from audiorole_ray.diarize.segmentation import FRAME_SIZE, FRAME_STEP, SAMPLE_RATE, powerset_matrix
from audiorole_ray.masks import runs
from audiorole_ray.records import Turn

FRAME_S = FRAME_STEP / SAMPLE_RATE  # 16.875 ms between output frames
FRAME_CENTER_S = (FRAME_SIZE - 1) / 2 / SAMPLE_RATE  # centre of frame 0, from its window start
FRAME_OFFSET_S = FRAME_CENTER_S - FRAME_S / 2  # frame g stands for [g * FRAME_S + offset, + FRAME_S)


def local_activity(logp: np.ndarray) -> np.ndarray:
    """(windows, frames, 7) log-probabilities -> (windows, frames, 3) 0/1 activity (the most
    likely powerset class of each frame)."""
    return powerset_matrix()[np.argmax(logp, axis=-1)].astype(np.int8)


def window_mean(values: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) mean of a (windows, frames) value over the windows covering each frame."""
    n_win, f = values.shape
    total = max(int(starts[-1]) + f if n_win else 0, n_frames)
    acc, cover = np.zeros(total), np.zeros(total)
    for w in range(n_win):
        s = int(starts[w])
        acc[s : s + f] += values[w]
        cover[s : s + f] += 1
    return (acc / np.maximum(cover, 1))[:n_frames]


def speaker_count(act: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) speakers per frame of the episode: the rounded mean over covering windows."""
    return np.rint(window_mean(act.sum(-1), starts, n_frames)).astype(np.int8)


def overlap_probability(logp: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) the model's probability that two people talk (its powerset classes with two
    speakers), averaged over covering windows: a more sensitive overlap detector than the
    most likely class, which misses about a third of overlapped time in meetings."""
    two = powerset_matrix().sum(-1) >= 2
    return window_mean(np.exp(logp[..., two]).sum(-1), starts, n_frames)


def frame_time(g) -> np.ndarray | float:
    return np.asarray(g) * FRAME_S + FRAME_OFFSET_S


def time_frame(t) -> np.ndarray | int:
    return np.rint((np.asarray(t) - FRAME_OFFSET_S) / FRAME_S).astype(int)


def regions(count: np.ndarray, value: int, min_s: float = 0.0) -> list[tuple[float, float]]:
    """Time ranges (s) of the runs of frames with ``count == value`` (``>= value`` for 2)."""
    mask = count >= value if value >= 2 else count == value
    return [(round(float(frame_time(a)), 3), round(float(frame_time(b)), 3))
            for a, b in runs(mask) if (b - a) * FRAME_S >= min_s]


def frame_labels(turns: list[Turn], names: list[str], n_frames: int) -> np.ndarray:
    """(n_frames,) index into ``names`` of the single speaker of each frame (-1: none)."""
    lab = np.full(n_frames, -1, dtype=int)
    idx = {n: i for i, n in enumerate(names)}
    for t in turns:
        a, b = max(int(time_frame(t.start)), 0), min(int(time_frame(t.end)), n_frames)
        lab[a:b] = idx[t.speaker]
    return lab


def overlap_votes(span: tuple[int, int], act: np.ndarray, starts: np.ndarray, count: np.ndarray,
                  labels: np.ndarray) -> list[int]:
    """Speakers of the overlapped frames [a, b) according to the local tracks, most votes first.

    In every window covering the stretch, each local speaker active in it votes for the label of
    the single-speaker frame nearest to the stretch *within the same contiguous run of that
    local speaker's activity*: the model keeps one label through a continuous stretch of speech,
    but after a pause it may reuse the label for someone else. A track with no single-speaker
    frame in its run (a backchannel wholly inside someone's turn) does not vote.
    """
    a, b = span
    n_win, f, _ = act.shape
    votes: Counter = Counter()
    dist: dict[int, int] = {}
    for w in np.flatnonzero((starts < b) & (starts + f > a)):
        s = int(starts[w])
        lo, hi = max(a, s) - s, min(b, s + f) - s
        for j in np.flatnonzero(act[w, lo:hi].any(axis=0)):
            track = act[w, :, j]
            seed = lo + int(np.flatnonzero(track[lo:hi])[0])
            left = seed - int(np.argmin(track[seed::-1])) + 1 if not track[: seed + 1].all() else 0
            right = seed + int(np.argmin(track[seed:])) if not track[seed:].all() else f
            own = s + np.arange(left, right)
            own = own[own < len(count)]
            own = own[(count[own] == 1) & (labels[own] >= 0)]
            if own.size == 0:
                continue
            d = np.minimum(np.abs(own - a), np.abs(own - (b - 1)))
            lab = int(labels[own[np.argmin(d)]])
            votes[lab] += 1
            dist[lab] = min(dist.get(lab, f), int(d.min()))
    return sorted(votes, key=lambda k: (-votes[k], dist[k]))


def nearest_label(span: tuple[int, int], labels: np.ndarray, exclude: tuple[int, ...] = ()) -> int | None:
    """The label of the single-speaker frame nearest to [a, b), other than ``exclude``."""
    solo = np.flatnonzero(labels >= 0)
    if exclude:
        solo = solo[~np.isin(labels[solo], exclude)]
    if solo.size == 0:
        return None
    a, b = span
    return int(labels[solo[np.argmin(np.minimum(np.abs(solo - a), np.abs(solo - (b - 1))))]])
