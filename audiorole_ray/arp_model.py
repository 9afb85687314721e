"""The ARP-Model folder's manifest, ``MODEL/arp_model.json``: which character, from which corpus,
with which speech tokenizer, and which parts are trained so far.

An ARP-Model (SPEC §2) is the untouched speech tokenizer + the fine-tuned LM (``MODEL/lm/``) + the
trained decoder (``MODEL/decoder/``). Each training job adds its part with :func:`update_part`;
the manifest is rewritten whole through a temporary name, so a reader never sees half of it.
A model folder belongs to one character: training another character into it is refused.
"""
from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from fsspec.core import url_to_fs

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import join, write_text

MANIFEST = "arp_model.json"
FORMAT_VERSION = 1


def read_manifest(model_dir: str) -> dict[str, Any] | None:
    """The manifest, or ``None`` when the folder has none yet."""
    fs, path = url_to_fs(join(model_dir, MANIFEST))
    if not fs.exists(path):
        return None
    try:
        with fs.open(path) as f:
            return json.load(f)
    except ValueError as exc:
        raise InputError(f"{join(model_dir, MANIFEST)} is not valid JSON: {exc}") from exc


def update_part(model_dir: str, *, character: str, corpus: str, tokenizer: dict[str, Any], part: str,
                info: dict[str, Any]) -> dict[str, Any]:
    """Record ``part`` (``"lm"``, ``"decoder"``) as trained, keeping the other parts; returns the
    manifest written. ``tokenizer`` is the speech tokenizer's description (name, frame_rate,
    vocab_size); a part trained on another character or speech tokenizer is refused."""
    manifest = read_manifest(model_dir) or {}
    if manifest.get("character") not in (None, character):
        raise ConfigError(f"{model_dir} holds an ARP-Model of {manifest['character']!r}, not {character!r}: use another --output")
    old_tok = (manifest.get("tokenizer") or {}).get("name")
    if old_tok not in (None, tokenizer.get("name")):
        raise ConfigError(f"{model_dir} was trained on speech tokenizer {old_tok!r}, not {tokenizer.get('name')!r}")
    parts = dict(manifest.get("parts") or {})
    parts[part] = {**info, "path": part, "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    manifest = {
        "format": "audiorole-arp-model",
        "version": FORMAT_VERSION,
        "character": character,
        "corpus": corpus,
        "tokenizer": tokenizer,
        "parts": dict(sorted(parts.items())),
    }
    write_text(join(model_dir, MANIFEST), json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest
