"""GLM-4-Voice-Decoder's HiFT vocoder (CosyVoice's ``HiFTGenerator``), the paper's.

Nothing of GLM-4-Voice is on PyPI and its weights are on a model hub, so this backend needs two
local things: ``model``, a ``glm-4-voice-decoder`` folder (``config.yaml``, ``hift.pt``), and
``repo``, a checkout of the GLM-4-Voice repository (its ``cosyvoice`` fork and
``third_party/Matcha-TTS``; or set ``GLM4VOICE_REPO``). The HiFT is built by the official
``config.yaml`` through ``hyperpyyaml``, exactly as GLM-4-Voice's ``AudioDecoder`` builds it,
with the config's other models skipped.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from audiorole_ray.errors import ConfigError, MissingModelError, require
from audiorole_ray.vocoder.base import Vocoder

REPO_ENV = "GLM4VOICE_REPO"


def add_glm4voice_repo(repo: str | None) -> Path:
    """Put a local GLM-4-Voice checkout (and its Matcha-TTS submodule) on ``sys.path``."""
    repo = repo or os.environ.get(REPO_ENV)
    if not repo:
        raise ConfigError(f"the GLM-4-Voice decoder needs the official code: give a local GLM-4-Voice checkout (--glm4voice-repo or ${REPO_ENV})")
    root = Path(repo)
    if not (root / "cosyvoice").is_dir():
        raise MissingModelError(f"{root} is not a GLM-4-Voice checkout: no cosyvoice/ folder")
    for path in (root / "third_party" / "Matcha-TTS", root):
        if path.is_dir() and str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return root


def load_config(folder: Path, keep: str, repo: str | None) -> dict:
    """The decoder's ``config.yaml`` with only ``keep`` (``hift`` or ``flow``) built."""
    add_glm4voice_repo(repo)
    hyperpyyaml = require("hyperpyyaml", "hyperpyyaml", "GLM-4-Voice's decoder config")
    config = folder / "config.yaml"
    if not config.is_file():
        raise MissingModelError(f"{folder} is not a glm-4-voice-decoder folder: no config.yaml")
    text = config.read_text()
    skip = {name: None for name in ("llm", "flow", "hift") if name != keep and f"\n{name}:" in f"\n{text}"}
    return hyperpyyaml.load_hyperpyyaml(text, overrides=skip)


class HiftVocoder(Vocoder):
    name = "hift"

    def __init__(self, model: str | None = None, device: str = "cpu", repo: str | None = None, **options):
        super().__init__(model, device)
        if model is None:
            raise MissingModelError("the HiFT vocoder needs a local glm-4-voice-decoder folder (config.yaml, hift.pt)")
        folder = Path(model)
        weights = folder / "hift.pt"
        if not weights.is_file():
            raise MissingModelError(f"{folder} has no hift.pt")
        hift = load_config(folder, "hift", repo)["hift"]
        hift.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.hift = hift.eval().to(device)
        self.sample_rate = int(getattr(hift, "sampling_rate", self.sample_rate))

    def synthesize(self, mel):
        speech, _source = self.hift.inference(mel=mel)
        return speech[0]
