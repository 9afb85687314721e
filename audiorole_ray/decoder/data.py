"""Training data of a character's decoder: (speech tokens, mel) pairs of all its clips.

The driver only lists clips (keys, shard paths, split) and their token ids; a Ray Data stage
(:class:`ClipMels`) reads each shard once, decodes the character's clips, resamples them to
22.05 kHz and computes the vocoder's mel, so audio and mels stream to the training workers and
never sit on the driver. :func:`collate` pads a batch for the model.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from audiorole_ray.corpus.plan import split_score
from audiorole_ray.corpus.reader import iter_shard_clips, read_dialogues
from audiorole_ray.decoder.mel import MEL, mel_spectrogram
from audiorole_ray.errors import ConfigError, InputError


def character_clips(corpus: str, target: str) -> pd.DataFrame:
    """Every clip the character speaks, once: its B turns and any A turn that is its alone
    (when it is a stimulus in another target's dialogues). Columns: audio_key, audio_path,
    split, duration."""
    rows = read_dialogues(corpus, columns=["speaker_id", "audio_key", "audio_path", "split", "duration"])
    if target not in set(rows["speaker_id"]):
        known = sorted(rows["speaker_id"].unique())[:20]
        raise ConfigError(f"no clip of speaker {target!r} in {corpus} (speakers: {known})")
    mine = rows[rows["speaker_id"] == target].drop_duplicates("audio_key")
    return mine[["audio_key", "audio_path", "split", "duration"]].sort_values("audio_key").reset_index(drop=True)


def _held_out(key: str, seed: int, fraction: float) -> bool:
    return split_score(key, seed) < fraction  # the corpus's seeded hash, here of a clip key


def split_clips(clips: pd.DataFrame, val_fraction: float = 0.1, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, val, how): val is the character's test-split clips; without any, a seeded
    held-out share of its clips (at least one, never all). A character with test clips only is
    refused: training on them would leave its evaluation nothing unseen."""
    test = clips["split"] == "test"
    if test.any() and (~test).any():
        return clips[~test].reset_index(drop=True), clips[test].reset_index(drop=True), "test split"
    if test.any():
        raise ConfigError(f"all {len(clips)} clips of the character are in the corpus's test split: a decoder trained on them "
                          "would be evaluated on what it learned from; choose a target with training-split clips, or build "
                          "the corpus with a smaller --test-fraction")
    if len(clips) < 2:
        raise ConfigError(f"the character has {len(clips)} clip(s): too few to train a decoder and validate it")
    held = clips["audio_key"].map(lambda k: _held_out(k, seed, val_fraction))
    if not held.any():
        held.iloc[int(np.argmax([_held_out(k, seed, 1.0) for k in clips["audio_key"]]))] = True
    if held.all():
        held.iloc[0] = False
    return clips[~held].reset_index(drop=True), clips[held].reset_index(drop=True), f"held-out {val_fraction:.0%} (seed {seed})"


def shard_items(clips: pd.DataFrame, tokens: dict[str, np.ndarray]) -> tuple[list[dict], list[str]]:
    """One work item per shard (the keys to read there and their tokens), and the keys
    without tokens (left out)."""
    missing = [k for k in clips["audio_key"] if k not in tokens or len(tokens[k]) == 0]
    have = clips[~clips["audio_key"].isin(missing)]
    items = []
    for path, group in have.groupby("audio_path", sort=True):
        keys = list(group["audio_key"])
        items.append({"audio_path": path, "keys": keys, "tokens": [np.asarray(tokens[k], np.int64).tolist() for k in keys]})
    return items, missing


class ClipMels:
    """Ray Data ``flat_map`` callable: a shard item -> one row per clip with ``audio_key``,
    ``tokens`` (int64) and ``mel`` (frames, 80) float32 at the vocoder's settings."""

    def __init__(self, corpus: str, max_seconds: float = 30.0):
        self.corpus, self.max_seconds = corpus, max_seconds

    def __call__(self, item: dict) -> Iterator[dict]:
        tokens = dict(zip(item["keys"], item["tokens"]))
        for key, audio, rate, _meta in iter_shard_clips(self.corpus, item["audio_path"], set(tokens)):
            audio = audio[: int(self.max_seconds * rate)]
            mel = mel_spectrogram(audio, rate).T.contiguous().numpy()
            yield {"audio_key": key, "tokens": np.asarray(tokens[key], np.int64), "mel": mel.astype(np.float32)}


def iter_rows(batch) -> Iterable[dict]:
    """Rows of a Ray Data batch given as a dict of columns (numpy) or a list of rows."""
    if isinstance(batch, dict):
        keys = list(batch)
        for i in range(len(batch[keys[0]])):
            yield {k: batch[k][i] for k in keys}
    else:
        yield from batch


def collate(rows: Iterable[dict]) -> dict[str, torch.Tensor]:
    """Pad tokens and mels: tokens (B, N) long, token_len (B,), mel (B, 80, T), mel_len (B,)."""
    rows = list(rows)
    if not rows:
        raise InputError("empty batch")
    toks = [torch.as_tensor(np.asarray(r["tokens"]), dtype=torch.long).reshape(-1) for r in rows]
    mels = [torch.as_tensor(np.asarray(r["mel"], dtype=np.float32)).reshape(-1, MEL.n_mels) for r in rows]
    n, t = max(x.numel() for x in toks), max(m.shape[0] for m in mels)
    tokens = torch.zeros(len(rows), n, dtype=torch.long)
    mel = torch.zeros(len(rows), MEL.n_mels, t)
    for i, (x, m) in enumerate(zip(toks, mels)):
        tokens[i, : x.numel()] = x
        mel[i, :, : m.shape[0]] = m.T
    return {"tokens": tokens, "token_len": torch.tensor([x.numel() for x in toks]),
            "mel": mel, "mel_len": torch.tensor([m.shape[0] for m in mels])}


def frame_batches(rows: Iterable[dict], max_frames: int, max_items: int = 64) -> Iterator[list[dict]]:
    """Group streamed rows into batches whose padded size stays under ``max_frames`` mel frames
    (CosyVoice's dynamic batching), in arrival order."""
    batch: list[dict] = []
    longest = 0
    for row in rows:
        frames = int(np.asarray(row["mel"]).reshape(-1, MEL.n_mels).shape[0])
        if batch and (max(longest, frames) * (len(batch) + 1) > max_frames or len(batch) >= max_items):
            yield batch
            batch, longest = [], 0
        batch.append(row)
        longest = max(longest, frames)
    if batch:
        yield batch


def read_tokens(tokens_dir: str, keys: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], float]:
    """Speech tokens of a tokenized corpus (``OUT/tokens/<tokenizer>/*.parquet``: audio_key,
    tokens, frame_rate), for ``keys`` only when given: {key: int64 array}, token rate."""
    import pyarrow.dataset as pads
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(tokens_dir)
    if not fs.exists(path):
        raise InputError(f"no speech tokens at {tokens_dir} (run jobs/tokenize_corpus.py first)")
    ds = pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)
    flt = pads.field("audio_key").isin(sorted(set(keys))) if keys is not None else None
    table = ds.to_table(columns=["audio_key", "tokens", "frame_rate"], filter=flt)
    rates = set(table.column("frame_rate").to_pylist())
    if len(rates) > 1:
        raise InputError(f"{tokens_dir}: mixed token rates {sorted(rates)}")
    out = {k: np.asarray(t, np.int64) for k, t in zip(table.column("audio_key").to_pylist(), table.column("tokens").to_pylist())}
    return out, float(rates.pop()) if rates else 12.5
