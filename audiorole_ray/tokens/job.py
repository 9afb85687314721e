"""The tokenize job: every clip of a corpus to speech tokens, one resumable Ray Data pass over
its shards (:func:`audiorole_ray.pipeline.runner.run_pass`).

Outputs under ``OUT/tokens/<tokenizer>/``:

- ``shards/<series>/<stem>.parquet``: one row per clip (audio_key, audio_path, tokens,
  frame_rate, n_tokens, duration), one file per corpus shard;
- ``errors.parquet``: one row per clip that failed in this run, ``<audio_key>: <reason>`` (a
  missing shard, the clips from the cut of a truncated one on, a clip that does not decode); a
  failed clip keeps the tokens an earlier run wrote for it (the row says so), and its shard gets
  no marker, so the next run tries it again;
- ``codebook.npz`` (whisper-units): the codebook, fitted on the corpus's training split from the
  encoder frames kept in ``fit-frames/``;
- ``tokenizer.json``: name, frame_rate, vocab_size, codebook hash, model, the settings
  fingerprint the token files carry, and the coverage of the last run; written last;
- ``_state/``: the runner's completion markers (a re-run redoes only shards whose marker is
  missing or was made with other settings, e.g. another codebook) and the output lock.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audiorole_ray import registry
from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import exists, join, list_files, read_bytes, remove, write_json
from audiorole_ray.io.tables import write_table
from audiorole_ray.pipeline.lock import OutputLock
from audiorole_ray.pipeline.runner import fingerprint, run_pass
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import ErrorRecord
from audiorole_ray.tokens.codebook import CODEBOOK_FILE, fit_codebook, load_codebook
from audiorole_ray.tokens.reader import TOKENIZER_FILE, tokens_uri
from audiorole_ray.tokens.shards import read_token_rows
from audiorole_ray.tokens.stage import FIT_FRAMES, SHARDS, EncodeStage, TokenizeStage, shard_id, tokens_file

log = logging.getLogger("audiorole_ray")


@dataclass
class TokenizeConfig:
    corpus: str
    tokenizer: str = "whisper-units"
    model: str | None = None  # local weights; None: the embedded default
    repo: str | None = None  # glm4voice: a local GLM-4-Voice checkout
    batch_size: int = 32  # glm4voice: 30 s pieces per forward pass
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    codebook: str | None = None  # whisper-units: use this codebook instead of OUT/tokens/<name>/codebook.npz
    fit_codebook: bool = False  # whisper-units: (re)fit the codebook on the training split
    codebook_size: int = 256
    seed: int = 0
    fit_hours: float = 1.0  # whisper-units: training audio the codebook is fitted on, at most
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if "://" not in self.corpus:
            self.corpus = os.path.abspath(self.corpus)
        backend = registry.get("tokenizer", self.tokenizer)  # ConfigError naming the choices
        if not backend.embedded and not self.model:
            raise ConfigError(f"--tokenizer {self.tokenizer} needs --tokenizer-model DIR: {backend.model}")
        checks = [
            (self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.cpus_per_worker > 0, f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}"),
            (self.gpus_per_worker >= 0, f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}"),
            (self.fit_hours > 0, f"--fit-hours must be > 0, got {self.fit_hours}"),
            (self.codebook_size >= 2, f"--codebook-size must be at least 2, got {self.codebook_size}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.tokenizer != "whisper-units" and (self.codebook or self.fit_codebook):
            raise ConfigError(f"--codebook and --fit-codebook are for the whisper-units tokenizer, not {self.tokenizer!r}")
        if self.codebook and self.fit_codebook:
            raise ConfigError("give --codebook PATH (use that codebook) or --fit-codebook (fit a new one), not both")
        if self.tokenizer != "glm4voice" and self.repo:
            raise ConfigError("--glm4voice-repo is for the glm4voice tokenizer")

    @property
    def output(self) -> str:
        return tokens_uri(self.corpus, self.tokenizer)

    @property
    def device(self) -> str:
        """The device the workers will use, for the settings the driver hashes."""
        return "cuda" if self.gpus_per_worker > 0 else "cpu"

    def backend_options(self, codebook: str | None = None) -> dict:
        opts = dict(self.options)
        if self.tokenizer == "whisper-units":
            opts["codebook"] = codebook
        if self.tokenizer == "glm4voice":
            opts.update(repo=self.repo, batch_size=self.batch_size)
        return opts


# ----------------------------------------------------------------------------- work items

def clip_table(corpus: str) -> pd.DataFrame:
    """One row per clip of the corpus (a clip is used by several dialogue rows)."""
    d = read_dialogues(corpus, columns=["audio_key", "audio_path", "duration", "split"])
    return d.sort_values(["audio_path", "audio_key"]).drop_duplicates("audio_key").reset_index(drop=True)


def shard_items(corpus: str, clips: pd.DataFrame) -> list[dict]:
    """One runner item per shard: its path and the keys expected in it. ``inputs`` is the shard
    file's size and the keys, so a rebuilt shard or another choice of clips redoes the item."""
    sizes = list_files(join(corpus, "audio"))
    items = []
    for path, g in clips.groupby("audio_path", sort=True):
        keys = sorted(g.audio_key)
        size = sizes.get(path[len("audio/"):]) if path.startswith("audio/") else None
        items.append({"id": shard_id(path), "uri": join(corpus, path), "audio_path": path, "keys": json.dumps(keys),
                      "inputs": fingerprint(size, keys), "audio_s": float(g.duration.sum())})
    return items


def fit_selection(clips: pd.DataFrame, hours: float, seed: int) -> pd.DataFrame:
    """The training clips a codebook is fitted on: in an order fixed by the seed and each clip's
    key (not by the corpus's size or file order), taken until ``hours`` of audio."""
    train = clips[clips.split == "train"]
    if train.empty:
        raise ConfigError("the corpus has no training clips (split == 'train') to fit a codebook on")
    rank = train.audio_key.map(lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    train = train.assign(_rank=rank).sort_values("_rank")
    keep = train.duration.cumsum().shift(fill_value=0.0) < hours * 3600
    return train[keep].drop(columns="_rank")


# ----------------------------------------------------------------------------- codebook

def prepare_codebook(config: TokenizeConfig, clips: pd.DataFrame, store: MarkerStore, local: bool) -> tuple[str, dict]:
    """The codebook to tokenize with: ``--codebook``, the corpus's own, or a new one fitted on the
    training split (when asked, or when the corpus has none)."""
    if config.codebook:
        load_codebook(config.codebook)  # fail now on a wrong path or a corrupt file
        return config.codebook, {"fitted": False}
    path = join(config.output, CODEBOOK_FILE)
    if exists(path) and not config.fit_codebook:
        return path, {"fitted": False}
    t = time.perf_counter()
    chosen = fit_selection(clips, config.fit_hours, config.seed)
    stage = EncodeStage(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker, corpus=config.corpus, model=config.model)
    items = shard_items(config.corpus, chosen)
    result = run_pass(stage, items, store, config.workers, local=local, keep=lambda m: (list(m.outputs), m.payload["failed"]))
    by_id = {i["id"]: i for i in items}
    unread = {key: e.error for e in result.errors for key in json.loads(by_id[e.episode_id]["keys"])}
    unread.update(pair for _, failed in result.done.values() for pair in failed.items())
    if unread:
        # a codebook fitted on part of the chosen clips would differ from the one the repaired corpus gives
        key = min(unread)
        raise InputError(f"{len(unread)} of the {len(chosen)} training clips chosen to fit the codebook could not be read "
                         f"({key}: {unread[key].splitlines()[0]}): restore the corpus's audio, or give --codebook PATH")
    frames: dict[str, np.ndarray] = {}
    for item_id in sorted(result.done):
        for rel in result.done[item_id][0]:
            with np.load(io.BytesIO(read_bytes(join(config.output, rel)))) as z:
                frames.update({k: z[k] for k in z.files})
    _prune(config.output, FIT_FRAMES, {rel for outs, _ in result.done.values() for rel in outs})
    # the fit sees frames in key order, whatever order the workers finished in
    stacked = np.concatenate([frames[k] for k in sorted(frames)]) if frames else np.zeros((0, 0), np.float32)
    book = fit_codebook(stacked, config.codebook_size, config.seed, meta={
        "clips": len(frames), "train_audio_s": round(float(chosen.duration.sum()), 3), "fit_hours": config.fit_hours,
        "model": config.model or "embedded", "corpus": config.corpus})
    book.save(path)
    info = {"fitted": True, "clips": len(frames), "frames": int(len(stacked)),
            "encode_resumed": result.resumed, "wall_s": round(time.perf_counter() - t, 2), "hash": book.hash}
    log.info("codebook fitted: %s", info)
    return path, info


# ----------------------------------------------------------------------------- the job

def check(config: TokenizeConfig) -> pd.DataFrame:
    """Everything that can be checked before Ray starts: the corpus, the model folder, the codebook."""
    clips = clip_table(config.corpus)
    if clips.empty:
        raise ConfigError(f"{config.corpus} has no clips in dialogues.parquet")
    if config.tokenizer == "whisper-units":
        if config.codebook:
            load_codebook(config.codebook)
        from audiorole_ray.tokens.whisper_units import WhisperUnits

        WhisperUnits(model=config.model).model_dir()
    else:
        registry.create("tokenizer", config.tokenizer, model=config.model, **config.backend_options()).describe()
    return clips


def make_stage(config: TokenizeConfig, codebook: str | None) -> tuple[TokenizeStage, dict]:
    """The stage, and the backend's description (tokenizer.json), from a backend made (not
    loaded) in the driver."""
    options = config.backend_options(codebook)
    backend = registry.create("tokenizer", config.tokenizer, model=config.model, device=config.device, **options)
    gpus = config.gpus_per_worker if registry.get("tokenizer", config.tokenizer).gpu else 0.0
    stage = TokenizeStage(num_cpus=config.cpus_per_worker, num_gpus=gpus, corpus=config.corpus, tokenizer=config.tokenizer,
                          model=config.model, options=options, backend_settings=backend.settings())
    return stage, backend.describe()


def run(config: TokenizeConfig, clips: pd.DataFrame | None = None, local: bool = False) -> dict:
    """Tokenize (or resume tokenizing) the corpus; Ray is initialised by the caller, or ``local``
    runs every item in this process (tests, small corpora)."""
    with OutputLock(config.output):
        return _run(config, clip_table(config.corpus) if clips is None else clips, local)


def _run(config: TokenizeConfig, clips: pd.DataFrame, local: bool) -> dict:
    t0 = time.perf_counter()
    store = MarkerStore(join(config.output, "_state"))
    codebook, fit = (None, {})
    if config.tokenizer == "whisper-units":
        codebook, fit = prepare_codebook(config, clips, store, local)
    stage, describe = make_stage(config, codebook)
    items = shard_items(config.corpus, clips)
    by_id = {i["id"]: i for i in items}
    result = run_pass(stage, items, store, config.workers, local=local, keep=lambda m: (m.payload, m.audio_s, m.wall_s))
    settings = fingerprint(stage.settings())
    errors: list[ErrorRecord] = []
    tokenized = kept = 0
    audio_s = work_s = cpu_s = 0.0
    for item_id, (payload, a_s, w_s) in sorted(result.done.items()):
        tokenized, kept = tokenized + payload["clips"], kept + len(payload.get("kept", ()))
        audio_s, work_s, cpu_s = audio_s + a_s, work_s + w_s, cpu_s + payload.get("cpu_s", 0.0)
        errors += _clip_errors(by_id[item_id], stage.name, payload["failed"], set(payload.get("kept", ())))
    for e in result.errors:  # a shard that failed as a whole (e.g. its file is missing): its token file stays as it was
        keys = json.loads(by_id[e.episode_id]["keys"])
        have = {r["audio_key"] for r in read_token_rows(join(config.output, tokens_file(e.episode_id)), settings)} & set(keys)
        kept += len(have)
        errors += _clip_errors(by_id[e.episode_id], stage.name, dict.fromkeys(keys, e.error), have)
    # token files of every shard of the corpus stay, those of failed shards too (they hold the earlier run's tokens)
    removed = _prune(config.output, SHARDS, {tokens_file(i) for i in by_id})
    write_table(join(config.output, "errors.parquet"), errors, ErrorRecord)
    # clips == tokenized + errors (the clips that failed: errors.parquet's rows); kept of those have earlier tokens
    counts = {"clips": int(len(clips)), "tokenized": tokenized, "errors": len(errors), "kept": kept}
    info = {**describe, "settings": settings, "corpus": config.corpus, **counts}
    if info.get("codebook") and str(info["codebook"]).startswith(config.output):
        info["codebook"] = CODEBOOK_FILE  # beside tokenizer.json: keeps the folder relocatable
    write_json(join(config.output, TOKENIZER_FILE), info)
    summary = {"output": config.output, "tokenizer": describe["name"], "vocab_size": describe["vocab_size"],
               "frame_rate": describe["frame_rate"], "codebook_hash": describe.get("codebook_hash"), **counts,
               "shards": len(items), "shards_resumed": result.resumed,
               # every shard this run did (complete or not) got its token file written; resumed ones were not
               "shards_written": len(result.done) - result.resumed, "shards_failed": len({e.episode_id for e in errors}),
               "outputs_removed": removed, "codebook_fit": fit,
               "audio_s": round(float(clips.duration.sum()), 2), "pass_s": result.wall_s,
               "worker_audio_s": round(audio_s, 2), "worker_s": round(work_s, 2), "worker_cpu_s": round(cpu_s, 2),
               "wall_s": round(time.perf_counter() - t0, 2)}
    # throughput of a pass that did every shard (start-up of the actors included)
    summary["x_real_time"] = round(audio_s / result.wall_s, 1) if result.resumed == 0 and result.wall_s else None
    write_json(join(config.output, "summary.json"), summary)
    return summary


KEPT = "; the tokens of an earlier run are kept"


def _clip_errors(item: dict, stage: str, failed: dict[str, str], kept: set[str]) -> list[ErrorRecord]:
    """One error row per failed clip of a shard, ``<audio_key>: <reason>``, saying when the clip
    keeps the tokens of an earlier run."""
    return [ErrorRecord(item["uri"], item["id"], stage, f"{key}: {why}{KEPT if key in kept else ''}")
            for key, why in sorted(failed.items())]


def _prune(output: str, folder: str, expected: set[str]) -> int:
    """Remove files under ``folder`` that the current corpus does not make (shards no longer in
    it, temp files of a killed run), so readers never see them."""
    stale = [join(output, folder, rel) for rel in list_files(join(output, folder)) if f"{folder}/{rel}" not in expected]
    remove(stale)
    return len(stale)
