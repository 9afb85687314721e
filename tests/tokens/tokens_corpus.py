"""A tiny corpus for the token tests, built from the bundled sample's real speech: the turns of
sitcom ep01 cut by its ground-truth RTTM, stored as 24 kHz FLAC in two WebDataset shards, with a
``dialogues.parquet`` that uses some clips twice (multi and single rows), as the corpus job does."""
from __future__ import annotations

import pandas as pd

from audiorole_ray.corpus.shards import write_shard
from audiorole_ray.io.audio import encode_flac, load_segments
from audiorole_ray.sample import SAMPLE_SERIES

RATE = 24_000
EPISODE = SAMPLE_SERIES / "sitcom" / "ep01.wav"
TRUTH = SAMPLE_SERIES.parent / "truth" / "sitcom" / "ep01.rttm"


def sample_turns(n: int) -> list[tuple[str, float, float]]:
    """(speaker, start, end) of the first ``n`` ground-truth turns of sitcom ep01."""
    turns = []
    for line in TRUTH.read_text().splitlines()[:n]:
        f = line.split()
        start, dur = float(f[3]), float(f[4])
        turns.append((f[7], start, start + dur))
    return turns


def make_corpus(root, n_clips: int = 8, corrupt: str | None = None, missing: str | None = None) -> pd.DataFrame:
    """Write the corpus under ``root``; ``corrupt`` names a clip stored as bytes that are not FLAC,
    ``missing`` one listed in dialogues.parquet but absent from its shard. Returns the rows."""
    turns = sample_turns(n_clips)
    clips = load_segments(str(EPISODE), [(s, e) for _, s, e in turns], RATE)
    rows, shards = [], {}
    for i, ((spk, s, e), clip) in enumerate(zip(turns, clips)):
        key = f"sitcom-ep01-s0000-u{i:03d}"
        path = f"audio/shard-{i % 2:06d}.tar"
        split = "test" if i in (1, 6) else "train"
        data = b"this is not a flac file" if key == corrupt else encode_flac(clip, RATE)
        if key != missing:
            shards.setdefault(path, []).append((key, data, {"split": split}))
        for kind in ("multi", "single") if i % 3 == 0 else ("multi",):
            rows.append({"dialogue_id": f"d{i // 2}-{kind}", "turn_index": i % 2, "role": "AB"[i % 2], "kind": kind,
                         "split": split, "series": "sitcom", "episode_id": "sitcom/ep01", "speaker_id": spk,
                         "start": s, "end": e, "duration": round(e - s, 3), "text": "x", "audio_path": path, "audio_key": key})
    for path, samples in shards.items():
        write_shard(str(root / path), samples)
    df = pd.DataFrame(rows)
    df.to_parquet(root / "dialogues.parquet")
    return df
