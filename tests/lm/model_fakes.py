"""Stand-ins for what the training jobs' up-front checks read, made without training: a corpus with
a fitted whisper-units-style codebook (re-fittable), a checkpoint as Ray Train leaves it, and the
jobs' main() run up to where training would start. Shared by tests/lm and tests/decoder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from lm_fixtures import write_corpus

from audiorole_ray.io.storage import join
from audiorole_ray.tokens.codebook import CODEBOOK_FILE, fit_codebook
from audiorole_ray.tokens.reader import TOKENIZER_FILE, tokens_uri

TOKENIZER = "whisper-units"
VOCAB = 64


def fit_corpus_codebook(corpus: Path, seed: int) -> str:
    """Fit a codebook on random frames, as ``tokenize_corpus.py --fit-codebook`` would on the
    corpus's audio, and record it in tokenizer.json; returns its hash. Another seed, another
    codebook (the token files are kept: same size, same ids, other meaning)."""
    frames = np.random.default_rng(seed).normal(size=(4 * VOCAB, 8)).astype(np.float32)
    book = fit_codebook(frames, VOCAB, seed=seed, iterations=5)
    folder = Path(tokens_uri(str(corpus), TOKENIZER))
    book.save(str(folder / CODEBOOK_FILE))
    info = json.loads((folder / TOKENIZER_FILE).read_text())
    info.update(codebook_hash=book.hash, codebook=CODEBOOK_FILE)
    (folder / TOKENIZER_FILE).write_text(json.dumps(info))
    return book.hash


def codebook_corpus(root: Path, seed: int = 0) -> Path:
    """The synthetic LM corpus (lm_fixtures) with whisper-units tokens and their codebook."""
    corpus = write_corpus(root, tokenizer=TOKENIZER, vocab=VOCAB)
    fit_corpus_codebook(corpus, seed)
    return corpus


def fake_checkpoint(storage: Path, run: str, step: int) -> None:
    """What latest_state reads of a run Ray Train checkpointed: the snapshot naming the latest
    checkpoint, and that checkpoint's state.json."""
    from audiorole_ray.train.runner import SNAPSHOT

    ckpt = storage / run / f"checkpoint_{step:06d}"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"epoch": 1, "epoch_step": 0, "step": step, "history": [], "resumed_at": []}))
    (storage / run / SNAPSHOT).write_text(json.dumps({"latest_checkpoint_result": {"checkpoint_dir_name": ckpt.name}}))


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """{path: (size, mtime_ns)} of everything under ``folder`` (folders too): equal before and
    after means nothing was written, removed or touched."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


class Stop(Exception):
    """Raised where training would start."""


class RayStarted(Exception):
    """Raised where the job would start Ray: a test of a refusal must never train for real."""


def no_ray(job, monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise RayStarted

    monkeypatch.setattr(job, "init_ray", refuse)


def run_until_training(job, argv: list[str], monkeypatch, job_module: str) -> dict:
    """``job.main(argv)`` with Ray not started and training replaced by a stop: everything the job
    does before training (checks, the lock, ``start``) runs for real. Returns what train got."""
    import importlib

    got = {}

    def stop(prepared, **_):
        got["prepared"] = prepared
        raise Stop

    monkeypatch.setattr(job, "init_ray", lambda *a, **k: None)
    monkeypatch.setattr(importlib.import_module(job_module), "train", stop)
    try:
        job.main(argv)
    except Stop:
        return got
    raise AssertionError("the job did not reach training")


def storage_of(model: Path, part: str) -> Path:
    return Path(join(str(model), part, "_ray"))
