"""The bundled sample series (built by scripts/make_sample_series.py) is complete and consistent:
files decode to the claimed lengths, truth RTTMs parse and agree with the transcripts and cast,
and the series has the shape the pipeline's tests rely on."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest

import audiorole_ray
from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.records import Turn

SAMPLE = Path(audiorole_ray.__file__).parent / "sample"
SERIES = ("sitcom", "heldout", "realcast")
TOL = 0.002  # s; truth times are written with millisecond precision


@cache
def cast(series: str) -> dict:
    return json.loads((SAMPLE / "truth" / series / "cast.json").read_text())


def episodes() -> list[tuple[str, dict]]:
    return [(s, e) for s in SERIES for e in cast(s)["episodes"]]


EPISODES = episodes()
IDS = [e["episode_id"] for _, e in EPISODES]


def stem(episode: dict) -> str:
    return episode["episode_id"].split("/", 1)[1]


def turns(series: str, episode: dict) -> list[Turn]:
    parsed = read_rttm(SAMPLE / "truth" / series / f"{stem(episode)}.rttm")
    assert list(parsed) == [stem(episode)]
    return parsed[stem(episode)]


@cache
def transcripts(series: str) -> list[dict]:
    path = SAMPLE / "truth" / series / "transcripts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@cache
def decode(path: Path) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the sample rate, decoded with PyAV."""
    with av.open(str(path)) as f:
        stream = f.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")
        chunks = [r.to_ndarray() for fr in f.decode(stream) for r in to_float.resample(fr)]
        return np.concatenate(chunks, axis=1), stream.codec_context.sample_rate


def speech_seconds(ts: list[Turn]) -> dict[str, float]:
    """Union of each speaker's turns, in seconds."""
    out = {}
    for spk in {t.speaker for t in ts}:
        total, end = 0.0, -1.0
        for t in sorted(x for x in ts if x.speaker == spk):
            total += max(0.0, t.end - max(t.start, end))
            end = max(end, t.end)
        out[spk] = total
    return out


def gaps(ts: list[Turn]) -> list[float]:
    """Pause before each turn after the first (negative: overlap)."""
    out, end = [], None
    for t in sorted(ts):
        if end is not None:
            out.append(t.start - end)
        end = t.end if end is None else max(end, t.end)
    return out


def test_files_exist_and_nothing_else():
    for series in SERIES:
        truth = SAMPLE / "truth" / series
        assert (truth / "transcripts.jsonl").is_file()
        files = {e["file"] for e in cast(series)["episodes"]}
        assert {p.name for p in (SAMPLE / "series" / series).iterdir()} == files
        rttms = {p.name for p in truth.glob("*.rttm")}
        assert rttms == {f"{Path(f).stem}.rttm" for f in files}
    assert (SAMPLE / "README.md").is_file()


def test_sample_is_small():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 10_000_000


def test_mixed_containers():
    for series in SERIES:
        exts = {Path(e["file"]).suffix for e in cast(series)["episodes"]}
        assert len(exts) == len(cast(series)["episodes"])  # one container per episode
        assert exts & {".m4a", ".mp4", ".ogg", ".mkv", ".mp3", ".webm"}  # at least one compressed


@pytest.mark.parametrize("series, episode", EPISODES, ids=IDS)
def test_decodes_to_claimed_duration(series, episode):
    x, rate = decode(SAMPLE / "series" / series / episode["file"])
    assert rate == episode["sample_rate"]
    assert x.shape[0] == episode["channels"]
    assert x.shape[1] / rate == pytest.approx(episode["duration_s"], abs=0.05)
    assert np.isfinite(x).all() and 0.05 < np.abs(x).max() <= 1.0


@pytest.mark.parametrize("series, episode", EPISODES, ids=IDS)
def test_speech_is_where_the_rttm_says(series, episode):
    """Decoded audio is loud inside truth turns and quiet outside them (timing survived
    encoding): pauses are at least 10 dB below speech."""
    x, rate = decode(SAMPLE / "series" / series / episode["file"])
    mono = x.mean(axis=0)
    inside = np.zeros(len(mono), bool)
    for t in turns(series, episode):
        inside[round(t.start * rate): round(t.end * rate)] = True
    quiet = ~inside
    for ev in episode["events"]:  # non-speech events are not pauses
        quiet[round(ev["start"] * rate): round(ev["end"] * rate)] = False
    speech_db = 10 * np.log10(np.mean(mono[inside] ** 2))
    pause_db = 10 * np.log10(np.mean(mono[quiet] ** 2))
    assert speech_db - pause_db > 10


@pytest.mark.parametrize("series, episode", EPISODES, ids=IDS)
def test_rttm_agrees_with_cast(series, episode):
    ts = turns(series, episode)
    assert ts
    assert all(0 <= t.start < t.end <= episode["duration_s"] + TOL for t in ts)
    assert {t.speaker for t in ts} <= set(cast(series)["speakers"])
    speech = speech_seconds(ts)
    assert speech == pytest.approx(episode["speech_s"], abs=0.05)


@pytest.mark.parametrize("series", SERIES)
def test_main_character_speaks_most_in_every_episode(series):
    main = cast(series)["main_character"]
    assert cast(series)["speakers"][main]["role"] == "main"
    for episode in cast(series)["episodes"]:
        speech = speech_seconds(turns(series, episode))
        assert max(speech, key=speech.get) == main, (episode["episode_id"], speech)


def test_main_characters_differ_between_series():
    mains = [cast(s)["main_character"] for s in SERIES]
    assert len(set(mains)) == len(mains)


def test_realcast_is_real_voices_only():
    """realcast: only real human voices, none of them a main character elsewhere, in small
    compressed files."""
    speakers = cast("realcast")["speakers"]
    assert all(v["source"] == "real" for v in speakers.values())
    assert all(v["license"] and v["origin"] for v in speakers.values())
    assert {r["source"] for r in transcripts("realcast")} == {"real"}
    others = {cast(s)["main_character"] for s in SERIES if s != "realcast"}
    assert not others & set(speakers)
    eps = cast("realcast")["episodes"]
    assert all(60 <= e["duration_s"] <= 80 for e in eps)
    assert 4 <= len(speakers) <= 5
    assert all(e["codec"] in ("libopus", "libmp3lame") and e["bit_rate"] <= 32000 for e in eps)
    total = sum((SAMPLE / "series" / "realcast" / e["file"]).stat().st_size for e in eps)
    assert total <= 1_000_000


@pytest.mark.parametrize("series", SERIES)
def test_series_shape(series):
    eps = cast(series)["episodes"]
    assert len(eps) >= 3
    per_episode = [{t.speaker for t in turns(series, e)} for e in eps]
    speakers = set().union(*per_episode)
    assert len(speakers) >= 4
    main = cast(series)["main_character"]
    assert all(main in s for s in per_episode)
    for spk in speakers - {main}:
        assert sum(spk in s for s in per_episode) >= 2, spk


@pytest.mark.parametrize("series", SERIES)
def test_transcripts_cover_every_turn(series):
    rows = transcripts(series)
    assert all(r["source"] in ("real", "synthetic") and r["text"].strip() for r in rows)
    assert all(r["start"] < r["end"] for r in rows)
    for episode in cast(series)["episodes"]:
        mine = [r for r in rows if r["episode_id"] == episode["episode_id"]]
        used = set()
        for t in turns(series, episode):
            inside = [i for i, r in enumerate(mine) if r["speaker"] == t.speaker
                      and r["start"] >= t.start - TOL and r["end"] <= t.end + TOL]
            assert inside, t
            assert min(mine[i]["start"] for i in inside) == pytest.approx(t.start, abs=TOL)
            assert max(mine[i]["end"] for i in inside) == pytest.approx(t.end, abs=TOL)
            used.update(inside)
        assert used == set(range(len(mine)))  # no utterance outside a turn


@pytest.mark.parametrize("series", SERIES)
def test_pauses_within_and_between_scenes(series):
    for episode in cast(series)["episodes"]:
        g = gaps(turns(series, episode))
        assert any(0 <= x < 3.0 for x in g), episode["episode_id"]
        assert any(x > 3.0 for x in g), episode["episode_id"]
