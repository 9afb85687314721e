"""The tokenize job: every clip of a corpus to speech tokens, one Ray Data pass over its shards.

Outputs under ``OUT/tokens/<tokenizer>/``:

- ``shards/<shard>.parquet``: one row per clip (audio_key, audio_path, tokens, frame_rate,
  n_tokens, duration), written per shard; a re-run skips shards already written with the same
  settings (their hash is in the file) and without failed clips;
- ``errors.parquet``: clips that could not be tokenized, with the reason;
- ``codebook.npz``: the whisper-units codebook (fitted on the corpus's training split);
- ``tokenizer.json``: name, frame_rate, vocab_size, codebook hash, model, settings hash and the
  coverage of the last run; written last, so readers see a consistent set.

The runner the lead is building (``pipeline/runner.py::run_pass``) will take over markers and
resume; until it lands, :func:`run_items` is a direct ``map_batches`` over shard items.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from audiorole_ray import registry
from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.errors import ConfigError
from audiorole_ray.io.storage import join, write_json
from audiorole_ray.io.tables import write_parquet
from audiorole_ray.tokens.codebook import CODEBOOK_FILE, fit_codebook, load_codebook
from audiorole_ray.tokens.reader import TOKENIZER_FILE, tokens_uri
from audiorole_ray.tokens.shards import STAGE, EncodeShard, TokenizeShard, make_tokenizer, read_shard_meta, settings_hash, shard_tokens_uri

log = logging.getLogger("audiorole_ray")

ERRORS_SCHEMA = pa.schema([("audio_path", pa.string()), ("audio_key", pa.string()), ("stage", pa.string()), ("error", pa.string())])


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
        registry.get("tokenizer", self.tokenizer)  # ConfigError naming the choices
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise ConfigError("--cpus-per-worker must be > 0 and --gpus-per-worker >= 0")
        if self.fit_hours <= 0:
            raise ConfigError(f"--fit-hours must be > 0, got {self.fit_hours}")
        units = self.tokenizer == "whisper-units"
        if not units and (self.codebook or self.fit_codebook):
            raise ConfigError(f"--codebook and --fit-codebook are for the whisper-units tokenizer, not {self.tokenizer!r}")
        if self.codebook and self.fit_codebook:
            raise ConfigError("give --codebook PATH (use that codebook) or --fit-codebook (fit a new one), not both")
        if self.tokenizer != "glm4voice" and self.repo:
            raise ConfigError("--tokenizer-repo is for the glm4voice tokenizer")

    @property
    def output(self) -> str:
        return tokens_uri(self.corpus, self.tokenizer)


# ----------------------------------------------------------------------------- work items

def clip_table(corpus: str) -> pd.DataFrame:
    """One row per clip of the corpus (a clip appears in several dialogue rows)."""
    d = read_dialogues(corpus, columns=["audio_key", "audio_path", "duration", "split"])
    # a clip is in the training split when any row using it is (splits are by scene, so all agree)
    return d.sort_values(["audio_path", "audio_key"]).drop_duplicates("audio_key").reset_index(drop=True)


def shard_items(clips: pd.DataFrame) -> list[dict]:
    """One work item per shard: its path and the keys expected in it, sorted."""
    return [{"audio_path": path, "keys": sorted(g.audio_key), "audio_s": float(g.duration.sum())}
            for path, g in clips.groupby("audio_path", sort=True)]


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


# ----------------------------------------------------------------------------- Ray pass

class _Worker:
    """Callable class for ``map_batches``: one stage object per actor, set up once. A failing
    item comes back as an error payload and never stops the pass."""

    stage: Any

    def __init__(self):
        self.stage.setup()

    def __call__(self, batch: dict) -> dict:
        out = []
        for raw in batch["item"]:
            item = json.loads(raw)
            try:
                payload = self.stage.process_item(item)
            except Exception as exc:  # noqa: BLE001 - the shard is recorded as failed, the pass goes on
                payload = {"audio_path": item["audio_path"], "error": f"{type(exc).__name__}: {exc}"}
            out.append(pickle.dumps(payload))
        return {"payload": np.array(out, dtype=object)}


def run_items(stage, items: list[dict], workers: int, name: str) -> list[dict]:
    """Run ``stage.process_item`` over ``items`` in a pool of ``workers`` Ray actors."""
    if not items:
        return []
    import ray
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_items([{"item": json.dumps(i)} for i in items], override_num_blocks=len(items))
    actor = type(name, (_Worker,), {"stage": stage})
    ds = ds.map_batches(actor, batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=min(workers, len(items))),
                        num_cpus=stage.num_cpus, num_gpus=stage.num_gpus)
    return [pickle.loads(r["payload"]) for r in ds.take_all()]


# ----------------------------------------------------------------------------- codebook

def prepare_codebook(config: TokenizeConfig, clips: pd.DataFrame) -> tuple[str, dict]:
    """The codebook path to tokenize with, fitting one first when asked or when none exists."""
    if config.codebook:
        load_codebook(config.codebook)  # fail now on a wrong path or a corrupt file
        return config.codebook, {"fitted": False}
    path = join(config.output, CODEBOOK_FILE)
    from fsspec.core import url_to_fs

    fs, p = url_to_fs(path)
    if fs.exists(p) and not config.fit_codebook:
        return path, {"fitted": False}
    t = time.perf_counter()
    chosen = fit_selection(clips, config.fit_hours, config.seed)
    stage = EncodeShard(corpus=config.corpus, model=config.model, num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker)
    payloads = run_items(stage, shard_items(chosen), config.workers, "EncodeForCodebook")
    frames, skipped = {}, 0
    for p_ in payloads:
        if "error" in p_:
            skipped += 1
            log.warning("codebook: shard %s skipped: %s", p_["audio_path"], p_["error"])
            continue
        with np.load(io.BytesIO(p_["frames"])) as z:
            frames.update({k: z[k] for k in z.files})
        skipped += len(p_["failed"])
    # the fit sees frames in key order, whatever order the workers finished in
    stacked = np.concatenate([frames[k] for k in sorted(frames)]) if frames else np.zeros((0, 0), np.float32)
    book = fit_codebook(stacked, config.codebook_size, config.seed, meta={
        "clips": len(frames), "train_audio_s": float(chosen.duration.sum()), "fit_hours": config.fit_hours,
        "model": config.model or "embedded"})
    book.save(path)
    info = {"fitted": True, "clips": len(frames), "frames": int(len(stacked)), "skipped": skipped,
            "wall_s": round(time.perf_counter() - t, 2), "hash": book.hash}
    log.info("codebook fitted: %s", info)
    return path, info


# ----------------------------------------------------------------------------- the job

def backend_options(config: TokenizeConfig, codebook: str | None) -> dict:
    opts = dict(config.options)
    if config.tokenizer == "whisper-units":
        opts["codebook"] = codebook
    if config.tokenizer == "glm4voice":
        opts.update(repo=config.repo, batch_size=config.batch_size)
    return opts


def check(config: TokenizeConfig) -> pd.DataFrame:
    """Everything that can be checked before Ray starts: the corpus and the model folder."""
    clips = clip_table(config.corpus)
    if clips.empty:
        raise ConfigError(f"{config.corpus} has no clips in dialogues.parquet")
    if config.tokenizer != "whisper-units":
        make_tokenizer(config.tokenizer, config.model, backend_options(config, None), "cpu").describe()
    return clips


def run(config: TokenizeConfig, clips: pd.DataFrame | None = None) -> dict:
    t0 = time.perf_counter()
    clips = check(config) if clips is None else clips
    codebook, fit = (None, {})
    if config.tokenizer == "whisper-units":
        codebook, fit = prepare_codebook(config, clips)
    options = backend_options(config, codebook)
    backend = make_tokenizer(config.tokenizer, config.model, options, "cpu")  # not loaded: describes settings
    settings = settings_hash(backend.settings())
    items = shard_items(clips)
    todo = [i for i in items if not _done(config.output, i, settings)]
    log.info("%d shards, %d already tokenized, %d to do", len(items), len(items) - len(todo), len(todo))
    stage = TokenizeShard(corpus=config.corpus, tokens_uri=config.output, tokenizer=config.tokenizer, model=config.model,
                          options=options, num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker)
    t_pass = time.perf_counter()
    payloads = run_items(stage, todo, config.workers, "Tokenize")
    pass_s = time.perf_counter() - t_pass
    summary = finalize(config, clips, items, {p["audio_path"]: p for p in payloads}, settings, backend.describe())
    audio_s = sum(p.get("audio_s", 0.0) for p in payloads)
    summary.update(shards=len(items), shards_resumed=len(items) - len(todo), codebook_fit=fit, pass_s=round(pass_s, 2),
                   pass_audio_s=round(audio_s, 2), x_real_time=round(audio_s / pass_s, 1) if audio_s else None,
                   wall_s=round(time.perf_counter() - t0, 2))
    write_json(join(config.output, "summary.json"), summary)
    return summary


def _done(output: str, item: dict, settings: str) -> bool:
    meta = read_shard_meta(shard_tokens_uri(output, item["audio_path"]))
    return bool(meta) and meta["settings"] == settings and not meta["failed"] and set(item["keys"]) <= set(meta["keys"])


def finalize(config: TokenizeConfig, clips: pd.DataFrame, items: list[dict], payloads: dict[str, dict],
             settings: str, describe: dict) -> dict:
    """Errors table and tokenizer.json from every shard's file (this run's and earlier ones'),
    so nothing is lost or counted twice on a resumed run."""
    errors, tokenized = [], 0
    for item in items:
        meta = read_shard_meta(shard_tokens_uri(config.output, item["audio_path"]))
        if meta is None or meta["settings"] != settings:
            why = payloads.get(item["audio_path"], {}).get("error", "shard not tokenized")
            errors += [{"audio_path": item["audio_path"], "audio_key": k, "stage": STAGE, "error": why} for k in item["keys"]]
            continue
        have = set(meta["keys"])
        tokenized += len(have & set(item["keys"]))
        for k in item["keys"]:
            if k not in have:
                why = meta["failed"].get(k, "not in the shard's token file")
                errors.append({"audio_path": item["audio_path"], "audio_key": k, "stage": STAGE, "error": why})
    write_parquet(join(config.output, "errors.parquet"), errors, ERRORS_SCHEMA)
    info = {**describe, "settings": settings, "corpus": config.corpus, "clips": int(len(clips)), "tokenized": tokenized,
            "errors": len(errors)}
    if info.get("codebook") and str(info["codebook"]).startswith(config.output):
        info["codebook"] = CODEBOOK_FILE  # beside tokenizer.json: keep the folder relocatable
    write_json(join(config.output, TOKENIZER_FILE), info)
    return {"output": config.output, "tokenizer": describe["name"], "vocab_size": describe["vocab_size"],
            "frame_rate": describe["frame_rate"], "codebook_hash": describe.get("codebook_hash"), "clips": int(len(clips)),
            "tokenized": tokenized, "errors": len(errors), "audio_s": round(float(clips.duration.sum()), 2)}
