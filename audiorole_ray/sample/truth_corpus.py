"""A corpus of the bundled sample written from its ground truth, in seconds instead of the
minutes the corpus job takes: for tests and benchmarks that need real voices in the corpus
layout.

The true turns (``truth/<series>/<stem>.rttm``) stand in for diarization and linking, the true
transcripts for ASR; everything else is the corpus job's own code: ``plan_episode`` cuts scenes
and A/B utterances, applies the duration filter (``min_s``/``max_s``: too short is dropped, too
long truncated) and splits by scene (``test_share``, at least one test scene per target as the
job does); the text filters run on the true text; ``finish_episode`` writes
``audio/<series>/<stem>.tar`` and ``dialogues.parquet/<series>/<stem>.parquet``. The result is what
``jobs/build_corpus.py --enhancer none`` would write with perfect diarization and ASR.

Speaker ids: the target (default: the series' main character) is ``<series>_spk00``, the others
``<series>_spk01``... in name order. ``tokens=True`` adds whisper-units speech tokens
(:func:`write_whisper_units`).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from audiorole_ray.corpus.enhance_stage import _sample_meta, finish_episode
from audiorole_ray.corpus.plan import PlanSettings, dialogue_scenes, ensure_test_scenes, plan_episode
from audiorole_ray.filters import FilterConfig, text_drop_reason
from audiorole_ray.io.audio import encode_flac, load_segments
from audiorole_ray.records import PlannedUtterance, Turn
from audiorole_ray.sample import SAMPLE_SERIES, SAMPLE_TRUTH

LANGUAGE = "en"  # of sitcom's and heldout's transcripts (the text filter's script check)


def main_character(series: str) -> str:
    return json.loads((SAMPLE_TRUTH / series / "cast.json").read_text())["main_character"]


def true_turns(series: str, stem: str) -> list[Turn]:
    """An episode's turns from its RTTM, by start time, speakers by their names in the truth."""
    turns = []
    for line in (SAMPLE_TRUTH / series / f"{stem}.rttm").read_text().splitlines():
        f = line.split()
        start = float(f[3])
        turns.append(Turn(start, round(start + float(f[4]), 3), f[7]))
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def true_units(series: str) -> dict[str, list[dict]]:
    """{episode id: transcript units by start time} (``start``, ``end``, ``speaker``, ``text``)."""
    by_ep: dict[str, list[dict]] = defaultdict(list)
    for line in (SAMPLE_TRUTH / series / "transcripts.jsonl").read_text().splitlines():
        u = json.loads(line)
        by_ep[u["episode_id"]].append(u)
    return {k: sorted(v, key=lambda u: u["start"]) for k, v in by_ep.items()}


def episode_media(series: str, stem: str) -> Path:
    return next((SAMPLE_SERIES / series).glob(f"{stem}.*"))


def said(units: list[dict], start: float, end: float) -> str:
    """The true text of [start, end]: the units whose middle lies in it (a truncated utterance
    keeps the units it still holds the greater part of), else any unit it overlaps."""
    inside = [u for u in units if start <= (u["start"] + u["end"]) / 2 <= end]
    inside = inside or [u for u in units if u["start"] < end and u["end"] > start]
    return " ".join(u["text"] for u in inside)


def write_truth_corpus(root: str | Path, series: tuple[str, ...] = ("sitcom",), target: str | None = None,
                       test_share: float = 0.3, seed: int = 3, min_s: float = 1.0, max_s: float = 30.0,
                       audio_rate: int = 24_000, tokens: bool = False, codebook_size: int = 64) -> Path:
    """Write the corpus of ``series`` under ``root`` and return ``root``.

    ``target``: the speaker (a name in the truth) whose dialogues are planned, in each series it
    speaks in; default each series' main character. ``test_share``: the job's ``--test-fraction``
    (split by a hash of ``seed`` and the scene; the default seed leaves both main characters test
    and training exchanges: sitcom 5 test / 14 train, heldout 4 / 8). ``min_s``/``max_s``: the
    duration filter. ``audio_rate``: the rate of the stored FLAC. ``tokens``: also write
    whisper-units tokens with a ``codebook_size``-code codebook fitted on the training clips."""
    root = Path(root)
    settings = PlanSettings(filters=FilterConfig(min_duration_s=min_s, max_duration_s=max_s), seed=seed,
                            test_fraction=test_share)
    for s in series:
        who = target or main_character(s)
        units = true_units(s)
        names = sorted({u["speaker"] for ep in units.values() for u in ep} - {who})
        ids = {who: f"{s}_spk00", **{n: f"{s}_spk{i + 1:02d}" for i, n in enumerate(names)}}
        stems = sorted(p.stem for p in (SAMPLE_TRUTH / s).glob("*.rttm"))
        turns = {stem: [Turn(t.start, t.end, ids[t.speaker]) for t in true_turns(s, stem)] for stem in stems}
        # the job's two passes: plan every episode to choose the test scenes, then plan with them
        scenes: dict[str, list[str]] = defaultdict(list)
        for stem in stems:
            for t, sc in dialogue_scenes(plan_episode(f"{s}/{stem}", turns[stem], [ids[who]], settings)).items():
                scenes[t] += sc
        forced = ensure_test_scenes(scenes, settings)
        for stem in stems:
            episode_id = f"{s}/{stem}"
            plan = plan_episode(episode_id, turns[stem], [ids[who]], settings, forced)
            _write_episode(root, s, episode_id, plan.utterances, units.get(episode_id, []), settings, audio_rate)
    if tokens:
        write_whisper_units(root, codebook_size, seed)
    return root


def _write_episode(root: Path, series: str, episode_id: str, utts: list[PlannedUtterance], units: list[dict],
                   settings: PlanSettings, audio_rate: int) -> None:
    for u in utts:
        if not u.drop:
            u.text = said(units, u.start, u.end)
            u.drop = text_drop_reason(u.text, LANGUAGE, settings.filters)
    kept = [u for u in utts if not u.drop]
    clips = load_segments(str(episode_media(*episode_id.split("/"))), [(u.start, u.end) for u in kept], audio_rate)
    item = {"series": series, "id": episode_id}
    samples = [(u.key, encode_flac(c, audio_rate), _sample_meta(u, item)) for u, c in zip(kept, clips)]
    finish_episode(utts, series, episode_id, samples, {}, [], str(root))


def write_whisper_units(root: str | Path, codebook_size: int = 64, seed: int = 0) -> None:
    """``tokens/whisper-units/`` as ``jobs/tokenize_corpus.py`` writes it: the tokens job itself,
    in this process (no Ray), with a codebook fitted on the training clips."""
    from audiorole_ray.tokens.job import TokenizeConfig, run

    run(TokenizeConfig(corpus=str(root), codebook_size=codebook_size, seed=seed, workers=1), local=True)
