"""Batch mode of ``jobs/respond.py``: answer every test A turn of the character, as a resumable
Ray Data pass (the project's runner: one marker per item, re-runs skip finished items).

An item is one test dialogue: its A turns are answered in order and the answers go to one FLAC
shard per dialogue (``RESPONSES/audio/<n>.tar``, WebDataset layout: ``<key>.flac`` +
``<key>.json``). A turn that generates no speech, or malformed blocks, is recorded with its
status and reason; an exception on one turn is that turn's ``error``, the others go on (a turn
longer than the model's context is one, status ``too_long``, unless the responder cuts inputs: then
``n_input_tokens_cut`` and ``problems`` say so). ``responses.parquet`` is assembled from the
markers at the end; ``turn_index`` is the A turn's (ARP-Eval's items carry the B turn's, the
next one), ``response_key`` names the answer's ``<key>.flac`` in ``response_path`` (empty when
the turn has no audio).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from audiorole_ray.corpus.reader import iter_shard_clips, read_dialogues
from audiorole_ray.errors import InputError
from audiorole_ray.io.storage import join

RESPONSES = "responses.parquet"
COLUMNS = ["dialogue_id", "turn_index", "audio_key", "audio_path", "text", "response_path", "response_key", "status",
           "error", "duration_s", "rms_dbfs", "sample_rate", "n_input_tokens", "n_input_tokens_cut", "n_speech_tokens",
           "problems"]


def empty_row(dialogue_id: str, turn: dict, error: str = "") -> dict:
    """A turn's row before (or without) an answer."""
    return {"dialogue_id": dialogue_id, "turn_index": turn["turn_index"], "audio_key": turn["audio_key"],
            "audio_path": turn["audio_path"], "text": "", "response_path": "", "response_key": "", "status": "error",
            "error": error, "duration_s": 0.0, "rms_dbfs": -120.0, "sample_rate": 0, "n_input_tokens": 0,
            "n_input_tokens_cut": 0, "n_speech_tokens": 0, "problems": ""}


def test_items(corpus: str, character: str, model_stamp: str) -> list[dict]:
    """One item per test dialogue of ``character``: its A turns (key, shard, turn index)."""
    d = read_dialogues(corpus, columns=["dialogue_id", "turn_index", "role", "kind", "split", "target",
                                        "audio_path", "audio_key"])
    a = d[(d.target == character) & (d.split == "test") & (d.role == "A") & (d.kind == "multi")]
    if a.empty:
        raise InputError(f"{corpus} has no test A turns of {character!r}")
    items = []
    for n, (dialogue_id, turns) in enumerate(sorted(a.groupby("dialogue_id"), key=lambda g: g[0])):
        turns = turns.sort_values("turn_index")
        rows = [{"turn_index": int(t.turn_index), "audio_key": t.audio_key, "audio_path": t.audio_path} for t in turns.itertuples()]
        items.append({"id": "d" + hashlib.sha1(dialogue_id.encode()).hexdigest()[:16], "uri": join(corpus, rows[0]["audio_path"]),
                      "dialogue_id": dialogue_id, "turns": rows, "inputs": {"turns": rows, "model": model_stamp}})
    return items


def model_stamp(model_dir: str) -> str:
    """Changes when a part of the ARP-Model is retrained (so its answers are redone)."""
    from audiorole_ray.arp_model import read_manifest

    m = read_manifest(model_dir) or {}
    return ";".join(f"{k}@{v.get('trained_at', '')}" for k, v in sorted((m.get("parts") or {}).items()))


def _stage_base():
    from audiorole_ray.pipeline.stage import Output, Stage

    return Output, Stage


Output, Stage = _stage_base()


@dataclass
class RespondStage(Stage):
    name: ClassVar[str] = "Respond"
    marker_kind: ClassVar[str] = "responded"
    fields: ClassVar[tuple[str, ...]] = ("dialogue_id", "turns")

    corpus: str = ""
    output: str = ""
    model_dir: str = ""
    responder_options: dict = field(default_factory=dict)
    sampling: dict = field(default_factory=dict)

    def settings(self) -> dict:
        # truncate_input only when set: folders answered before the option existed stay current
        options = {k: v for k, v in self.responder_options.items() if k != "truncate_input" or v}
        return {"model": self.model_dir, "options": options, "sampling": self.sampling}

    def setup(self) -> None:
        from audiorole_ray.pipeline.stage import resolve_device
        from audiorole_ray.respond.engine import Responder, Sampling

        device = resolve_device(self.responder_options.get("device", "auto"), self.num_gpus)
        options = {k: v for k, v in self.responder_options.items() if k != "device"}
        self.responder = Responder(self.model_dir, device=device, sampling=Sampling(**self.sampling), **options).load()

    def process_item(self, item: dict):
        from audiorole_ray.corpus.shards import shard_bytes
        from audiorole_ray.io.storage import write_bytes
        from audiorole_ray.resample import resample
        from audiorole_ray.io.audio import SAMPLE_RATE, encode_flac
        from audiorole_ray.respond.engine import InputTooLong

        # rows come through Arrow/pandas: plain Python values for the marker's JSON
        turns = [{"turn_index": int(t["turn_index"]), "audio_key": str(t["audio_key"]), "audio_path": str(t["audio_path"])}
                 for t in item["turns"]]
        audio = {}
        for path in sorted({t["audio_path"] for t in turns}):
            for key, clip, rate, _ in iter_shard_clips(self.corpus, path, {t["audio_key"] for t in turns}):
                audio[key] = resample(clip, rate, SAMPLE_RATE)
        rows, samples, seconds = [], [], 0.0
        shard = f"audio/{item['id']}.tar"
        for t in turns:
            key = f"{item['id']}_{t['turn_index']:03d}"
            row = empty_row(item["dialogue_id"], t)
            try:
                if t["audio_key"] not in audio:
                    raise InputError(f"clip {t['audio_key']} not found in {t['audio_path']}")
                seconds += len(audio[t["audio_key"]]) / SAMPLE_RATE
                ans = self.responder.respond(audio[t["audio_key"]])
                row.update(text=ans.text, status=ans.status, problems="; ".join(ans.problems), sample_rate=ans.rate,
                           n_input_tokens=ans.input_tokens, n_input_tokens_cut=ans.input_cut, n_speech_tokens=len(ans.speech),
                           duration_s=round(len(ans.audio) / ans.rate, 3) if ans.rate else 0.0,
                           rms_dbfs=round(rms_dbfs(ans.audio), 1))
                if ans.status == "no_speech":
                    row["error"] = "the LM emitted no speech tokens"
                if len(ans.audio):
                    samples.append((key, encode_flac(ans.audio, ans.rate), {k: row[k] for k in ("dialogue_id", "turn_index", "text", "status")}))
                    row.update(response_path=shard, response_key=key)
            except Exception as exc:  # noqa: BLE001 - one turn's failure is recorded, the dialogue goes on
                row["error"] = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, InputTooLong):  # its own count in the summary: the fix is --truncate-input
                    row["status"] = "too_long"
            rows.append(row)
        outputs = {}
        if samples:
            outputs[shard] = write_bytes(join(self.output, shard), shard_bytes(samples))
        return Output(payload={"rows": rows}, audio_s=seconds, outputs=outputs)


def assemble(done: dict, errors: list, items: list[dict]) -> pd.DataFrame:
    """One row per test A turn: the markers' rows, and the failed items' turns as errors."""
    rows = [r for payload in done.values() for r in _rows(payload)]
    failed = {e.episode_id: e.error for e in errors}
    for it in items:
        if it["id"] in failed:
            rows += [empty_row(it["dialogue_id"], t, failed[it["id"]]) for t in it["turns"]]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["n_input_tokens_cut"] = df["n_input_tokens_cut"].fillna(0).astype(int)  # markers made before the column
    return df.sort_values(["dialogue_id", "turn_index"]).reset_index(drop=True)


def _rows(marker) -> list[dict]:
    payload = marker.payload if hasattr(marker, "payload") else marker
    return list(payload.get("rows", [])) if isinstance(payload, dict) else []


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dBFS (-120 for nothing)."""
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return max(-120.0, 20 * np.log10(max(rms, 1e-12)))
