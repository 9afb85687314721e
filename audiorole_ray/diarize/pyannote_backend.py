"""The paper's diarizer: pyannote ``speaker-diarization-3.1``, loaded from local weights only.

pyannote.audio is an optional extra (``pip install 'audiorole-ray[pyannote]'``) and is imported
inside :meth:`PyannoteBackend.load`, so the default install never needs it. Weights come from

* a local directory holding a pipeline ``config.yaml`` (or the path of that file), whose
  ``segmentation`` / ``embedding`` / ``plda`` entries are paths relative to the config, absolute
  paths, ``$model/<subfolder>`` references, or Hugging Face ids that are already in the local
  cache; or
* ``repo_id=...``: a pipeline already in the Hugging Face cache (``cache_dir`` or the default).

Nothing is downloaded: ``HF_HUB_OFFLINE=1`` holds while loading, every model reference is
resolved to a local file before pyannote sees it, and pyannote's usage telemetry is switched off
(it posts to a remote endpoint) unless ``telemetry=True``.

The ``speaker-diarization-3.1`` config names no PLDA (it clusters with
``AgglomerativeClustering``), but pyannote.audio 4 defaults the PLDA to a hub checkpoint; for
non-VBx clustering this backend passes no PLDA instead. See ``PYANNOTE.md`` beside this file.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from audiorole_ray.diarize.base import SAMPLE_RATE, DiarizationBackend
from audiorole_ray.records import EpisodeDiarization, Turn

INSTALL_HINT = "pip install 'audiorole-ray[pyannote]'"
CONFIG_NAME = "config.yaml"
MODEL_FILE = "pytorch_model.bin"  # what pyannote's Model.from_pretrained(<dir>) looks for
PLDA_FILES = ("xvec_transform.npz", "plda.npz")
MODEL_KEYS = ("segmentation", "embedding")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NON_PYANNOTE_EMBEDDINGS = ("speechbrain/", "nvidia/")  # other toolkits' loaders; left as they are


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

    def local_config_path(self) -> Path:
        """The pipeline ``config.yaml`` of ``model_dir``; FileNotFoundError naming the path if absent."""
        assert self.model_dir is not None
        path = self.model_dir
        if not path.exists():
            raise FileNotFoundError(f"pyannote model directory not found: {path}")
        if path.is_dir():
            path = path / CONFIG_NAME
            if not path.is_file():
                raise FileNotFoundError(
                    f"no pipeline {CONFIG_NAME} in pyannote model directory {self.model_dir} "
                    f"(expected {path}; see audiorole_ray/diarize/PYANNOTE.md for the layout)"
                )
        # absolute, not resolve(): a copied HF snapshot holds symlinks into blobs/, and model
        # references are relative to the config's own directory
        return path.absolute()

    def load(self) -> None:
        t = time.perf_counter()
        # check local paths before anything heavy, so a bad path fails fast and clearly
        config_path = self.local_config_path() if self.model_dir is not None else None
        if not self.telemetry:
            # read by pyannote.audio.telemetry at import and at every model/pipeline call
            os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
        pa = _import_pyannote(self.source)
        import torch

        with _hub_offline():
            if config_path is None:
                config_path = _cached_file(self.repo_id, CONFIG_NAME, self.cache_dir, what="pipeline config")
            config = _read_config(config_path)
            params = config["pipeline"].setdefault("params", {})
            klass = _pipeline_class(config["pipeline"]["name"])
            for key in MODEL_KEYS:
                if key in params:
                    params[key] = _resolve_model(params[key], key, config_path.parent, self.cache_dir, config_path)
                elif _takes(klass, key):  # its default is a hub checkpoint
                    raise ValueError(f"{config_path} names no {key} model (pipeline.params.{key}); nothing is downloaded")
            no_plda = _wants_no_plda(klass, params)
            if "plda" in params and params["plda"] is not None:
                params["plda"] = _resolve_plda(params["plda"], config_path.parent, self.cache_dir, config_path)
            if no_plda:
                params["plda"] = None
            with _allow_no_plda(klass) if no_plda else contextlib.nullcontext():
                pipeline = pa.Pipeline.from_pretrained(config, cache_dir=self.cache_dir)
        if pipeline is None:  # pyannote returns None instead of raising in a few cases
            raise RuntimeError(f"pyannote could not build the pipeline from {config_path}")

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


def _import_pyannote(source: str):
    try:
        import pyannote.audio as pa
        from pyannote.audio import Pipeline  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"the pyannote diarization backend needs pyannote.audio, which is not installed in this "
            f"environment ({e}). Install the extra: {INSTALL_HINT} (then load the weights from "
            f"{source})."
        ) from e
    except OSError as e:  # a native library that does not match this torch (e.g. CUDA torchaudio)
        raise ImportError(
            f"pyannote.audio is installed but a native library failed to load: {e}. The PyPI "
            f"torchaudio wheels are CUDA builds; beside a CPU torch remove torchaudio/lib/*.so "
            f"(see audiorole_ray/diarize/PYANNOTE.md), or reinstall {INSTALL_HINT} with a matching "
            f"torch. Weights: {source}"
        ) from e
    major = int(str(getattr(pa, "__version__", "0")).split(".")[0] or 0)
    if major < 4:
        raise ImportError(
            f"the pyannote diarization backend needs pyannote.audio >= 4 (found {pa.__version__}); "
            f"{INSTALL_HINT} (weights: {source})"
        )
    return pa


@contextlib.contextmanager
def _hub_offline():
    """HF_HUB_OFFLINE=1 while loading (env and, if already imported, huggingface_hub's constant)."""
    old_env = os.environ.get("HF_HUB_OFFLINE")
    had_constants = "huggingface_hub.constants" in sys.modules
    old_const = getattr(sys.modules.get("huggingface_hub.constants"), "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if had_constants:
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            if had_constants:
                constants.HF_HUB_OFFLINE = old_const
            else:  # first imported inside: put back what the environment says
                constants.HF_HUB_OFFLINE = (old_env or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _cached_file(repo_id: str, filename: str, cache_dir: str | None, what: str, local: Path | None = None) -> Path:
    """A file of a Hugging Face repo from the local cache only; FileNotFoundError if absent."""
    from huggingface_hub import hf_hub_download

    subfolder = None
    if "/" in filename:
        subfolder, filename = filename.rsplit("/", 1)
    try:
        return Path(
            hf_hub_download(repo_id, filename, subfolder=subfolder, cache_dir=cache_dir, local_files_only=True)
        )
    except Exception as e:  # LocalEntryNotFoundError, EntryNotFoundError, OfflineModeIsEnabled...
        where = cache_dir or "the default Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        raise FileNotFoundError(
            f"{what} {repo_id}/{(subfolder + '/') if subfolder else ''}{filename} is not in {where} and "
            f"nothing is downloaded{f' (nor is there a local {local})' if local else ''}: copy the "
            f"weights there or use a local model folder (see audiorole_ray/diarize/PYANNOTE.md)"
        ) from e


def _read_config(path: Path) -> dict:
    import yaml

    with open(path) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or not isinstance(config.get("pipeline"), dict) or "name" not in config["pipeline"]:
        raise ValueError(
            f"{path} is not a pyannote pipeline config (it needs 'pipeline: name: "
            f"pyannote.audio.pipelines.SpeakerDiarization'); a model's own config.yaml is not enough"
        )
    return config


def _local_ref(value: str, base: Path) -> Path | None:
    """Path of a local reference (``$model/x``, relative or absolute path), or None for a hub id."""
    if value.startswith("$model/"):
        return base / value[len("$model/") :].split("@")[0]
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if (base / path).exists() or value.startswith((".", "~")) or not _HUB_ID.match(value):
        return base / path
    return None  # "org/name": a Hugging Face id (resolved from the local cache)


def _resolve_model(value, key: str, base: Path, cache_dir: str | None, config_path: Path):
    """A config's segmentation/embedding entry -> ``{"checkpoint": <local file>}``.

    A dict keeps its other keys (e.g. ``map_location``) but ``subfolder``/``revision``/``token``
    are folded into the local path.
    """
    if not isinstance(value, (str, dict)):
        return value  # already a model object
    extra: dict[str, Any] = {}
    if isinstance(value, dict):
        extra = {k: v for k, v in value.items() if k not in ("checkpoint", "subfolder", "revision", "token", "cache_dir")}
        ref, subfolder = str(value["checkpoint"]), value.get("subfolder")
    else:
        ref, subfolder = value, None
    if key == "embedding" and ref.startswith(_NON_PYANNOTE_EMBEDDINGS):
        return value
    local = _local_ref(ref, base)
    if local is None:
        name = f"{subfolder}/{MODEL_FILE}" if subfolder else MODEL_FILE
        path = _cached_file(ref, name, cache_dir, what=f"{key} model", local=base / ref)
    else:
        path = local / subfolder if subfolder else local
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{key} model of {config_path} not found: {path} (entry {value!r}; a model is a "
                f"pyannote checkpoint file, or a directory holding {MODEL_FILE})"
            )
    return {**extra, "checkpoint": str(path)}


def _resolve_plda(value, base: Path, cache_dir: str | None, config_path: Path):
    if not isinstance(value, (str, dict)):
        return value
    if isinstance(value, dict):
        ref, subfolder = str(value["checkpoint"]), value.get("subfolder")
    else:
        ref, subfolder = value, None
    local = _local_ref(ref, base)
    if local is None:
        paths = [_cached_file(ref, f"{subfolder}/{f}" if subfolder else f, cache_dir, "PLDA") for f in PLDA_FILES]
        return {"checkpoint": str(paths[0].parent)}
    path = local / subfolder if subfolder else local
    missing = [str(path / f) for f in PLDA_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"PLDA of {config_path} not found: {', '.join(missing)} (entry {value!r})")
    return {"checkpoint": str(path)}


def _pipeline_class(name: str):
    from pyannote.core.utils.helper import get_class_by_name

    return get_class_by_name(name, default_module_name="pyannote.pipeline.blocks")


def _takes(klass, name: str) -> bool:
    try:
        return name in inspect.signature(klass.__init__).parameters
    except (TypeError, ValueError):
        return False


def _wants_no_plda(klass, params: dict) -> bool:
    """True when the pipeline takes a PLDA it would fetch from the hub but will not use.

    pyannote.audio 4's ``SpeakerDiarization`` defaults ``plda`` (and ``clustering`` to VBx) to the
    hub's ``speaker-diarization-community-1``; 3.1 configs use AgglomerativeClustering and no PLDA.
    """
    if params.get("plda") is not None:
        return False
    try:
        signature = inspect.signature(klass.__init__).parameters
    except (TypeError, ValueError):
        return False
    if "plda" not in signature:
        return False
    clustering = params.get("clustering", signature.get("clustering").default if "clustering" in signature else None)
    if clustering == "VBxClustering":
        raise ValueError(
            "this pipeline config clusters with VBxClustering, which needs a PLDA: set "
            "pipeline.params.plda to a local directory holding xvec_transform.npz and plda.npz "
            "(or use clustering: AgglomerativeClustering as speaker-diarization-3.1 does)"
        )
    return True


@contextlib.contextmanager
def _allow_no_plda(klass):
    """Let ``SpeakerDiarization(plda=None)`` build without a PLDA (pyannote 4 would TypeError)."""
    module = sys.modules.get(klass.__init__.__module__)
    original = getattr(module, "get_plda", None) if module is not None else None
    if original is None:
        yield
        return

    def get_plda(plda, *args, **kwargs):
        return None if plda is None else original(plda, *args, **kwargs)

    module.get_plda = get_plda
    try:
        yield
    finally:
        module.get_plda = original


def _pick_device(device: str | None, torch):
    if device in (None, "", "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)
