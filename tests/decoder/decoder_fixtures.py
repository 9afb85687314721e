"""A small corpus of the bundled sample's main character, laid out as the corpus and tokens
jobs write it, built in seconds from the sample's ground truth (no diarization, no ASR):
sitcom's true turns (RTTM), Allison Smith (the main character, a real voice) as speaker B
``sitcom_spk00`` and the turn before hers as speaker A; FLAC shards at 24 kHz; speech tokens
from the embedded whisper-units tokenizer with a codebook fitted on these clips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from audiorole_ray.sample import SAMPLE_SERIES

TARGET = "sitcom_spk00"
RATE = 24000


def _turns(rttm: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in rttm.read_text().splitlines():
        f = line.split()
        out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return sorted(out)


def _texts(series: str) -> dict[str, list[dict]]:
    by_ep: dict[str, list[dict]] = {}
    for line in (SAMPLE_SERIES.parent / "truth" / series / "transcripts.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_ep.setdefault(row["episode_id"], []).append(row)
    return by_ep


def write_sample_corpus(root: Path, max_clip_s: float = 8.0, codebook_size: int = 64, test_every: int = 4) -> Path:
    from audiorole_ray.io.audio import SAMPLE_RATE, encode_flac, load_segments
    from audiorole_ray.decoder.mel import resample
    from audiorole_ray.tokens.codebook import fit_codebook
    from audiorole_ray.tokens.shards import write_tokens
    from audiorole_ray.tokens.whisper_units import WhisperUnits

    series = "sitcom"
    main = json.loads((SAMPLE_SERIES.parent / "truth" / series / "cast.json").read_text())["main_character"]
    texts = _texts(series)
    rows, clips16 = [], {}
    d = 0
    for ep_index, rttm in enumerate(sorted((SAMPLE_SERIES.parent / "truth" / series).glob("*.rttm"))):
        media = next((SAMPLE_SERIES / series).glob(rttm.stem + ".*"))
        turns = _turns(rttm)
        pairs = [(a, b) for a, b in zip(turns, turns[1:]) if b[2] == main and a[2] != main and b[0] - a[1] < 3.0
                 and a[1] - a[0] >= 1.0 and b[1] - b[0] >= 1.0]
        spans = [(s, min(e, s + max_clip_s)) for a, b in pairs for s, e, _ in (a, b)]
        if not spans:
            continue
        audio = load_segments(str(media), spans, RATE)
        shard = f"audio/shard-{ep_index:06d}.tar"
        samples = []
        for k, ((a, b), (a_audio, b_audio)) in enumerate(zip(pairs, zip(audio[0::2], audio[1::2]))):
            episode = f"{series}/{rttm.stem}"
            dialogue = f"{episode}#{k:04d}/{TARGET}/0"
            split = "test" if d % test_every == test_every - 1 else "train"
            d += 1
            for i, ((s, e, spk), clip) in enumerate(zip((a, b), (a_audio, b_audio))):
                key = f"{series}_{rttm.stem}_{k:04d}_{i}"
                said = " ".join(t["text"] for t in texts.get(episode, []) if t["start"] < e and t["end"] > s) or "mm"
                speaker = TARGET if spk == main else f"{series}_{spk}"
                rows.append({"dialogue_id": dialogue, "turn_index": i, "role": "AB"[i], "kind": "multi", "split": split,
                             "series": series, "episode_id": episode, "scene_id": f"{episode}#{k:04d}", "target": TARGET,
                             "speaker_id": speaker, "speakers": [speaker, TARGET] if i == 0 else [TARGET],
                             "start": s, "end": s + len(clip) / RATE, "duration": len(clip) / RATE, "text": said,
                             "audio_path": shard, "audio_key": key, "truncated": False})
                samples.append((key, encode_flac(clip, RATE), {"text": said, "split": split}))
                clips16[key] = (shard, resample(clip, RATE, SAMPLE_RATE))
        _write_shard(root / shard, samples)
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "dialogues.parquet", index=False)

    units = WhisperUnits()
    keys = sorted(clips16)
    frames = units.encode([clips16[k][1] for k in keys])
    book = fit_codebook(np.concatenate(frames), codebook_size, seed=0)
    tok_dir = root / "tokens" / "whisper-units"
    book.save(str(tok_dir / "codebook.npz"))
    settings = f"fixture-{book.hash[:12]}"
    by_shard: dict[str, list[dict]] = {}
    for key, f in zip(keys, frames):
        shard, audio = clips16[key]
        codes = book.assign(f).tolist()
        by_shard.setdefault(shard, []).append({"audio_key": key, "audio_path": shard, "tokens": codes, "frame_rate": 12.5,
                                               "n_tokens": len(codes), "duration": len(audio) / SAMPLE_RATE})
    for shard, toks in by_shard.items():
        write_tokens(str(tok_dir / "shards" / (Path(shard).stem + ".parquet")), toks, settings, {})
    (tok_dir / "tokenizer.json").write_text(json.dumps({"name": "whisper-units", "frame_rate": 12.5, "vocab_size": book.size,
                                                         "settings": settings, "codebook": "codebook.npz",
                                                         "codebook_hash": book.hash}))
    return root


def _write_shard(path: Path, samples) -> None:
    import io
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for key, flac, meta in samples:
            for name, data in ((f"{key}.flac", flac), (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
