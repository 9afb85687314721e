"""GLM-4-Voice's speech tokenizer (WhisperVQ, 12.5 Hz, 16384 codes), the paper's tokenizer.

Its modeling code (``speech_tokenizer/modeling_whisper.py::WhisperVQEncoder``) lives in the
THUDM/GLM-4-Voice repository, not in transformers, and is not copied here: the backend imports
it from a local checkout of that repository (``repo``, put on ``sys.path``) and loads the
``glm-4-voice-tokenizer`` folder (``model``) with ``WhisperVQEncoder.from_pretrained`` and
transformers' ``WhisperFeatureExtractor``. Nothing is downloaded.

The repository's ``extract_speech_token`` hard-codes ``.cuda()``; this backend calls the model
itself in the same way (30 s pieces, mel features padded to a multiple of one token's samples
with an attention mask, ``quantized_token_ids`` kept where the mask is set), on ``device``, so
it also runs on a CPU. Pieces are batched by length to cut padding.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

from audiorole_ray.errors import ConfigError, MissingDependencyError, MissingModelError, require
from audiorole_ray.tokens.base import SAMPLE_RATE, SpeechTokenizer

DOC = "audiorole_ray/tokens/TOKENS.md"
MAX_PIECE = 30 * SAMPLE_RATE  # GLM-4-Voice cuts audio into 30 s pieces
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
MODULE = "speech_tokenizer.modeling_whisper"


def check_tokenizer_dir(model: str | Path) -> dict:
    """The folder's config (quantize_vocab_size, pooling) after checking every file loading reads."""
    root = Path(model)
    if not root.is_dir():
        raise MissingModelError(f"GLM-4-Voice tokenizer folder {root} does not exist (see {DOC})")
    missing = [str(root / n) for n in ("config.json", "preprocessor_config.json") if not (root / n).is_file()]
    if not any((root / n).is_file() for n in WEIGHT_FILES):
        missing.append(f"{root}/{{{','.join(WEIGHT_FILES)}}} (one of)")
    if missing:
        lines = "\n  ".join(missing)
        raise MissingModelError(f"GLM-4-Voice tokenizer folder {root} is incomplete; missing:\n  {lines}\n(see {DOC})")
    try:
        config = json.loads((root / "config.json").read_text())
        int(config["quantize_vocab_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MissingModelError(f"{root / 'config.json'} is not a WhisperVQ config (no quantize_vocab_size): {exc}") from exc
    return config


def import_encoder_class(repo: str | Path | None):
    """``WhisperVQEncoder`` from GLM-4-Voice's code: ``repo`` is a local checkout (its root holds
    ``speech_tokenizer/``); None means it must already be importable."""
    if repo is not None:
        root = Path(repo)
        if not (root / "speech_tokenizer" / "modeling_whisper.py").is_file():
            raise MissingModelError(f"{root} is not a GLM-4-Voice checkout: no speech_tokenizer/modeling_whisper.py (see {DOC})")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(MODULE)
    except ImportError as exc:
        missing = exc.name or ""
        if missing == "speech_tokenizer" or missing.startswith("speech_tokenizer."):
            raise MissingModelError(
                f"the glm4voice tokenizer needs GLM-4-Voice's code ({MODULE} is not importable): clone "
                f"https://github.com/THUDM/GLM-4-Voice on the worker image and give its folder as --glm4voice-repo (see {DOC})"
            ) from exc
        hint = " (GLM-4-Voice's code is written for transformers 4.44: its requirements.txt pins transformers==4.44.1)" \
            if missing.startswith("transformers") else ""
        raise MissingDependencyError(
            f"GLM-4-Voice's {MODULE} imports {missing or 'a module'} which is not installed{hint}: install GLM-4-Voice's "
            f"requirements.txt on the worker image (see {DOC}); error: {exc}"
        ) from exc
    if not hasattr(module, "WhisperVQEncoder"):
        raise MissingModelError(f"{module.__file__} has no WhisperVQEncoder: not GLM-4-Voice's speech tokenizer code")
    return module.WhisperVQEncoder


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped ``batch_size`` at a time, longest first, so a batch pads little."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


class Glm4VoiceTokenizer(SpeechTokenizer):
    name = "glm4voice"

    def __init__(self, model: str | None = None, device: str = "cpu", repo: str | None = None, batch_size: int = 32,
                 dtype: str = "float32"):
        if model is None:
            raise MissingModelError(f"the glm4voice tokenizer needs its local glm-4-voice-tokenizer folder (--tokenizer-model DIR; see {DOC})")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"dtype must be float32, float16 or bfloat16, not {dtype!r}")
        self.model = str(model)
        self.repo = str(repo) if repo else None
        self.device = device
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self._config = None
        self._encoder = None
        self._features = None

    def config(self) -> dict:
        if self._config is None:
            self._config = check_tokenizer_dir(self.model)
        return self._config

    @property
    def vocab_size(self) -> int:
        return int(self.config()["quantize_vocab_size"])

    @property
    def frame_rate(self) -> float:
        # mel hop x conv2 stride (2) x pooling: 160 x 2 x 4 = 1280 samples per token for the real model
        return SAMPLE_RATE / self._samples_per_token()

    def _samples_per_token(self) -> int:
        self.config()  # checks the folder, preprocessor_config.json included
        hop = int(json.loads(Path(self.model, "preprocessor_config.json").read_text()).get("hop_length", 160))
        return hop * 2 * int(self.config().get("pooling_kernel_size") or 1)

    def load(self) -> None:
        if self._encoder is not None:
            return
        self.config()  # the folder first: a wrong path is the error users should see first
        torch = require("torch", "torch", "the glm4voice tokenizer")
        transformers = require("transformers", "'audiorole-ray[glm4voice]'", "the glm4voice tokenizer's feature extractor")
        encoder_cls = import_encoder_class(self.repo)
        self._features = transformers.WhisperFeatureExtractor.from_pretrained(self.model)
        model = encoder_cls.from_pretrained(self.model)
        self._encoder = model.eval().to(device=self.device, dtype=getattr(torch, self.dtype))
        self._torch = torch

    def tokenize(self, clips: list[np.ndarray]) -> list[list[int]]:
        self.load()
        torch = self._torch
        pieces, owner = [], []
        for i, clip in enumerate(clips):
            clip = np.asarray(clip, dtype=np.float32).reshape(-1)
            if clip.size == 0:
                raise ValueError(f"clip {i} is empty (0 samples)")
            for s in range(0, clip.size, MAX_PIECE):
                pieces.append(clip[s : s + MAX_PIECE])
                owner.append(i)
        enc = self._encoder
        conv = enc.conv1.stride[0] * enc.conv2.stride[0]
        pool = enc.config.pooling_kernel_size or 1
        stride = conv * pool * self._features.hop_length
        piece_tokens: list[list[int]] = [[] for _ in pieces]
        for batch in length_batches([p.size for p in pieces], self.batch_size):
            feats = self._features([pieces[j] for j in batch], sampling_rate=SAMPLE_RATE, return_attention_mask=True,
                                   return_tensors="pt", padding="longest", pad_to_multiple_of=stride)
            mask = feats["attention_mask"]
            with torch.no_grad():
                out = enc(input_features=feats["input_features"].to(device=self.device, dtype=enc.dtype),
                          attention_mask=mask.to(self.device))
            ids = out.quantized_token_ids.cpu()
            keep = mask[:, ::conv][:, ::pool].bool()
            if keep.shape != ids.shape:
                raise RuntimeError(f"WhisperVQEncoder returned token ids of shape {tuple(ids.shape)} for a mask of {tuple(keep.shape)}")
            for row, j in enumerate(batch):
                piece_tokens[j] = ids[row][keep[row]].tolist()
        out_tokens: list[list[int]] = [[] for _ in clips]
        for j, i in enumerate(owner):
            out_tokens[i].extend(piece_tokens[j])
        return out_tokens

    def describe(self) -> dict:
        return {"name": self.name, "frame_rate": self.frame_rate, "vocab_size": self.vocab_size, "codebook_hash": None,
                "model": self.model, "repo": self.repo, "dtype": self.dtype,
                "kind": "GLM-4-Voice WhisperVQ tokenizer (the paper's)"}

    def settings(self) -> dict:
        d = self.describe()
        return {k: d[k] for k in ("name", "frame_rate", "vocab_size", "model", "dtype")}
