"""The tokenize stages, one item per corpus shard, run by the resumable runner
(:func:`audiorole_ray.pipeline.runner.run_pass`).

An item is one shard and the clip keys ``dialogues.parquet`` expects in it::

    {"id": "sitcom/ep01", "uri": "<corpus>/audio/sitcom/ep01.tar", "audio_path": "audio/sitcom/ep01.tar",
     "keys": "[...]" (JSON), "inputs": <fingerprint of the shard file and the keys>}

Items carry the shard's path, never audio: the worker reads the shard and decodes its FLAC.

- :class:`TokenizeStage` writes the shard's tokens as one Parquet file, ``shards/<id>.parquet``
  (one row per clip, see :mod:`audiorole_ray.tokens.shards`) under the tokens folder. Clips that
  fail (a cut shard fails the clips from the cut on) are in the result's payload, keep the tokens
  an earlier run wrote for them, and leave the shard without a marker, so a re-run redoes it.
- :class:`EncodeStage` writes pooled encoder frames of the chosen clips to ``fit-frames/<id>.npz``,
  for fitting the whisper-units codebook.
"""
from __future__ import annotations

import io
import json
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiorole_ray import registry
from audiorole_ray.corpus.shards import read_shard_partial
from audiorole_ray.io.audio import decode_bytes
from audiorole_ray.io.storage import join, write_bytes
from audiorole_ray.pipeline.runner import fingerprint
from audiorole_ray.pipeline.stage import Output, Stage, resolve_device
from audiorole_ray.resample import resample
from audiorole_ray.tokens.base import SAMPLE_RATE
from audiorole_ray.tokens.shards import read_token_rows, write_tokens

SHARDS = "shards"  # token files, under the tokens folder
FIT_FRAMES = "fit-frames"  # encoder frames the codebook is fitted on


def shard_id(audio_path: str) -> str:
    """``audio/sitcom/ep01.tar`` -> ``sitcom/ep01`` (the runner's item id and file name)."""
    rel = audio_path[len("audio/"):] if audio_path.startswith("audio/") else audio_path
    return posixpath.splitext(rel)[0]


def tokens_file(item_id: str) -> str:
    return f"{SHARDS}/{item_id}.parquet"


def frames_file(item_id: str) -> str:
    return f"{FIT_FRAMES}/{item_id}.npz"


def read_clips(corpus: str, audio_path: str, keys: list[str]) -> tuple[list[tuple[str, np.ndarray, float]], dict[str, str]]:
    """(key, 16 kHz audio, stored seconds) of the clips in key order, and {key: why not} for the
    clips that are missing, do not decode, or lie at or after the cut of a damaged shard (the
    clips before the cut are read). A missing shard raises FileNotFoundError naming it."""
    uri = join(corpus, audio_path)
    try:
        samples, damage = read_shard_partial(uri)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"the shard {uri} is missing") from exc
    got, failed = [], {}
    for key in sorted(set(keys)):
        flac = samples.get(key, {}).get("flac")
        if flac is None:
            failed[key] = f"not read: {damage}" if damage else f"no clip {key!r} in {audio_path}"
            continue
        try:
            audio, rate = decode_bytes(flac)
            if audio.size == 0:
                raise ValueError("empty clip (0 samples)")
            got.append((key, resample(audio, rate, SAMPLE_RATE), audio.size / rate))
        except Exception as exc:  # noqa: BLE001 - one bad clip is recorded, the shard goes on
            failed[key] = f"{type(exc).__name__}: {exc}"
    return got, failed


@dataclass
class TokenizeStage(Stage):
    """Tokenize the clips of one shard and write them as ``shards/<id>.parquet``."""

    name = "tokenize"
    marker_kind = "tokenized"
    fields = ("audio_path", "keys")

    corpus: str = ""
    tokenizer: str = "whisper-units"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backend_settings: dict[str, Any] = field(default_factory=dict)  # the backend's settings(): codebook hash, ...
    device: str = "auto"

    def settings(self) -> dict:
        return {"tokenizer": self.tokenizer, "backend": self.backend_settings}

    def setup(self) -> None:
        device = resolve_device(self.device, self.num_gpus)
        self._backend = registry.create("tokenizer", self.tokenizer, model=self.model, device=device, **self.options)
        self._backend.load()
        want = self.backend_settings.get("codebook_hash")
        got = self._backend.settings().get("codebook_hash")
        if "codebook_hash" in self.backend_settings and want != got:
            # the codebook file was replaced after the driver read it: never mix two codebooks
            raise RuntimeError(f"the {self.tokenizer} worker loaded codebook {str(got)[:12]}, the run uses {str(want)[:12]}")

    def process_item(self, item: dict) -> Output:
        cpu = time.process_time()  # CPU seconds as well as wall: on a shared machine they differ a lot
        clips, failed = read_clips(self.corpus, item["audio_path"], json.loads(item["keys"]))
        tokens = self._tokenize(clips, failed)
        rate = float(self._backend.frame_rate)
        rows = [{"audio_key": k, "audio_path": item["audio_path"], "tokens": tokens[k], "frame_rate": rate,
                 "n_tokens": len(tokens[k]), "duration": dur} for k, _, dur in clips if k in tokens]
        rel, settings = tokens_file(item["id"]), fingerprint(self.settings())
        kept = []
        if failed:  # the clips that failed now keep the tokens an earlier run made with these settings
            kept = [r for r in read_token_rows(join(self.output_uri, rel), settings)
                    if r["audio_key"] in failed and r["audio_path"] == item["audio_path"]]
            rows = sorted(rows + kept, key=lambda r: r["audio_key"])
        size = write_tokens(join(self.output_uri, rel), rows, settings)
        audio_s = sum(c.size for _, c, _ in clips) / SAMPLE_RATE
        payload = {"clips": len(rows) - len(kept), "tokens": sum(r["n_tokens"] for r in rows), "failed": failed,
                   "kept": sorted(r["audio_key"] for r in kept), "cpu_s": round(time.process_time() - cpu, 3)}
        return Output(payload, audio_s=audio_s, outputs={rel: size}, complete=not failed)

    @property
    def output_uri(self) -> str:
        """The tokens folder: the state folder's parent (as the marker store has it)."""
        return self.state_uri.rstrip("/").rsplit("/", 1)[0]

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


@dataclass
class EncodeStage(Stage):
    """Pooled 12.5 Hz whisper-units encoder frames of an item's clips, to fit a codebook on."""

    name = "encode_for_codebook"
    marker_kind = "fit-frames"
    fields = ("audio_path", "keys")

    corpus: str = ""
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"

    def settings(self) -> dict:
        return {"model": self.model, "options": self.options}

    @property
    def output_uri(self) -> str:
        return self.state_uri.rstrip("/").rsplit("/", 1)[0]

    def setup(self) -> None:
        from audiorole_ray.tokens.whisper_units import WhisperUnits

        self._backend = WhisperUnits(model=self.model, device=resolve_device(self.device, self.num_gpus), **self.options)
        self._backend.load()

    def process_item(self, item: dict) -> Output:
        clips, failed = read_clips(self.corpus, item["audio_path"], json.loads(item["keys"]))
        frames = {}
        for key, clip, _ in clips:
            try:
                frames[key] = self._backend.encode([clip])[0]
            except Exception as exc:  # noqa: BLE001 - a clip that cannot be encoded is left out of the fit
                failed[key] = f"{type(exc).__name__}: {exc}"
        buf = io.BytesIO()
        np.savez(buf, **frames)
        rel = frames_file(item["id"])
        size = write_bytes(join(self.output_uri, rel), buf.getvalue())
        payload = {"clips": len(frames), "frames": int(sum(len(f) for f in frames.values())), "failed": failed}
        return Output(payload, audio_s=sum(c.size for _, c, _ in clips) / SAMPLE_RATE, outputs={rel: size},
                      complete=not failed)
