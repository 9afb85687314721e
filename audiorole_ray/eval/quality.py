"""AQ backends: one number per answer clip (16 kHz mono float32).

- ``audiobox`` (the paper's): Audiobox Aesthetics, production-quality axis (PQ), 0-10, from a
  local checkpoint (``checkpoint.pt`` as released, or a folder saved with ``save_pretrained``).
  Only the model module of ``audiobox-aesthetics`` is imported: its ``infer`` module imports
  torchaudio at load time, which PyPI ships as a CUDA build that fails beside a CPU torch. The
  10 s windowing of its predictor is done here on the tensor.
- ``distillmos`` (embedded): Distill-MOS, a speech-quality MOS on its own 1-5 scale, weights in
  the ``distillmos`` wheel. It is not Audiobox PQ and is reported as its own metric
  (``distillmos``), never rescaled to 0-10.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import time
import types
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingModelError, require
from audiorole_ray.io.audio import SAMPLE_RATE


@contextlib.contextmanager
def _without_torchaudio():
    """Let a module that imports torchaudio at the top (but does not use it on our path) import
    where torchaudio is missing or broken: a placeholder stands in during the import only."""
    try:
        importlib.import_module("torchaudio")
        yield
        return
    except Exception:  # noqa: BLE001 - any failure to import it (missing, CUDA libs) counts
        pass
    saved = {k: v for k, v in sys.modules.items() if k == "torchaudio" or k.startswith("torchaudio.")}
    for k in saved:
        del sys.modules[k]
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        yield
    finally:
        del sys.modules["torchaudio"]
        sys.modules.update(saved)


class DistillMos:
    """Distill-MOS (1-5) of a clip; the wheel's model resamples nothing: feed 16 kHz."""

    metric = "distillmos"
    scale = (1.0, 5.0)
    label = "Distill-MOS (1-5), AQ stand-in"

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 1):
        self.model, self.device, self.threads = model, device, threads
        self._net = None
        self.load_s = 0.0

    def describe(self) -> dict:
        return {"backend": "distillmos", "model": self.model or "embedded (distillmos 0.9.1 wheel, distill_mos_v7.pt)", "scale": "1-5"}

    def load(self) -> None:
        t = time.perf_counter()
        import torch

        require("xls_r_sqa", "xls-r-sqa==0.1.0 --no-deps", "Distill-MOS")
        with _without_torchaudio(), contextlib.redirect_stdout(None):  # it prints on load
            sqa = require("distillmos.sqa", "distillmos==0.9.1 --no-deps", "Distill-MOS")
            net = sqa.ConvTransformerSQAModel(load_weights=self.model is None)
        if self.model is not None:
            path = Path(self.model)
            if not path.is_file():
                raise MissingModelError(f"no Distill-MOS checkpoint at {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state.get("model", state))
        self._net = net.eval().to(self.device)
        self.load_s = time.perf_counter() - t

    def __call__(self, audio: np.ndarray) -> float:
        import torch

        if self._net is None:
            self.load()
        if audio.size < SAMPLE_RATE // 10:
            raise ValueError(f"clip too short for Distill-MOS ({audio.size / SAMPLE_RATE:.2f} s)")
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None].to(self.device)
            return float(self._net(x).reshape(-1)[0])


AES_CONFIG_KEYS = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer", "use_weighted_layer_sum",
                   "precision", "normalize_embed", "output_dim")
AES_WINDOW_S = 10.0  # the predictor's window and hop


class AudioboxPQ:
    """Audiobox Aesthetics production quality (PQ, 0-10), the paper's AQ."""

    metric = "aq"
    scale = (0.0, 10.0)
    label = "AQ: Audiobox Aesthetics PQ (0-10)"
    axis = "PQ"

    def __init__(self, model: str | None = None, device: str = "cpu", precision: str | None = None):
        if model is None:
            raise MissingModelError("the Audiobox Aesthetics AQ needs a local checkpoint (checkpoint.pt or a save_pretrained folder)")
        self.model, self.device, self.precision = model, device, precision
        self._net = None
        self._norm = None
        self.load_s = 0.0

    def describe(self) -> dict:
        return {"backend": "audiobox", "model": self.model, "axis": self.axis, "scale": "0-10"}

    def load(self) -> None:
        import torch

        t = time.perf_counter()
        require("audiobox_aesthetics", "audiobox-aesthetics==0.0.4 --no-deps rich submitit", "the Audiobox Aesthetics AQ")
        aes = importlib.import_module("audiobox_aesthetics.model.aes")
        path = Path(self.model)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise MissingModelError(f"{path} is not an Audiobox Aesthetics folder (no config.json)")
            net = aes.AesMultiOutput.from_pretrained(str(path), local_files_only=True)
        elif path.is_file():
            with open(path, "rb") as f:
                ckpt = torch.load(f, map_location="cpu", weights_only=False)
            cfg = {k: ckpt["model_cfg"][k] for k in AES_CONFIG_KEYS}
            if self.precision:
                cfg["precision"] = self.precision
            net = aes.AesMultiOutput(**cfg, target_transform=ckpt["target_transform"])
            net.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()})
        else:
            raise MissingModelError(f"no Audiobox Aesthetics checkpoint at {path}")
        if self.device == "cpu" and str(net.precision) != "torch.float32":
            # bf16 autocast on CPU is slow and not what the numbers were calibrated with on GPU
            net.precision, net.enable_autocast = torch.float32, False
        tt = net.target_transform[self.axis]
        self._norm = (float(tt["mean"]), float(tt["std"]))
        self._net = net.eval().to(self.device)
        self.load_s = time.perf_counter() - t

    def __call__(self, audio: np.ndarray) -> float:
        import torch

        if self._net is None:
            self.load()
        win = int(AES_WINDOW_S * SAMPLE_RATE)
        x = torch.from_numpy(np.ascontiguousarray(audio, np.float32))
        wavs, masks, weights = [], [], []
        for start in range(0, max(len(x), 1), win):
            piece = x[start : start + win]
            n = piece.numel()
            mask = torch.zeros(win, dtype=torch.bool)
            mask[:n] = True
            wavs.append(torch.nn.functional.pad(piece, (0, win - n)))
            masks.append(mask)
            weights.append(n / win)
        with torch.inference_mode():
            preds = self._net({"wav": torch.stack(wavs)[:, None].to(self.device), "mask": torch.stack(masks)[:, None].to(self.device)})
        mean, std = self._norm
        values = preds[self.axis].float().cpu().numpy() * std + mean
        w = np.asarray(weights)
        return float((values * w).sum() / w.sum())
