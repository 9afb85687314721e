"""A tiny corpus written straight from the bundled sample's ground truth (no diarization or ASR):
real voices, known speakers, in the corpus layout the reader reads. For the evaluation tests and
benchmark: it takes seconds, where building the sample corpus takes minutes.

Per series, every unit of the main character that directly follows another speaker's unit makes
an (A, B) exchange; two exchanges in a row of one episode make a dialogue. Dialogues are split
train/test by a stable hash, so both sides have several.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from audiorole_ray.corpus.shards import shard_bytes
from audiorole_ray.io.audio import SAMPLE_RATE, encode_flac, load_segments
from audiorole_ray.io.storage import write_bytes
from audiorole_ray.io.tables import write_table
from audiorole_ray.records import DialogueTurn
from audiorole_ray.sample import SAMPLE_SERIES, SAMPLE_TRUTH

MAIN = {"sitcom": "allison", "heldout": "nora"}


def _units(series: str) -> dict[str, list[dict]]:
    by_ep = defaultdict(list)
    for line in (SAMPLE_TRUTH / series / "transcripts.jsonl").read_text().splitlines():
        u = json.loads(line)
        by_ep[u["episode_id"]].append(u)
    return {k: sorted(v, key=lambda u: u["start"]) for k, v in sorted(by_ep.items())}


def make_tiny_corpus(root: Path, series_list=("sitcom", "heldout"), test_every: int = 3, min_s: float = 1.0) -> Path:
    rows = []
    for series in series_list:
        main = MAIN[series]
        speakers = sorted({u["speaker"] for ep in _units(series).values() for u in ep} - {main})
        ids = {main: f"{series}_spk00", **{s: f"{series}_spk{i + 1:02d}" for i, s in enumerate(speakers)}}
        for episode_id, units in _units(series).items():
            stem = episode_id.split("/")[1]
            src = next((SAMPLE_SERIES / series).glob(f"{stem}.*"))
            pairs = [(a, b) for a, b in zip(units, units[1:])
                     if a["speaker"] != main and b["speaker"] == main and b["start"] >= a["end"]
                     and a["end"] - a["start"] >= min_s and b["end"] - b["start"] >= min_s]
            if not pairs:
                continue
            used = sorted({id(u): u for p in pairs for u in p}.values(), key=lambda u: u["start"])
            clips = load_segments(str(src), [(u["start"], u["end"]) for u in used])
            key_of = {id(u): f"{series}_{stem}_{i:04d}" for i, u in enumerate(used)}
            shard = f"audio/{episode_id}.tar"  # the corpus layout: one shard per episode, named by its id
            write_bytes(str(root / shard), shard_bytes([(key_of[id(u)], encode_flac(c, SAMPLE_RATE), {"text": u["text"]})
                                                         for u, c in zip(used, clips)]))
            for k in range(0, len(pairs), 2):
                group = pairs[k : k + 2]
                dialogue_id = f"{episode_id}/s{k // 2:03d}/{ids[main]}/0"
                h = int(hashlib.sha1(dialogue_id.encode()).hexdigest()[:8], 16)
                split = "test" if h % test_every == 0 else "train"
                turn = 0
                for a, b in group:
                    for u in (a, b):
                        rows.append({
                            "dialogue_id": dialogue_id, "turn_index": turn, "role": "A" if u is a else "B", "kind": "multi",
                            "split": split, "series": series, "episode_id": episode_id, "scene_id": f"{episode_id}/s{k // 2:03d}",
                            "target": ids[main], "speaker_id": ids[u["speaker"]], "speakers": sorted({ids[a["speaker"]], ids[main]}),
                            "start": u["start"], "end": u["end"], "duration": u["end"] - u["start"], "text": u["text"],
                            "audio_path": shard, "audio_key": key_of[id(u)], "truncated": False,
                        })
                        turn += 1
    write_table(str(root / "dialogues.parquet"), rows, DialogueTurn)
    return root
