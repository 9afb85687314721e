"""Corpus part 1: ingest, sharded diarization on Ray Data, cross-episode linking, outputs.

Outputs under OUT: episodes.parquet, rttm/<series>/<stem>.rttm (series-level speaker ids),
speakers.parquet, errors.parquet, summary.json; per-episode completion markers under _state/.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from audiorole_ray.io.rttm import format_rttm
from audiorole_ray.io.storage import join, list_episodes, list_json, write_json, write_text
from audiorole_ray.io.tables import EPISODES, ERRORS, SPEAKERS, write_parquet
from audiorole_ray.link import LinkConfig, link_series, relabel
from audiorole_ray.pipeline.stages import DiarizeStage, marker_uri, read_markers
from audiorole_ray.types import Episode, EpisodeDiarization, Turn

log = logging.getLogger("audiorole_ray")


@dataclass
class DiarizeJobConfig:
    input: str
    output: str
    backend: str = "embedded"
    backend_options: dict[str, Any] = field(default_factory=dict)
    link_threshold: float = LinkConfig.threshold
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass
class Diarized:
    """What part 1 leaves for part 2: every episode, series-level turns of the finished ones,
    the series speakers, errors and the summary."""

    episodes: list[Episode]
    turns: dict[str, list[Turn]]
    speakers: list[dict]
    errors: list[dict]
    summary: dict
    episode_rows: list[dict]  # as written to episodes.parquet


def run(config: DiarizeJobConfig) -> dict:
    """Run (or resume) part 1 alone and write its summary; needs Ray initialised by the caller."""
    summary = diarize_and_link(config).summary
    write_json(join(config.output, "summary.json"), summary)
    return summary


def diarize_and_link(config: DiarizeJobConfig) -> Diarized:
    import ray

    t0 = time.perf_counter()
    episodes = list_episodes(config.input)  # raises InputError with a clear message
    state = join(config.output, "_state")
    backend_key = {"name": config.backend, "options": config.backend_options}
    done = _finished(state, backend_key)
    todo = [e for e in episodes if e.episode_id not in done]
    log.info("%d episodes, %d already diarized, %d to do", len(episodes), len(episodes) - len(todo), len(todo))

    results: list[dict] = []
    if todo:
        from audiorole_ray.pipeline.ray_runner import apply_stage

        ds = ray.data.from_items([asdict(e) for e in todo], override_num_blocks=len(todo))
        diarize = DiarizeStage(
            backend=config.backend,
            backend_options=config.backend_options,
            state_uri=state,
            num_cpus=config.cpus_per_worker,
            num_gpus=config.gpus_per_worker,
        )
        ds = apply_stage(ds, diarize, workers=min(config.workers, len(todo)))
        results = ds.take_all()

    errors = [
        {"uri": r["uri"], "episode_id": r["episode_id"], "stage": r.get("error_stage", ""), "error": r["error"]}
        for r in results
        if r["status"] == "error"
    ]
    # markers from earlier runs were read above; read only those this run wrote
    fresh = {r["episode_id"] for r in results if r["status"] == "ok"}
    markers = {**done, **_finished(state, backend_key, only=fresh)}
    summary, turns, speakers, episode_rows = write_outputs(config, episodes, markers, errors)
    summary.update(
        episodes_skipped_resume=len(episodes) - len(todo),
        wall_s=round(time.perf_counter() - t0, 2),
    )
    summary["x_real_time"] = round(summary["audio_h"] * 3600 / max(summary["wall_s"], 1e-9), 2)
    return Diarized(episodes, turns, speakers, errors, summary, episode_rows)


def _finished(state: str, backend_key: dict, only: set[str] | None = None) -> dict[str, dict]:
    """Markers of finished episodes made with the same backend settings (others are redone);
    with ``only``, just those episodes' markers."""
    if only is not None:
        uris = [marker_uri(state, eid) for eid in sorted(only)]
    else:
        uris = list_json(join(state, "diarized"))
    return read_markers(uris, lambda _, m: m.get("backend") == backend_key)


def write_outputs(config: DiarizeJobConfig, episodes, markers: dict[str, dict], errors: list[dict]):
    """Link speakers per series from all markers (this run's and earlier ones') and write outputs;
    returns the summary, the series-level turns per episode, the speaker and episode rows."""
    by_series: dict[str, list[EpisodeDiarization]] = defaultdict(list)
    for m in markers.values():
        d = m["diarization"]
        turns = [Turn(**t) for t in d["turns"]]
        by_series[m["episode"]["series"]].append(EpisodeDiarization(d["episode_id"], turns, d["centroids"], d["speech_s"]))

    speakers, linked_turns = [], {}
    link = LinkConfig(threshold=config.link_threshold)
    for series, eps in sorted(by_series.items()):
        linked = link_series(series, eps, link)
        speakers.extend(linked.rows())
        for ep in eps:
            turns = relabel(ep, linked.mapping)
            linked_turns[ep.episode_id] = turns
            stem = ep.episode_id.split("/", 1)[1]
            write_text(join(config.output, "rttm", series, f"{stem}.rttm"), format_rttm(stem, turns))

    failed = {e["episode_id"]: e for e in errors}
    rows = []
    for e in episodes:
        m = markers.get(e.episode_id)
        meta = m["episode"] if m else {}
        rows.append(
            {
                "series": e.series,
                "episode_id": e.episode_id,
                "uri": e.uri,
                "duration_s": m["decoded_s"] if m else None,
                "sample_rate": meta.get("sample_rate"),
                "channels": meta.get("channels"),
                "codec": meta.get("codec"),
                "speech_s": sum(m["diarization"]["speech_s"].values()) if m else None,
                "status": "done" if m else ("error" if e.episode_id in failed else "pending"),
            }
        )
    write_parquet(join(config.output, "episodes.parquet"), rows, EPISODES)
    write_parquet(join(config.output, "speakers.parquet"), speakers, SPEAKERS)
    write_parquet(join(config.output, "errors.parquet"), errors, ERRORS)

    audio_s = sum(r["duration_s"] or 0 for r in rows)
    speech_s = sum(r["speech_s"] or 0 for r in rows)
    summary = {
        "output": config.output,
        "series": len(by_series),
        "episodes": len(episodes),
        "episodes_done": len(markers),
        "errors": len(errors),
        "audio_h": round(audio_s / 3600, 4),
        "speech_h": round(speech_s / 3600, 4),
        "speakers": len(speakers),
        "turns": sum(map(len, linked_turns.values())),
        "main_characters": {s["series"]: s["speaker_id"] for s in speakers if s["is_main"]},
    }
    return summary, linked_turns, speakers, rows
