"""Transcribe stage: plan an episode's dialogues from its diarization, then ASR of every
utterance the planning filters kept, then the text filters (their verdict is recorded per
utterance; nothing is removed from the plan).

Planning runs here, in the worker, rather than on the driver: the driver sends the series-level
labels and targets (a few ids), never the plan, so its memory does not grow with the corpus.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from audiorole_ray import registry
from audiorole_ray.corpus.plan import PlanSettings, plan_episode
from audiorole_ray.filters import text_drop_reason
from audiorole_ray.io import audio as audio_io
from audiorole_ray.link import relabel
from audiorole_ray.pipeline.stage import Output, Stage, resolve_device
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import Diarized, Transcribed, Turn, to_dict


def episode_turns(state_uri: str, episode_id: str, mapping: dict[str, str]) -> tuple[list[Turn], list[list[float]]]:
    """The episode's diarized turns with series-level speaker ids, and its possible overlap."""
    marker = MarkerStore(state_uri).read("diarized", [episode_id])[episode_id]
    d = marker.load(Diarized).diarization
    return relabel(d.turns, mapping), d.possible_overlap


@dataclass
class TranscribeStage(Stage):
    name = "transcribe"
    marker_kind = "transcribed"
    fields = ("spec",)  # JSON: mapping (local -> series label), targets, test_scenes, language

    asr: str = "whisper"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    plan: PlanSettings = field(default_factory=PlanSettings)
    device: str = "auto"

    def settings(self) -> dict:
        return {"asr": self.asr, "version": registry.get("asr", self.asr).version, "model": self.model,
                "options": self.options, "plan": to_dict(self.plan)}

    def setup(self) -> None:
        device = resolve_device(self.device, self.num_gpus)
        self._asr = registry.create("asr", self.asr, model=self.model, device=device, **self.options)
        self._asr.load()

    def process_item(self, item: dict) -> Output:
        spec = json.loads(item["spec"])
        turns, possible_overlap = episode_turns(self.state_uri, item["id"], spec["mapping"])
        plan = plan_episode(item["id"], turns, spec["targets"], self.plan, spec["test_scenes"], possible_overlap)
        todo = [u for u in plan.utterances if not u.drop]
        clips = audio_io.load_segments(item["uri"], [(u.start, u.end) for u in todo], audio_io.SAMPLE_RATE)
        texts = self._asr.transcribe(clips, language=spec["language"]) if clips else []
        for u, text in zip(todo, texts):
            u.text = text
            u.drop = text_drop_reason(text, spec["language"], self.plan.filters)
        payload = Transcribed(plan.utterances, plan.too_short, plan.truncated, plan.overlap_trimmed,
                              plan.possible_overlap_cut)
        return Output(payload, audio_s=sum(c.size for c in clips) / audio_io.SAMPLE_RATE)
