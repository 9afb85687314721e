"""``jobs/respond.py``'s checks and batch mode.

Single mode: :func:`check_answer_file` refuses an ``--output`` that is a folder, not a ``.wav``
name, the input itself, or cannot be written, before the model loads and leaving nothing behind.
Batch mode: :func:`plan_batch` checks the model, the corpus and the sampling before Ray starts;
:func:`run_batch` is one resumable pass of :class:`RespondStage` through the project's runner,
then ``responses.parquet`` from the markers; :func:`removed_if_failed` takes away the folders a
run made when it fails before writing a file into them.
"""
from __future__ import annotations

import os
import posixpath
import time
import uuid
from contextlib import contextmanager, suppress

from fsspec.implementations.local import LocalFileSystem

from audiorole_ray.errors import ConfigError, InputError, MissingModelError, StorageError
from audiorole_ray.io.storage import filesystem, join, remove, write_bytes


def _where(uri: str) -> tuple[bool, str]:
    """(local?, the path compared): local paths resolved through links, URIs as written."""
    fs, path = filesystem(uri)
    local = isinstance(fs, LocalFileSystem)
    return local, (os.path.realpath(path) if local else f"{uri.split('://', 1)[0]}://{path.rstrip('/')}")


def _same(a: str, b: str) -> bool:
    (la, pa), (lb, pb) = _where(a), _where(b)
    if la and lb and os.path.exists(pa) and os.path.exists(pb):
        return os.path.samefile(pa, pb)  # hard links too
    return la == lb and pa == pb


def _inside(inner: str, outer: str) -> bool:
    (li, pi), (lo, po) = _where(inner), _where(outer)
    return li == lo and (pi == po or pi.startswith(po.rstrip("/") + "/"))


def check_answer_file(output: str, input_uri: str) -> None:
    """Single mode's ``--output``: a file named ``*.wav`` (the answer is 16-bit WAV; a folder
    would get the answer under a hidden temporary name, another extension would lie about the
    content), never the input, and writable: a probe file is written beside it and removed, with
    any folder made for it, so a refused or failed run leaves nothing."""
    fs, path = filesystem(output)
    name = posixpath.basename(path.rstrip("/"))
    with _storage_line(output):
        is_dir = fs.isdir(path)
    if is_dir:
        stem = posixpath.splitext(posixpath.basename(input_uri.rstrip("/")))[0] or "answer"
        raise InputError(f"--output {output!r} is a folder: give the answer's file name, e.g. {join(output, stem + '_answer.wav')}")
    if not name.lower().endswith(".wav") or name.lower() == ".wav":
        raise ConfigError(f"--output {output!r}: the answer is written as a WAV file; give a name ending in .wav")
    if _same(output, input_uri):
        raise InputError(f"--output {output!r} is the input file: give another name (respond never overwrites its input)")
    parent, probe = posixpath.dirname(path), f".{name}.{uuid.uuid4().hex[:8]}.probe"
    if not isinstance(fs, LocalFileSystem):  # an object store has no folders to make or leave
        with _storage_line(output):
            write_bytes(join(posixpath.dirname(output), probe), b"")
            remove([join(posixpath.dirname(output), probe)])
        return
    probe = os.path.join(parent, probe)
    missing, d = [], parent
    while not os.path.lexists(d):
        missing.append(d)  # deepest first
        d = os.path.dirname(d)
    try:
        os.makedirs(parent, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise InputError(f"--output {output!r} cannot be written: {type(exc).__name__}: {exc.strerror or exc}"
                         f"{f' ({exc.filename})' if exc.filename else ''}") from exc
    finally:
        for folder in missing:  # made for the probe: the answer's write makes them again
            with suppress(OSError):
                os.rmdir(folder)


@contextmanager
def _storage_line(uri: str):
    try:
        yield
    except (StorageError, OSError) as exc:
        cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ else exc
        raise InputError(f"--output {uri!r} cannot be written: {type(cause).__name__}: {cause}") from exc


def check_batch_output(output: str, corpus: str, model_dir: str) -> None:
    """The RESPONSES folder is neither the corpus nor the model nor inside them: respond writes
    ``audio/``, ``_state/`` and ``responses.parquet``, which would mix with theirs."""
    for option, uri in (("--corpus", corpus), ("--model", model_dir)):
        if _inside(output, uri):
            raise InputError(f"--output {output!r} is {'inside ' if not _same(output, uri) else ''}{option} {uri!r}: "
                             "give a folder of its own (respond never writes into its inputs)")


@contextmanager
def removed_if_failed(output: str):
    """A local output folder (or its ``_state/``) this run made is removed when the run fails,
    as far as it holds no file: a run refused after the writable check leaves nothing."""
    fs, path = filesystem(output)
    new = [p for p in (path, os.path.join(path, "_state")) if isinstance(fs, LocalFileSystem) and not os.path.exists(p)]
    try:
        yield
    except BaseException:
        if new:
            for root, _, _ in os.walk(new[0], topdown=False):
                with suppress(OSError):
                    os.rmdir(root)  # refuses a folder with anything in it
        raise


def plan_batch(model_dir: str, corpus: str, options: dict, sampling: dict) -> dict:
    """Everything batch mode can check before Ray starts, reading only: the model's manifest and
    parts, the LM's context against the sampling, and the character's test turns."""
    from audiorole_ray.respond.batch import model_stamp, test_items
    from audiorole_ray.respond.engine import Responder, Sampling

    responder = Responder(model_dir, sampling=Sampling(**sampling), **{k: v for k, v in options.items() if k != "device"})
    manifest = responder.prepare().manifest
    character = manifest.get("character")
    if not character:
        raise MissingModelError(f"{model_dir}'s arp_model.json names no character")
    return {"character": character, "items": test_items(corpus, character, model_stamp(model_dir))}


def run_batch(model_dir: str, corpus: str, output: str, options: dict, sampling: dict, *, workers: int = 1,
              cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, local: bool = False,
              plan: dict | None = None) -> dict:
    from audiorole_ray.pipeline.runner import run_pass
    from audiorole_ray.pipeline.state import MarkerStore
    from audiorole_ray.respond.batch import RESPONSES, RespondStage, assemble

    t0 = time.perf_counter()
    plan = plan or plan_batch(model_dir, corpus, options, sampling)
    items = plan["items"]
    stage = RespondStage(corpus=corpus, output=output, model_dir=model_dir, responder_options=options, sampling=sampling,
                         num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)
    result = run_pass(stage, items, MarkerStore(join(output, "_state")), workers=workers, local=local)
    table = assemble(result.done, result.errors, items)
    write_bytes(join(output, RESPONSES), table.to_parquet(index=False))  # through a temporary name
    counts = table["status"].value_counts().to_dict()
    spoken = int(((table.duration_s >= 0.5) & (table.rms_dbfs > -50.0)).sum())
    answered = table[table.response_key != ""]
    return {"output": output, "character": plan["character"], "dialogues": len(items), "resumed": result.resumed,
            "turns": len(table), "status": counts, "answers": len(answered), "audio_shards": int(answered.response_path.nunique()),
            "inputs_cut": int((table.n_input_tokens_cut > 0).sum()), "answers_0.5s_non_silent": spoken,
            "answer_s": round(float(table["duration_s"].sum()), 2), "wall_s": round(time.perf_counter() - t0, 1)}
