"""The paper's diarizer: pyannote ``speaker-diarization-3.1``, loaded from local weights only.

pyannote.audio is an optional extra (``pip install 'audiorole-ray[pyannote]'``) and is imported
inside :meth:`PyannoteBackend.load`, so the default install never needs it. Weights come from a
local pipeline folder (``model``) or a pipeline already in the Hugging Face cache (``repo_id``);
:mod:`audiorole_ray.diarize.pyannote_offline` makes pyannote load them without the network.
This module runs the loaded pipeline on in-memory episodes. See ``PYANNOTE.md`` beside this file.
"""
from __future__ import annotations

import copy
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from audiorole_ray.diarize.base import DiarizationBackend
from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.diarize.pyannote_offline import load_pipeline, local_config_path
from audiorole_ray.records import EpisodeDiarization, Turn


class PyannoteBackend(DiarizationBackend):
    """pyannote ``SpeakerDiarization`` behind the :class:`DiarizationBackend` interface.

    Parameters
    ----------
    model
        Local pipeline directory (with ``config.yaml``) or the config file itself.
    repo_id
        Alternative to ``model``: a pipeline id (``pyannote/speaker-diarization-3.1``) that is
        already in the Hugging Face cache; ``cache_dir`` overrides the cache location.
    device
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``; ``None`` or ``"auto"``: CUDA when available.
    num_speakers, min_speakers, max_speakers
        Passed to the pipeline for every episode.
    params
        Nested pipeline hyper-parameters that override the config's ``params``, e.g.
        ``{"clustering": {"threshold": 0.65}}``.
    segmentation_batch_size, embedding_batch_size
        Override the config's batch sizes (larger on GPU).
    exclusive
        Return pyannote's exclusive (overlap-free) diarization instead of the full one.
    telemetry
        Leave pyannote.audio's usage telemetry on (off by default: it calls out to the network).
    """

    name = "pyannote"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        repo_id: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        params: dict[str, Any] | None = None,
        segmentation_batch_size: int | None = None,
        embedding_batch_size: int | None = None,
        exclusive: bool = False,
        telemetry: bool = False,
    ):
        if (model is None) == (repo_id is None):
            raise ValueError("PyannoteBackend needs exactly one of model (a local pipeline dir) or repo_id")
        self.model_dir = Path(model).expanduser() if model is not None else None
        self.repo_id = repo_id
        self.cache_dir = str(Path(cache_dir).expanduser()) if cache_dir is not None else None
        self.device = device
        self.speaker_kwargs = {
            k: v
            for k, v in (("num_speakers", num_speakers), ("min_speakers", min_speakers), ("max_speakers", max_speakers))
            if v is not None
        }
        self.params = copy.deepcopy(params) if params else None
        self.segmentation_batch_size = segmentation_batch_size
        self.embedding_batch_size = embedding_batch_size
        self.exclusive = exclusive
        self.telemetry = telemetry
        self._pipeline = None
        self._torch_device = None
        self.config_path: Path | None = None
        self._times: dict[str, float] = defaultdict(float)

    # -- loading ---------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return str(self.model_dir) if self.model_dir is not None else f"{self.repo_id} (Hugging Face cache)"

    def load(self) -> None:
        t = time.perf_counter()
        # check local paths before anything heavy, so a bad path fails fast and clearly
        config_path = local_config_path(self.model_dir) if self.model_dir is not None else None
        pipeline, config_path = load_pipeline(
            config_path, repo_id=self.repo_id, cache_dir=self.cache_dir, telemetry=self.telemetry, source=self.source
        )
        import torch

        if hasattr(pipeline, "legacy"):
            pipeline.legacy = False  # we want DiarizeOutput (with speaker_embeddings), not a bare Annotation
        if self.params:
            pipeline.instantiate(self.params)
        if self.segmentation_batch_size:
            pipeline.segmentation_batch_size = self.segmentation_batch_size
        if self.embedding_batch_size:
            pipeline.embedding_batch_size = self.embedding_batch_size
        self._torch_device = _pick_device(self.device, torch)
        pipeline.to(self._torch_device)
        self._pipeline = pipeline
        self.config_path = config_path
        self._times["load"] += time.perf_counter() - t

    def timings(self) -> dict[str, float]:
        return dict(self._times)

    # -- one episode -----------------------------------------------------------------------
    def diarize(self, episode_id: str, audio: np.ndarray) -> EpisodeDiarization:
        if self._pipeline is None:
            self.load()
        import torch

        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {audio.shape}")
        duration = len(audio) / SAMPLE_RATE
        self._times["audio_s"] += duration
        if len(audio) == 0:
            return EpisodeDiarization(episode_id, [], {}, {})

        waveform = torch.from_numpy(np.ascontiguousarray(audio)).unsqueeze(0)  # (channel=1, time)
        file = {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": episode_id}
        steps = _StepTimer()
        t = time.perf_counter()
        output = self._pipeline(file, hook=steps, **self.speaker_kwargs)
        steps.stop()
        for part, seconds in steps.parts().items():
            self._times[part] += seconds

        annotation, embeddings = _unpack(output, self.exclusive)
        labels = [str(label) for label in annotation.labels()]
        turns = annotation_turns(annotation, duration)
        speech: dict[str, float] = defaultdict(float)
        for turn in turns:
            speech[turn.speaker] += turn.duration
        centroids = {}
        missing = []
        for i, label in enumerate(labels):
            vec = embeddings[i] if embeddings is not None and i < len(embeddings) else None
            if _usable(vec):
                centroids[label] = np.asarray(vec, dtype=np.float64).tolist()
            elif speech.get(label, 0.0) > 0:
                missing.append(label)
        if missing:  # pyannote pads centroids with zeros when it finds more speakers than clusters
            t_fb = time.perf_counter()
            centroids.update(self._fallback_centroids(audio, turns, missing))
            self._times["embedding_fallback"] += time.perf_counter() - t_fb
        # the linking step needs a centroid for every speaker that has turns
        kept = set(centroids)
        turns = [turn for turn in turns if turn.speaker in kept]
        speech = {label: round(s, 3) for label, s in speech.items() if label in kept}
        self._times["total"] += time.perf_counter() - t
        return EpisodeDiarization(episode_id, turns, centroids, speech)

    def _fallback_centroids(self, audio: np.ndarray, turns: list[Turn], labels: list[str]) -> dict[str, list[float]]:
        """Mean embedding of a speaker's longest turns, with the pipeline's own embedding model."""
        import torch

        embed = getattr(self._pipeline, "_embedding", None)
        if embed is None:
            return {}
        min_samples = int(getattr(embed, "min_num_samples", 1))
        max_samples = 10 * SAMPLE_RATE
        out = {}
        for label in labels:
            own = sorted((t for t in turns if t.speaker == label), key=lambda t: -t.duration)[:5]
            vecs = []
            for turn in own:
                a = int(turn.start * SAMPLE_RATE)
                b = min(int(turn.end * SAMPLE_RATE), a + max_samples, len(audio))
                if b - a < max(min_samples, 1):
                    continue
                x = torch.from_numpy(np.ascontiguousarray(audio[a:b]))[None, None]
                vec = np.asarray(embed(x))[0]
                if _usable(vec):
                    vecs.append(vec)
            if vecs:
                out[label] = np.mean(vecs, axis=0).astype(np.float64).tolist()
        return out


# -- helpers (plain functions, testable without pyannote) --------------------------------------
def annotation_turns(annotation, duration: float) -> list[Turn]:
    """pyannote ``Annotation`` -> sorted Turns clipped to ``[0, duration]``, times rounded to 1 ms."""
    turns = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        start = round(max(0.0, float(segment.start)), 3)
        end = round(min(duration, float(segment.end)), 3)
        if end > start:
            turns.append(Turn(start, end, str(label)))
    return sorted(turns)


def _usable(vec) -> bool:
    if vec is None:
        return False
    vec = np.asarray(vec, dtype=np.float64)
    return vec.size > 0 and bool(np.all(np.isfinite(vec))) and bool(np.any(vec != 0))


def _unpack(output, exclusive: bool):
    """(Annotation, embeddings or None) from what the pipeline returned.

    pyannote.audio 4 returns ``DiarizeOutput`` (``speaker_embeddings`` rows follow
    ``speaker_diarization.labels()``); ``legacy`` pipelines and 3.x return an ``Annotation``, and
    3.x with ``return_embeddings=True`` a tuple.
    """
    if hasattr(output, "speaker_diarization"):
        annotation = output.exclusive_speaker_diarization if exclusive else output.speaker_diarization
        embeddings = output.speaker_embeddings
        if exclusive and embeddings is not None:
            # exclusive labels are a subset of the full ones; keep rows aligned to its labels()
            full = list(output.speaker_diarization.labels())
            embeddings = np.stack([embeddings[full.index(lab)] for lab in annotation.labels()]) if len(
                annotation.labels()
            ) else embeddings[:0]
        return annotation, embeddings
    if isinstance(output, tuple):
        return output[0], output[1]
    return output, None


class _StepTimer:
    """pyannote pipeline hook: wall time of segmentation, embedding and the rest (clustering...)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last: dict[str, float] = {}
        self.end: float | None = None

    def __call__(self, step_name, step_artefact, file=None, total=None, completed=None):
        self.last[step_name] = time.perf_counter()

    def stop(self):
        self.end = time.perf_counter()

    def parts(self) -> dict[str, float]:
        end = self.end or time.perf_counter()
        seg = self.last.get("segmentation")
        count = self.last.get("speaker_counting", seg)
        emb = self.last.get("embeddings")
        out = {}
        if seg is not None:
            out["segmentation"] = seg - self.t0
        if emb is not None and count is not None:
            out["embedding"] = emb - count
            out["clustering"] = end - emb
        return out


def _pick_device(device: str | None, torch):
    if device in (None, "", "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)
