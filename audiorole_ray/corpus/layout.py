"""Where each output of the corpus job lives, relative to the output root.

Per-episode outputs are named by the episode id, never by its place in the input, so adding or
removing episodes leaves every other episode's files alone.
"""
from __future__ import annotations

DIALOGUES = "dialogues.parquet"  # a Parquet dataset: one file per episode
AUDIO = "audio"
RTTM = "rttm"
STATE = "_state"
# folders whose files all belong to episodes; a run removes what the current input does not make
PER_EPISODE = (DIALOGUES, AUDIO, RTTM)


def shard_path(episode_id: str) -> str:
    return f"{AUDIO}/{episode_id}.tar"


def dialogues_part(episode_id: str) -> str:
    return f"{DIALOGUES}/{episode_id}.parquet"


def rttm_path(episode_id: str) -> str:
    return f"{RTTM}/{episode_id}.rttm"
