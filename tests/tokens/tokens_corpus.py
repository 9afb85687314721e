"""A tiny corpus for the token tests, built from the bundled sample's real speech: the turns of
sitcom ep01 cut by its ground-truth RTTM, stored as 24 kHz FLAC in two WebDataset shards laid
out as the corpus job lays them out (``audio/<series>/<stem>.tar``, ``dialogues.parquet/`` one
part per shard), some clips used twice (multi and single rows), as the corpus job does.

Not :mod:`audiorole_ray.sample.truth_corpus`: these tests count on a fixed number of clips spread
over two shards, and on clips that are not FLAC or absent from their shard."""
from __future__ import annotations

from audiorole_ray.corpus.layout import dialogues_part, shard_path
from audiorole_ray.corpus.shards import shard_bytes
from audiorole_ray.io.audio import encode_flac, load_segments
from audiorole_ray.io.storage import join, write_bytes
from audiorole_ray.io.tables import write_table
from audiorole_ray.records import DialogueTurn
from audiorole_ray.sample.truth_corpus import episode_media, true_turns

RATE = 24_000
EPISODE = episode_media("sitcom", "ep01")
EPISODES = ("sitcom/ep01", "sitcom/ep02")  # clip i goes to shard i % 2


def sample_turns(n: int) -> list[tuple[str, float, float]]:
    """(speaker, start, end) of the first ``n`` ground-truth turns of sitcom ep01."""
    return [(t.speaker, t.start, t.end) for t in true_turns("sitcom", "ep01")[:n]]


def clip_key(i: int) -> str:
    return f"sitcom-ep0{i % 2 + 1}-s0000-u{i:03d}"


def make_corpus(root, n_clips: int = 8, corrupt: str | None = None, missing: str | None = None) -> list[DialogueTurn]:
    """Write the corpus under ``root``; ``corrupt`` names a clip stored as bytes that are not FLAC,
    ``missing`` one listed in dialogues.parquet but absent from its shard. Returns the rows."""
    turns = sample_turns(n_clips)
    clips = load_segments(str(EPISODE), [(s, e) for _, s, e in turns], RATE)
    rows, samples = {e: [] for e in EPISODES}, {e: [] for e in EPISODES}
    for i, ((spk, s, e), clip) in enumerate(zip(turns, clips)):
        episode, key = EPISODES[i % 2], clip_key(i)
        split = "test" if i in (1, 6) else "train"
        data = b"this is not a flac file" if key == corrupt else encode_flac(clip, RATE)
        if key != missing:
            samples[episode].append((key, data, {"split": split}))
        for kind in ("multi", "single") if i % 3 == 0 else ("multi",):
            rows[episode].append(DialogueTurn(
                dialogue_id=f"{episode}#d{i // 2}-{kind}", turn_index=i % 2, role="AB"[i % 2], kind=kind, split=split,
                series="sitcom", episode_id=episode, scene_id=f"{episode}#s0", target="sitcom_spk00", speaker_id=spk,
                speakers=[spk], start=s, end=e, duration=round(e - s, 3), text="x", audio_path=shard_path(episode),
                audio_key=key, truncated=False))
    for episode in EPISODES:
        write_bytes(join(str(root), shard_path(episode)), shard_bytes(samples[episode]))
        write_table(join(str(root), dialogues_part(episode)), rows[episode], DialogueTurn)
    return [r for e in EPISODES for r in rows[e]]
