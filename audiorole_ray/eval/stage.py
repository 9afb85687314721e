"""The per-item logic of ARP-Eval: one (system, exchange) in, its scores out.

A plain class (``setup()`` once per worker, ``process_item(item)`` per item) that the Ray Data
pass wraps. Each metric fails on its own: an answer too short for an embedding still gets its AQ
and CQ, and the reason lands in ``<metric>_error``. Only a missing answer fails the whole item.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from audiorole_ray import registry
from audiorole_ray.eval import prompts
from audiorole_ray.eval.items import ClipReader
from audiorole_ray.eval.systems import AnswerSource, SystemSpec
from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.pipeline.stage import Output, Stage


@dataclass
class EvalSettings:
    corpus: str
    output: str
    systems: list[dict]  # SystemSpec fields
    aq: str = "distillmos"
    aq_model: str | None = None
    ap: str = "campplus"
    ap_model: str | None = None
    asr_model: str | None = None  # None: the embedded Whisper tiny.en
    cp_standin: bool = True
    text_judge: dict | None = None  # {"url", "model", "api_key_env", "concurrency"}
    audio_judge: dict | None = None
    languages: dict[str, str] = field(default_factory=dict)  # series -> language of its answers (default en)
    names: dict[str, str] = field(default_factory=dict)  # series / character id -> display name for prompts
    api: dict = field(default_factory=dict)  # openai:MODEL systems: url, key_env, voice
    device: str = "cpu"
    threads: int = 1


class ItemScorer:
    """Scores items; builds its backends once in :meth:`setup`."""

    def __init__(self, settings: EvalSettings):
        self.s = settings
        self._ready = False

    # -- set-up -------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._ready:
            return
        import torch

        from audiorole_ray.eval.references import load_reference

        torch.set_num_threads(self.s.threads)
        s = self.s
        self.clips = ClipReader(s.corpus)
        self.sources = {d["name"]: AnswerSource(SystemSpec(**d), s.corpus, s.output, self.clips, s.names, s.api) for d in s.systems}
        self.aq = registry.create("aq", s.aq, model=s.aq_model, device=s.device)
        self.ap = registry.create("speaker_embedding", s.ap, model=s.ap_model, device=s.device)
        self.style = registry.create("cp_standin", "style") if s.cp_standin else None
        self.asr = make_asr(s.asr_model, s.device)
        for backend in (self.aq, self.ap):
            backend.load()
        self.asr.load()
        self.asr.model_dir()  # a wrong --asr-model fails here, in setup, not per item
        self.text_judge = make_judge(s.text_judge) if s.text_judge else None
        self.audio_judge = make_judge(s.audio_judge) if s.audio_judge else None
        self._refs: dict[str, dict] = {}
        self._ref_audio: dict[str, np.ndarray] = {}
        self._load_reference = lambda c: load_reference(s.output, c)
        self._ready = True

    def reference(self, character: str) -> dict:
        if character not in self._refs:
            self._refs[character] = self._load_reference(character)
        return self._refs[character]

    def reference_audio(self, character: str) -> np.ndarray:
        if character not in self._ref_audio:
            from audiorole_ray.eval.systems import decode_file

            clip = self.reference(character).get("cp_clip")
            if not clip:
                raise ValueError(f"no reference clip of {character} for the audio judge")
            self._ref_audio[character] = decode_file(clip["uri"])
        return self._ref_audio[character]

    # -- one item -----------------------------------------------------------------------------
    def process_item(self, item: dict) -> dict:
        self.setup()
        t0 = time.perf_counter()
        audio, meta = self.sources[item["system"]].answer(item)
        if audio.size == 0:
            raise ValueError("the answer is empty")
        out: dict[str, Any] = {"answer_s": round(audio.size / SAMPLE_RATE, 3), **meta}
        times: dict[str, float] = {"answer": time.perf_counter() - t0}
        ref = self.reference(item["character"])
        role = self.s.names.get(item["character"], item["character"])
        tv = self.s.names.get(item["series"], item["series"])

        def measure(name: str, fn, keys: tuple[str, ...] | None = None):
            t = time.perf_counter()
            try:
                out.update(fn())
                out.setdefault(f"{name}_error", "")
            except Exception as exc:  # noqa: BLE001 - one metric's failure is recorded, the rest go on
                out[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
                for key in keys or (name,):  # the column exists even when every item failed it
                    out.setdefault(key, None)
            times[name] = time.perf_counter() - t

        measure(self.aq.metric, lambda: {self.aq.metric: round(float(self.aq(audio)), 4)})
        measure("ap", lambda: {"ap": round(self._ap(audio, ref), 4)})
        if self.style is not None:
            measure("style_sim", lambda: {"style_sim": round(self._style(audio, ref), 4)})
        measure("transcript", lambda: self._transcribe(audio, self.s.languages.get(item["series"], "en")),
                ("transcript", "intelligibility"))
        if self.text_judge is not None:
            def cq() -> dict:
                if out.get("transcript") is None:
                    raise ValueError(f"no transcript to judge ({out.get('transcript_error')})")
                return self._judge("cq", self.text_judge, [
                    {"type": "text", "text": prompts.cq(role, tv, item["a_text"], out["transcript"])}])

            measure("cq", cq)
            if not out.get("transcript") and not out.get("cq_error"):
                out["cq_note"] = "empty transcript"
        if self.audio_judge is not None:
            measure("cp", lambda: self._judge("cp", self.audio_judge, self._cp_content(role, tv, item["character"], audio)))
        out["timings"] = json.dumps({k: round(v, 4) for k, v in times.items()})
        return out

    def _transcribe(self, audio: np.ndarray, language: str) -> dict:
        """The answer's transcript (for CQ) and ``intelligibility``, the CQ stand-in: Whisper's
        mean token probability, exp(avg log-prob) weighted by segment length, 0-1. It says how
        clearly the answer is words, not whether they are a good answer."""
        segments = self.asr._run(np.ascontiguousarray(audio, np.float32), language, without_timestamps=True)
        text = " ".join(seg.text.strip() for seg in segments).strip()
        weights = np.array([max(seg.end - seg.start, 1e-3) for seg in segments])
        logp = np.array([seg.avg_logprob for seg in segments])
        conf = float(np.exp((logp * weights).sum() / weights.sum())) if len(segments) else 0.0
        return {"transcript": text, "intelligibility": round(conf, 4)}

    def _ap(self, audio: np.ndarray, ref: dict) -> float:
        from audiorole_ray.eval.references import reference_embedding
        from audiorole_ray.eval.speaker import cosine

        c = reference_embedding(ref)
        if c is None:
            raise ValueError(ref.get("error") or "no reference embedding for this character")
        return cosine(self.ap(audio), c)

    def _style(self, audio: np.ndarray, ref: dict) -> float:
        prof = (ref.get("style") or {}).get("profile")
        if prof is None:
            raise ValueError(ref.get("error") or "no style profile for this character")
        return self.style(audio, prof)

    def _cp_content(self, role: str, tv: str, character: str, audio: np.ndarray) -> list[dict]:
        from audiorole_ray.eval.judge import audio_part, text_part

        return [text_part(prompts.cp(role, tv)),
                text_part(prompts.CP_REFERENCE_LABEL.replace("{role}", role)), audio_part(self.reference_audio(character), SAMPLE_RATE),
                text_part(prompts.CP_ANSWER_LABEL), audio_part(audio, SAMPLE_RATE)]

    @staticmethod
    def _judge(name: str, judge, content: list[dict]) -> dict:
        r = judge.score(content)
        return {name: r.score, f"{name}_raw": json.dumps(r.raw, ensure_ascii=False), f"{name}_error": r.error,
                f"{name}_attempts": r.attempts}


def make_judge(cfg: dict):
    from audiorole_ray.eval.judge import ChatClient, ScoreJudge

    chat = ChatClient(cfg["url"], cfg["model"], api_key_env=cfg.get("api_key_env", "OPENAI_API_KEY"),
                      concurrency=cfg.get("concurrency", 4), timeout_s=cfg.get("timeout_s", 120.0),
                      max_retries=cfg.get("max_retries", 6), backoff_s=cfg.get("backoff_s", 1.0))
    low, high = prompts.SCORE_RANGE
    return ScoreJudge(chat, low, high)


def make_asr(model: str | None, device: str):
    """The registry's Whisper backend (faster-whisper): the embedded tiny.en, or a local
    CTranslate2 checkpoint (Whisper turbo on GPU nodes). Clips one by one: packing several
    answers into one 30 s window would let words cross from one answer into another."""
    return registry.create("asr", "whisper", model=model, device=device, pack=False)


# A run without an openai: system resolves no endpoint; its items hash the URL the job used to
# default to, so outputs made before endpoints were resolved resume instead of paying judges again.
HASHED_URL = "https://api.openai.com/v1"

# what the pass carries per item (besides id, uri, inputs): references to audio, never audio
ITEM_FIELDS = ("system", "character", "series", "dialogue_id", "turn_index", "exchange", "a_text", "a_audio_path",
               "a_audio_key", "b_text", "b_audio_path", "b_audio_key", "context")
IDENTITY = ("system", "character", "series", "dialogue_id", "turn_index", "exchange")


@dataclass
class EvalStage(Stage):
    """The pass's stage on the lead's resumable runner: one marker per (system, exchange)."""

    name: ClassVar[str] = "evaluate"
    marker_kind: ClassVar[str] = "evaluated"
    fields: ClassVar[tuple[str, ...]] = ITEM_FIELDS
    config: EvalSettings | None = None

    def settings(self) -> dict:
        """What shapes every score (judges by URL and model; key variables by name only)."""
        c = self.config
        return {"aq": [c.aq, c.aq_model], "ap": [c.ap, c.ap_model], "asr": c.asr_model, "style": c.cp_standin,
                "text_judge": _judge_id(c.text_judge), "audio_judge": _judge_id(c.audio_judge), "names": c.names,
                "languages": c.languages, "api": {"url": c.api.get("url", HASHED_URL), "voice": c.api.get("voice")}}

    def setup(self) -> None:
        self._scorer = ItemScorer(self.config)
        self._scorer.setup()

    def process_item(self, item: dict) -> Output:
        out = self._scorer.process_item(item)
        files = out.pop("answer_file", None)
        return Output({**{k: item[k] for k in IDENTITY}, **out}, audio_s=out["answer_s"],
                      outputs={files[0]: files[1]} if files else {})


def _judge_id(cfg: dict | None) -> dict | None:
    return None if not cfg else {"url": cfg["url"], "model": cfg["model"]}
