"""Loading pyannote.audio offline: the glue that changes with pyannote releases.

:func:`load_pipeline` builds a pyannote pipeline from local weights only, from

* a local directory holding a pipeline ``config.yaml`` (or the path of that file), whose
  ``segmentation`` / ``embedding`` / ``plda`` entries are paths relative to the config, absolute
  paths, ``$model/<subfolder>`` references, or Hugging Face ids that are already in the local
  cache; or
* a pipeline id already in the Hugging Face cache (``cache_dir`` or the default).

Nothing is downloaded: ``HF_HUB_OFFLINE=1`` holds while loading, every model reference is
resolved to a local file before pyannote sees it, and pyannote's usage telemetry is switched off
(it posts to a remote endpoint) unless ``telemetry=True``.

The ``speaker-diarization-3.1`` config names no PLDA (it clusters with
``AgglomerativeClustering``), but pyannote.audio 4 defaults the PLDA to a hub checkpoint; for
non-VBx clustering no PLDA is passed instead. See ``PYANNOTE.md`` beside this file.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'audiorole-ray[pyannote]'"
CONFIG_NAME = "config.yaml"
MODEL_FILE = "pytorch_model.bin"  # what pyannote's Model.from_pretrained(<dir>) looks for
PLDA_FILES = ("xvec_transform.npz", "plda.npz")
MODEL_KEYS = ("segmentation", "embedding")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NON_PYANNOTE_EMBEDDINGS = ("speechbrain/", "nvidia/")  # other toolkits' loaders; left as they are


def local_config_path(model_dir: Path) -> Path:
    """The pipeline ``config.yaml`` of ``model_dir`` (a folder or the file); FileNotFoundError
    naming the path if absent."""
    path = model_dir
    if not path.exists():
        raise FileNotFoundError(f"pyannote model directory not found: {path}")
    if path.is_dir():
        path = path / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no pipeline {CONFIG_NAME} in pyannote model directory {model_dir} "
                f"(expected {path}; see audiorole_ray/diarize/PYANNOTE.md for the layout)"
            )
    # absolute, not resolve(): a copied HF snapshot holds symlinks into blobs/, and model
    # references are relative to the config's own directory
    return path.absolute()


def load_pipeline(
    config_path: Path | None,
    *,
    repo_id: str | None,
    cache_dir: str | None,
    telemetry: bool,
    source: str,
) -> tuple[Any, Path]:
    """(pyannote pipeline, its config path), from ``config_path`` or the cached ``repo_id``.

    ``source`` names the weights in error messages.
    """
    if not telemetry:
        # read by pyannote.audio.telemetry at import and at every model/pipeline call
        os.environ["PYANNOTE_METRICS_ENABLED"] = "false"
    pa = _import_pyannote(source)

    with _hub_offline():
        if config_path is None:
            config_path = _cached_file(repo_id, CONFIG_NAME, cache_dir, what="pipeline config")
        config = _read_config(config_path)
        params = config["pipeline"].setdefault("params", {})
        klass = _pipeline_class(config["pipeline"]["name"])
        for key in MODEL_KEYS:
            if key in params:
                params[key] = _resolve_model(params[key], key, config_path.parent, cache_dir, config_path)
            elif _takes(klass, key):  # its default is a hub checkpoint
                raise ValueError(f"{config_path} names no {key} model (pipeline.params.{key}); nothing is downloaded")
        no_plda = _wants_no_plda(klass, params)
        if "plda" in params and params["plda"] is not None:
            params["plda"] = _resolve_plda(params["plda"], config_path.parent, cache_dir, config_path)
        if no_plda:
            params["plda"] = None
        with _allow_no_plda(klass) if no_plda else contextlib.nullcontext():
            pipeline = pa.Pipeline.from_pretrained(config, cache_dir=cache_dir)
    if pipeline is None:  # pyannote returns None instead of raising in a few cases
        raise RuntimeError(f"pyannote could not build the pipeline from {config_path}")
    return pipeline, config_path


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

