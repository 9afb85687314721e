"""The ARP-Model folder's manifest, ``MODEL/arp_model.json``: whose model it is (the character),
what it was built from (corpus, speech tokenizer and its codebook hash) and, per trained part,
how (its training settings).

An ARP-Model (SPEC §2) is the untouched speech tokenizer + the fine-tuned LM (``MODEL/lm/``) + the
trained decoder (``MODEL/decoder/``). The folder carries its own copy of the speech tokenizer's
description and codebook (``MODEL/speech_tokenizer/``), so re-fitting the corpus's codebook later
cannot change what the model hears or says.

A folder belongs to one character of one corpus, and its parts share one set of speech codes:
:func:`check_part` refuses anything else (the jobs call it before any work), and
:func:`update_part` checks again under a short lock around the read-modify-write of the
manifest, which it rewrites whole through a temporary name, so a reader never sees half of it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from audiorole_ray.errors import ConfigError, InputError, MissingModelError
from audiorole_ray.io.storage import exists, join, read_bytes, write_json, write_text

MANIFEST = "arp_model.json"
FORMAT_VERSION = 2  # 2: the speech tokenizer's copy and per-part settings; 1 is still read
SPEECH_DIR = "speech_tokenizer"  # the model's copy: tokenizer.json (+ codebook.npz for whisper-units)
CODEBOOK_FILE = "codebook.npz"
TOKENIZER_FILE = "tokenizer.json"
CODES = ("name", "vocab_size", "frame_rate", "codebook_hash")  # what decides which code means what
LOCK_WAIT_S = 150.0  # longer than a lock's life (OutputLock ttl 120 s): a killed holder never blocks


def read_manifest(model_dir: str) -> dict[str, Any] | None:
    """The manifest, or ``None`` when the folder has none yet."""
    uri = join(model_dir, MANIFEST)
    try:
        data = read_bytes(uri)
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InputError(f"{uri} is not valid JSON: {exc}") from exc


def codes_of(tokenizer: dict[str, Any]) -> dict[str, Any]:
    return {k: tokenizer.get(k) for k in CODES}


def location(path: str | None) -> str | None:
    """A corpus or model path as recorded: absolute when local, without a trailing slash."""
    return path if path is None else (path.rstrip("/") if "://" in path else os.path.abspath(path))


def same_location(a: str | None, b: str | None) -> bool:
    return location(a) == location(b)


def tokenizer_settings(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """The speech tokens a part learns from, for its training settings: the codes, and the
    settings ``tokenize_corpus.py`` made the token files with."""
    return {"tokenizer": tokenizer.get("name"), **{k: tokenizer.get(k) for k in CODES[1:]}, "tokens": tokenizer.get("settings")}


def short(value: Any) -> str:
    """A value for a one-line message: a sha256 cut to 12 characters, other strings quoted."""
    if isinstance(value, str):
        return value[:12] if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else repr(value)
    return str(value)


def changes(old: dict[str, Any], new: dict[str, Any], keys) -> list[str]:
    """``key old -> new`` of each of ``keys`` that differs, for a one-line refusal."""
    return [f"{k} {short(old.get(k))} -> {short(new.get(k))}" for k in keys if old.get(k) != new.get(k)]


# ----------------------------------------------------------------------------- the speech tokenizer's copy

@dataclass
class SpeechTokenizer:
    """A corpus's speech tokenizer as a model records it: ``tokenizer.json`` (``name`` included)
    and, for a codebook tokenizer (whisper-units), the codebook its tokens were made with."""

    info: dict[str, Any]
    book: Any = None  # audiorole_ray.tokens.codebook.Codebook, or None

    @classmethod
    def from_corpus(cls, corpus: str, name: str) -> SpeechTokenizer:
        """Read from ``corpus/tokens/<name>/``; a codebook that is not the one ``tokenizer.json``
        names (a re-fit under way) is refused."""
        from audiorole_ray.tokens.codebook import load_codebook
        from audiorole_ray.tokens.reader import read_tokenizer_info, tokens_uri

        info = {**read_tokenizer_info(corpus, name), "name": name}
        if not info.get("codebook_hash"):  # a tokenizer without a codebook (glm4voice): the description is all
            return cls(info)
        uri = _resolve(tokens_uri(corpus, name), info.get("codebook") or CODEBOOK_FILE)
        if not exists(uri):
            raise InputError(f"{uri} (the codebook of {corpus!r}'s {name!r} tokens) is missing: re-run jobs/tokenize_corpus.py --corpus {corpus}")
        book = load_codebook(uri)
        if book.hash != info["codebook_hash"]:
            raise InputError(f"{uri} (hash {short(book.hash)}) is not the codebook {corpus!r}'s {name!r} tokens were made with "
                             f"({short(info['codebook_hash'])}; a re-fit under way?): finish jobs/tokenize_corpus.py --corpus {corpus} first")
        return cls(info, book)

    def save(self, model_dir: str) -> None:
        folder = join(model_dir, SPEECH_DIR)
        info = dict(self.info)
        if self.book is not None:
            self.book.save(join(folder, CODEBOOK_FILE))  # through a temporary name; same arrays, same hash
            info["codebook"] = CODEBOOK_FILE  # beside tokenizer.json: the folder stays relocatable
        write_json(join(folder, TOKENIZER_FILE), info)


def _resolve(folder: str, path: str) -> str:
    """``tokenizer.json``'s codebook: beside it, or where ``tokenize_corpus.py --codebook`` named."""
    return path if "://" in path or os.path.isabs(path) else join(folder, path)


def model_codebook(model_dir: str, manifest: dict[str, Any]):
    """The codebook a whisper-units ARP-Model answers with: its own copy, checked against the hash
    the manifest records; a model made before models carried one falls back to its corpus's
    codebook only while that is still the same one."""
    from audiorole_ray.tokens.codebook import load_codebook

    tok = manifest.get("tokenizer") or {}
    want = tok.get("codebook_hash")
    if manifest.get("speech_tokenizer"):
        uri = join(model_dir, manifest["speech_tokenizer"], CODEBOOK_FILE)
        if not exists(uri):
            raise MissingModelError(f"{uri} is missing (the model's own codebook): the model folder is incomplete; restore "
                                    "it, or train the model again into a new --output")
        book = load_codebook(uri)
        if book.hash != want:
            raise InputError(f"{uri} hashes to {short(book.hash)} but {join(model_dir, MANIFEST)} records {short(want)}: "
                             "the model folder was changed by hand; restore it or retrain the model")
        return book
    corpus = manifest.get("corpus") or ""
    uri = _resolve(join(corpus, "tokens", str(tok.get("name"))), tok.get("codebook") or CODEBOOK_FILE)
    if not exists(uri):
        raise MissingModelError(f"{model_dir} carries no codebook of its own and its corpus's {uri} is gone: "
                                "give --codebook with the codebook it was trained on, or train the model again into a new --output")
    book = load_codebook(uri)
    if want is None or book.hash != want:
        raise ConfigError(f"{model_dir} carries no codebook of its own and its corpus's {uri} is another one (hash {short(book.hash)}, "
                          f"the model was trained on {short(want)}; re-fitted since?): give --codebook with the codebook it was trained on, "
                          "or train the model again into a new --output (jobs/train_lm.py, jobs/train_decoder.py)")
    return book


# ----------------------------------------------------------------------------- identity checks

def check_part(model_dir: str, manifest: dict[str, Any] | None, *, character: str, corpus: str, tokenizer: dict[str, Any],
               part: str, restart: bool = False) -> None:
    """Refuse to train ``part`` of ``character`` from ``corpus`` with the speech tokenizer
    ``tokenizer`` into a folder that holds another character, or parts from another corpus or
    on other speech codes. With ``restart`` the part itself is being replaced, so only the
    other parts must fit (the character must always)."""
    if manifest is None:
        return
    if manifest.get("character") != character:
        raise ConfigError(f"{model_dir} holds the ARP-Model of {manifest.get('character')!r}, not {character!r}: "
                          "give another --output (one model folder per character)")
    kept = sorted(p for p in manifest.get("parts") or {} if not (restart and p == part))
    if not kept:
        return
    built = f"{model_dir}'s {' and '.join(kept)}"
    if not same_location(manifest.get("corpus"), corpus):
        raise ConfigError(f"{built} came from corpus {manifest.get('corpus')!r}, not {corpus!r}: give another --output "
                          f"(a model's parts come from one corpus){_restart_fix(kept, part)}")
    old, new = codes_of(manifest.get("tokenizer") or {}), codes_of(tokenizer)
    diff = changes(old, new, CODES)
    if diff:
        fix = ""
        if manifest.get("speech_tokenizer") and old["name"] == new["name"] and old["codebook_hash"]:
            fix = f", or tokenize the corpus again with --codebook {join(model_dir, SPEECH_DIR, CODEBOOK_FILE)}"
        raise ConfigError(f"{built} was built on other speech codes than the corpus's speech tokenizer gives now "
                          f"({', '.join(diff)}; codebook re-fitted?): give another --output{fix}{_restart_fix(kept, part)}")


def _restart_fix(kept: list[str], part: str) -> str:
    return f", or add --restart to retrain the {part}" if kept == [part] else ""


@contextmanager
def manifest_lock(model_dir: str, wait_s: float | None = None):
    """A short lock around a read-modify-write of the manifest (the LM and decoder jobs may
    finish at the same time); waits for a holder, which never holds it long."""
    from audiorole_ray.pipeline.lock import OutputLock

    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    while True:
        lock = OutputLock(model_dir, name="arp_model.lock")
        try:
            lock.acquire()
            break
        except ConfigError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    try:
        yield
    finally:
        lock.release()


def update_part(model_dir: str, *, character: str, corpus: str, tokenizer: dict[str, Any], part: str,
                info: dict[str, Any], speech: SpeechTokenizer | None = None, restart: bool = False) -> dict[str, Any]:
    """Record ``part`` (``"lm"``, ``"decoder"``) as trained, keeping the other parts; returns the
    manifest written. ``tokenizer`` is the speech tokenizer's description (name, frame_rate,
    vocab_size, codebook_hash); ``speech``, when given, is copied into the folder. Checked again
    here (:func:`check_part`), under the manifest's lock."""
    with manifest_lock(model_dir):
        old = read_manifest(model_dir)
        check_part(model_dir, old, character=character, corpus=corpus, tokenizer=tokenizer, part=part, restart=restart)
        old = old or {}
        parts = dict(old.get("parts") or {})
        if speech is not None:
            speech.save(model_dir)
        same_codes = bool(old) and codes_of(old.get("tokenizer") or {}) == codes_of(tokenizer)
        copy = SPEECH_DIR if speech is not None else (old.get("speech_tokenizer") if same_codes else None)
        parts[part] = {**info, "path": part, "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        manifest = {
            "format": "audiorole-arp-model",
            "version": FORMAT_VERSION,
            "character": character,
            "corpus": corpus,
            "tokenizer": tokenizer,
            **({"speech_tokenizer": copy} if copy else {}),
            "parts": dict(sorted(parts.items())),
        }
        write_text(join(model_dir, MANIFEST), json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest
