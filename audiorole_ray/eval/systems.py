"""Systems under evaluation: where each item's answer audio comes from.

``--system NAME=SPEC``, SPEC one of

- ``reference``: the corpus's own B answer (the paper's "reference" row);
- ``copy-input``: the A turn itself as the answer, a floor every metric should rank low;
- ``responses:DIR``: answers made elsewhere, one audio file per exchange at
  ``DIR/<dialogue_id>/<turn_index>.<ext>`` (``dialogue_id`` as in dialogues.parquet, its slashes
  are folders; ``turn_index`` is the B turn's; any container FFmpeg reads: wav, flac, mp3, ogg...);
  or, when ``DIR/responses.parquet`` exists, what ``jobs/respond.py``'s batch mode writes: the row
  of the exchange's A turn (same dialogue and A clip; its ``turn_index`` is the A turn's) and its
  answer in ``DIR/<response_path>`` (a FLAC shard); a row without audio is that item's error;
- ``openai:MODEL``: a speech-out chat model behind an OpenAI-compatible endpoint (``--api-url``,
  key from ``--api-key-env``), given the input audio and the paper's Table 5 prompt, answering
  with its default voice (``alloy``). Its answers are saved under
  ``EVAL/answers/<NAME>/<VERSION>/<dialogue_id>/<turn_index>.wav`` and reused by a re-run
  (VERSION: :func:`answers_version`, set by the job on a copy of the settings);
- ``arp:MODEL``: an ARP-Model folder, answered by ``respond.engine.Responder``; its answers are
  kept the same way. It answers only its own character's turns (the one its ``arp_model.json``
  names); the other characters' items are not asked (status ``out_of_scope``, n = 0 in the
  report) unless the system is given ``,all-characters=true``.

Per-system options follow the spec: ``--system NAME=KIND:SPEC,key=value[,key=value]``.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fsspec.core import url_to_fs

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.eval import prompts
from audiorole_ray.eval.items import ClipReader, to_16k
from audiorole_ray.io.audio import SAMPLE_RATE, decode_bytes
from audiorole_ray.io.storage import AUDIO_EXTENSIONS, join, write_bytes
from audiorole_ray.wav import wav_bytes

KINDS = ("reference", "copy-input", "responses", "openai", "arp")
GENERATING = ("openai", "arp")  # kinds whose answers the pass makes (and keeps, under a version)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
# trailing ",key=value" pairs; a comma in a path with no "key=" after it stays in the path
OPTIONS_RE = re.compile(r"(.*?)((?:,[A-Za-z][A-Za-z0-9_-]*=[^,=]*)*)")
OPTIONS = {"arp": {"all-characters": "true asks the model for every character's turns, not only its own"}}
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclass
class SystemSpec:
    name: str
    kind: str
    arg: str = ""
    options: dict = field(default_factory=dict)
    version: str = ""  # what generated answers come from (see answers_version); names their folder

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_system(text: str) -> SystemSpec:
    """``NAME=SPEC[,key=value...]``, or a bare ``reference`` / ``copy-input`` (named after itself)."""
    name, sep, spec = text.partition("=")
    if not sep:
        name, spec = text, text
    spec, tail = OPTIONS_RE.fullmatch(spec).groups()
    kind, _, arg = spec.partition(":")
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"system name {name!r}: use letters, digits and _.+- (it names a folder and a report column)")
    if kind not in KINDS:
        raise ConfigError(f"system {text!r}: SPEC must be one of reference, copy-input, responses:DIR, openai:MODEL, arp:MODEL")
    if kind in ("reference", "copy-input") and arg:
        raise ConfigError(f"system {text!r}: {kind} takes no argument")
    if kind in ("responses", "openai", "arp") and not arg:
        raise ConfigError(f"system {text!r}: {kind} needs an argument ({kind}:...)")
    if kind == "responses":
        fs, path = url_to_fs(arg)
        if not fs.isdir(path):
            raise InputError(f"system {name}: responses folder {arg!r} does not exist")
    if kind == "arp":
        fs, path = url_to_fs(arg)
        if not fs.exists(join(path, "arp_model.json")):
            raise InputError(f"system {name}: {arg!r} is not an ARP-Model folder (no arp_model.json)")
    return SystemSpec(name, kind, arg, parse_options(text, kind, tail))


def parse_options(text: str, kind: str, tail: str) -> dict:
    allowed = OPTIONS.get(kind, {})
    out = {}
    for pair in filter(None, tail.split(",")):
        key, _, value = pair.partition("=")
        if key not in allowed:
            known = ", ".join(f"{k} ({why})" for k, why in allowed.items()) or "none"
            raise ConfigError(f"system {text!r}: unknown option {key!r}; options of {kind}: {known}")
        if value.lower() not in TRUE + FALSE:
            raise ConfigError(f"system {text!r}: {key} takes true or false, got {value!r}")
        out[key] = value.lower() in TRUE
    return out


def answer_scope(spec: SystemSpec) -> str:
    """The character whose turns the system answers, "" for all. An ARP-Model speaks as its own
    character only (its manifest names it); asking it for another's turns is opted into."""
    if spec.kind != "arp" or spec.options.get("all-characters"):
        return ""
    from audiorole_ray.arp_model import read_manifest

    character = (read_manifest(spec.arg) or {}).get("character")
    if not character:
        raise InputError(f"system {spec.name}: {join(spec.arg, 'arp_model.json')} names no character")
    return character


def answers_version(kind: str, arg: str) -> str:
    """A short hash of what a generating system's answers come from: the model name for
    ``openai:``, the model's manifest for ``arp:`` (it changes whenever a part is retrained).
    Kept answers live under it, so a changed model never has its old answers reused."""
    from audiorole_ray.pipeline.runner import fingerprint

    if kind == "openai":
        return fingerprint(kind, arg)[:12]
    if kind == "arp":
        fs, path = url_to_fs(arg)
        with fs.open(join(path, "arp_model.json"), "rb") as f:
            return fingerprint(kind, f.read().decode())[:12]
    return ""


def check_names(systems: list[SystemSpec]) -> None:
    names = [s.name for s in systems]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two systems share a name: {dupes}")


def decode_file(uri: str) -> np.ndarray:
    fs, path = url_to_fs(uri)
    with fs.open(path, "rb") as f:
        audio, rate = decode_bytes(f.read())
    return to_16k(audio, rate)


class AnswerSource:
    """Gives an item's answer as 16 kHz mono float32, plus a few facts about it."""

    def __init__(self, spec: SystemSpec, corpus: str, output: str, clips: ClipReader, names: dict | None = None,
                 api: dict | None = None):
        self.spec, self.corpus, self.output, self.clips = spec, corpus, output, clips
        self.names = names or {}
        self.api = api or {}
        self._chat = None
        self._arp = None
        self._batch = None  # responses:DIR in respond's batch layout (False: the per-file layout)

    def answer(self, item: dict) -> tuple[np.ndarray, dict]:
        kind = self.spec.kind
        if kind == "reference":
            return self.clips(item["b_audio_path"], item["b_audio_key"]), {"answer_source": "corpus B turn"}
        if kind == "copy-input":
            return self.clips(item["a_audio_path"], item["a_audio_key"]), {"answer_source": "corpus A turn"}
        if kind == "responses":
            return self._from_folder(item)
        if kind == "openai":
            return self._from_api(item)
        if kind == "arp":
            return self._from_arp(item)
        raise ConfigError(f"unknown system kind {kind!r}")

    # -- responses:DIR ------------------------------------------------------------------------
    def _from_folder(self, item: dict) -> tuple[np.ndarray, dict]:
        if self._batch is None:
            self._batch = BatchResponses.open(self.spec.arg) or False
        if self._batch:
            return self._batch.answer(item)
        fs, root = url_to_fs(self.spec.arg)
        stem = f"{root.rstrip('/')}/{item['dialogue_id']}/{item['turn_index']}"
        found = [p for p in fs.glob(stem + ".*") if Path(p).suffix.lower() in AUDIO_EXTENSIONS]
        if not found:
            raise InputError(f"no answer file {stem}.<ext> (ext: wav, flac, mp3, ogg, ...)")
        if len(found) > 1:
            raise InputError(f"two answer files for one exchange: {sorted(found)}")
        protocol = self.spec.arg.split("://", 1)[0] + "://" if "://" in self.spec.arg else ""
        return decode_file(protocol + found[0]), {"answer_source": found[0]}

    # -- openai:MODEL -------------------------------------------------------------------------
    def answer_rel(self, item: dict) -> str:
        version = f"{self.spec.version}/" if self.spec.version else ""
        return f"answers/{self.spec.name}/{version}{item['dialogue_id']}/{item['turn_index']}.wav"

    def answer_uri(self, item: dict) -> str:
        return join(self.output, self.answer_rel(item))

    def _from_api(self, item: dict) -> tuple[np.ndarray, dict]:
        from audiorole_ray.eval.judge import ChatClient, audio_part, text_part

        uri = self.answer_uri(item)
        fs, path = url_to_fs(uri)
        rel = self.answer_rel(item)
        if fs.exists(path):  # made by an earlier run: an API answer costs money and time
            return decode_file(uri), {"answer_source": uri, "answer_cached": True, "answer_file": (rel, fs.size(path))}
        if self._chat is None:
            from audiorole_ray.eval.judge import resolve_api_url

            # the job always resolves the URL in the driver; resolving here serves direct callers
            self._chat = ChatClient(self.api.get("url") or resolve_api_url(None)[0], self.spec.arg,
                                    api_key_env=self.api.get("key_env", "OPENAI_API_KEY"),
                                    concurrency=self.api.get("concurrency", 4), timeout_s=self.api.get("timeout_s", 120.0))
        role = self.names.get(item["character"], item["character"])
        tv = self.names.get(item["series"], item["series"])
        content = [text_part(prompts.generation(role, tv)),
                   audio_part(self.clips(item["a_audio_path"], item["a_audio_key"]), SAMPLE_RATE)]
        response, attempts = self._chat.create(
            [{"role": "user", "content": content}], modalities=["text", "audio"],
            audio={"voice": self.api.get("voice", "alloy"), "format": "wav"}, temperature=self.api.get("temperature", 0.0),
        )
        audio_msg = getattr(response.choices[0].message, "audio", None) if response.choices else None
        data = getattr(audio_msg, "data", None) if audio_msg is not None else None
        if not data:
            raise ValueError(f"{self.spec.arg} returned no audio (a text-only model or server?)")
        raw = base64.b64decode(data)
        write_bytes(uri, raw)
        audio, rate = decode_bytes(raw)
        return to_16k(audio, rate), {"answer_source": uri, "answer_cached": False, "api_attempts": attempts,
                                     "answer_file": (rel, len(raw)),
                                     "api_transcript": getattr(audio_msg, "transcript", "") or ""}

    # -- arp:MODEL -------------------------------------------------------------------------
    def _from_arp(self, item: dict) -> tuple[np.ndarray, dict]:
        """The ARP-Model's answer to the A turn (``respond.engine.Responder``), kept like an
        API answer: generation is the expensive part of a run."""
        uri, rel = self.answer_uri(item), self.answer_rel(item)
        fs, path = url_to_fs(uri)
        if fs.exists(path):
            return decode_file(uri), {"answer_source": uri, "answer_cached": True, "answer_file": (rel, fs.size(path))}
        if self._arp is None:
            from audiorole_ray.respond.engine import Responder

            self._arp = Responder(self.spec.arg, device=self.api.get("device", "cpu")).load()
        answer = self._arp.respond(self.clips(item["a_audio_path"], item["a_audio_key"]))
        if answer.audio.size == 0:
            raise ValueError(f"the ARP-Model gave no speech ({answer.status}: {'; '.join(answer.problems) or 'no speech tokens'})")
        raw = wav_bytes(answer.audio, int(answer.rate))
        write_bytes(uri, raw)
        return to_16k(answer.audio, int(answer.rate)), {"answer_source": uri, "answer_cached": False, "answer_file": (rel, len(raw)),
                                                        "arp_text": answer.text, "arp_status": answer.status}


class BatchResponses:
    """``responses:DIR`` as ``jobs/respond.py``'s batch mode writes it: ``responses.parquet``, one
    row per A turn, and FLAC shards (``audio/<n>.tar``). Shards are kept two at a time: a
    dialogue's answers share one."""

    def __init__(self, root: str, table):
        self.root = root
        self.rows = {(r["dialogue_id"], r["audio_key"]): r for r in table.to_dict("records")}
        self._shards: dict[str, dict] = {}

    @classmethod
    def open(cls, root: str) -> "BatchResponses | None":
        """The folder's batch layout (``None`` without ``responses.parquet``), read once per
        version of that file: the driver asks for it once per item."""
        import pandas as pd

        from audiorole_ray.respond.batch import RESPONSES

        fs, path = url_to_fs(join(root, RESPONSES))
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return None
        stamp = (root, info.get("size"), info.get("mtime") or info.get("ETag") or info.get("LastModified"))
        if _OPENED.get("stamp") != stamp:
            with fs.open(path, "rb") as f:
                _OPENED.update(stamp=stamp, batch=cls(root, pd.read_parquet(f)))
        return _OPENED["batch"]

    def row(self, item: dict) -> dict | None:
        """The row of the item's A turn: ARP-Eval's ``turn_index`` is the B turn's, respond's the
        A turn's, so the A clip's key (in its dialogue) is what both share."""
        return self.rows.get((item["dialogue_id"], item["a_audio_key"]))

    def answer(self, item: dict) -> tuple[np.ndarray, dict]:
        from audiorole_ray.corpus.shards import read_shard
        from audiorole_ray.respond.batch import RESPONSES

        row = self.row(item)
        if row is None:
            raise InputError(f"{join(self.root, RESPONSES)} has no row for dialogue {item['dialogue_id']!r} A turn "
                             f"{item['a_audio_key']!r} (answered from another corpus, or another character's turns?)")
        if not row["response_key"]:
            raise ValueError(f"respond gave this turn no answer (status {row['status']}: {row['error'] or row['problems'] or 'no audio'})")
        uri = join(self.root, row["response_path"])
        if uri not in self._shards:
            self._shards = {**dict(list(self._shards.items())[-1:]), uri: read_shard(uri)}
        sample = self._shards[uri].get(row["response_key"], {})
        if "flac" not in sample:
            raise InputError(f"no answer {row['response_key']!r} in {uri} (responses.parquet names it)")
        audio, rate = decode_bytes(sample["flac"])
        return to_16k(audio, rate), {"answer_source": f"{uri}#{row['response_key']}", "arp_text": row["text"],
                                     "arp_status": row["status"]}


_OPENED: dict = {}  # the last responses.parquet read: its (folder, size, mtime) and its BatchResponses


def responses_fingerprint(arg: str, item: dict) -> list:
    """What an item of ``responses:DIR`` is scored from, for its hash, so a replaced answer is
    scored again: in the batch layout the row's answer facts and its shard's size, else the
    names and sizes of the item's answer files."""
    fs, root = url_to_fs(arg)
    batch = BatchResponses.open(arg)
    if batch is None:
        return sorted((p.rsplit("/", 1)[-1], fs.size(p)) for p in fs.glob(f"{root.rstrip('/')}/{item['dialogue_id']}/{item['turn_index']}.*"))
    row = batch.row(item)
    if row is None:
        return ["no row"]
    shard = f"{root.rstrip('/')}/{row['response_path']}" if row["response_key"] else ""
    size = fs.size(shard) if shard and fs.exists(shard) else None
    return [{k: row[k] for k in ("response_path", "response_key", "status", "error", "text", "duration_s", "n_speech_tokens")}, size]
