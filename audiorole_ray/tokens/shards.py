"""Per-shard work of the tokenize stage: plain classes with ``setup()`` and ``process_item(item)``,
testable without Ray.

A work item is one corpus shard and the clip keys ``dialogues.parquet`` expects in it:
``{"audio_path": "audio/shard-000003.tar", "keys": [...], "audio_s": 41.4}``. Rows carry the
shard's path, never audio: the worker reads the shard and decodes its FLAC itself.

- :class:`TokenizeShard` writes the shard's tokens as one Parquet file
  (``<tokens dir>/shards/<shard stem>.parquet``, one row per clip) through a temporary name, with
  the stage settings' hash and the shard's failed clips in the file's metadata.
- :class:`EncodeShard` returns pooled encoder frames of chosen clips, to fit a codebook on.
"""
from __future__ import annotations

import hashlib
import io
import json
import posixpath
import time
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from audiorole_ray.corpus.reader import iter_shard_clips
from audiorole_ray.io.storage import join
from audiorole_ray.tokens.base import SAMPLE_RATE, SpeechTokenizer

STAGE = "tokenize"
TOKENS_SCHEMA = pa.schema([
    ("audio_key", pa.string()),
    ("audio_path", pa.string()),
    ("tokens", pa.list_(pa.int32())),
    ("frame_rate", pa.float32()),
    ("n_tokens", pa.int32()),
    ("duration", pa.float64()),  # seconds of the clip as stored in the shard
])


def resample(clip: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    if rate_in == rate_out:
        return clip.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(clip, rate_out // g, rate_in // g).astype(np.float32)


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shard_tokens_uri(tokens_uri: str, audio_path: str) -> str:
    """``audio/shard-000003.tar`` -> ``<tokens_uri>/shards/shard-000003.parquet``."""
    stem = posixpath.splitext(posixpath.basename(audio_path))[0]
    return join(tokens_uri, "shards", f"{stem}.parquet")


def make_tokenizer(name: str, model: str | None, options: dict[str, Any], device: str) -> SpeechTokenizer:
    from audiorole_ray import registry

    return registry.create("tokenizer", name, model=model, device=device, **options)


def resolve_device(device: str, num_gpus: float) -> str:
    if device != "auto":
        return device
    if num_gpus > 0:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def _clips(corpus: str, item: dict) -> tuple[list[tuple[str, np.ndarray, float]], dict[str, str]]:
    """(key, 16 kHz audio, stored seconds) of the item's clips in key order, and {key: why not}."""
    want = set(item["keys"])
    got, failed = [], {}
    for key, audio, rate, _ in iter_shard_clips(corpus, item["audio_path"], want):
        try:
            if audio.size == 0:
                raise ValueError("empty clip (0 samples)")
            got.append((key, resample(audio, rate), audio.size / rate))
        except Exception as exc:  # noqa: BLE001 - one bad clip is recorded, the shard goes on
            failed[key] = f"{type(exc).__name__}: {exc}"
    seen = {k for k, _, _ in got} | set(failed)
    for key in sorted(want - seen):
        failed[key] = f"no clip {key!r} in {item['audio_path']}"
    return got, failed


@dataclass
class TokenizeShard:
    """Tokenize every clip of one shard and write its Parquet file."""

    corpus: str
    tokens_uri: str  # OUT/tokens/<tokenizer>
    tokenizer: str = "whisper-units"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def setup(self) -> None:
        self._backend = make_tokenizer(self.tokenizer, self.model, self.options, resolve_device(self.device, self.num_gpus))
        self._backend.load()
        self._settings = settings_hash(self._backend.settings())

    def process_item(self, item: dict) -> dict:
        t = time.perf_counter()
        clips, failed = _clips(self.corpus, item)
        tokens = self._tokenize(clips, failed)
        rate = float(self._backend.frame_rate)
        rows = [{"audio_key": k, "audio_path": item["audio_path"], "tokens": tokens[k], "frame_rate": rate,
                 "n_tokens": len(tokens[k]), "duration": dur} for k, _, dur in clips if k in tokens]
        write_tokens(shard_tokens_uri(self.tokens_uri, item["audio_path"]), rows, self._settings, failed)
        audio_s = sum(c.size for _, c, _ in clips) / SAMPLE_RATE
        return {"audio_path": item["audio_path"], "clips": len(rows), "failed": failed, "audio_s": audio_s,
                "tokens": sum(r["n_tokens"] for r in rows), "wall_s": time.perf_counter() - t, "settings": self._settings}

    def _tokenize(self, clips: list[tuple[str, np.ndarray, float]], failed: dict[str, str]) -> dict[str, list[int]]:
        """All clips in one call; if that fails, one by one, so one bad clip fails alone."""
        try:
            return dict(zip([k for k, _, _ in clips], self._backend.tokenize([c for _, c, _ in clips])))
        except Exception:  # noqa: BLE001 - find the culprit below
            pass
        out = {}
        for key, clip, _ in clips:
            try:
                out[key] = self._backend.tokenize([clip])[0]
            except Exception as exc:  # noqa: BLE001 - recorded with its reason
                failed[key] = f"{type(exc).__name__}: {exc}"
        return out


def write_tokens(uri: str, rows: list[dict], settings: str, failed: dict[str, str]) -> None:
    """One shard's token rows, with the settings hash and failed clips in the file's metadata;
    local files go through a temporary name so a crash never leaves half a file."""
    table = pa.Table.from_pylist(rows, schema=TOKENS_SCHEMA).replace_schema_metadata(
        {"audiorole.settings": settings, "audiorole.failed": json.dumps(failed, sort_keys=True)})
    fs, path = url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    target = path + ".tmp" if isinstance(fs, LocalFileSystem) else path
    buf = io.BytesIO()
    pq.write_table(table, buf)
    with fs.open(target, "wb") as f:
        f.write(buf.getvalue())
    if target != path:
        fs.mv(target, path)


def read_shard_meta(uri: str) -> dict | None:
    """{"settings", "failed", "keys"} of a shard's token file, or None if it is missing or torn."""
    fs, path = url_to_fs(uri)
    fs.invalidate_cache(path)
    try:
        with fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            meta = pf.schema_arrow.metadata or {}
            keys = pf.read(columns=["audio_key"]).column("audio_key").to_pylist()
    except (OSError, ValueError, pa.ArrowException):
        return None
    return {"settings": meta.get(b"audiorole.settings", b"").decode(),
            "failed": json.loads(meta.get(b"audiorole.failed", b"{}").decode()), "keys": keys}


@dataclass
class EncodeShard:
    """Pooled 12.5 Hz encoder frames of an item's clips (for fitting a codebook)."""

    corpus: str
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def setup(self) -> None:
        from audiorole_ray.tokens.whisper_units import WhisperUnits

        self._backend = WhisperUnits(model=self.model, device=resolve_device(self.device, self.num_gpus), **self.options)
        self._backend.load()

    def process_item(self, item: dict) -> dict:
        clips, failed = _clips(self.corpus, item)
        frames = {}
        for key, clip, _ in clips:
            try:
                frames[key] = self._backend.encode([clip])[0]
            except Exception as exc:  # noqa: BLE001 - a clip that cannot be encoded is left out of the fit
                failed[key] = f"{type(exc).__name__}: {exc}"
        buf = io.BytesIO()
        np.savez(buf, **frames)
        return {"audio_path": item["audio_path"], "frames": buf.getvalue(), "failed": failed}
