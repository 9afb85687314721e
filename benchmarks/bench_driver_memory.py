#!/usr/bin/env python
"""Driver memory of the corpus job at corpus scale, without audio or models.

    python benchmarks/bench_driver_memory.py [--episodes 10000 100000] [--per-series 250]

For each size it fakes what the workers leave behind for a finished corpus: tiny input files,
each episode's diarized, transcribed and enhanced markers, its dialogue part (about ten rows,
written by the real assembly and table code) and a stand-in shard. It then runs the real job
driver in a child process on that output: every pass finds its markers current, so the driver
does what it does on any run (list the input, read the markers, link speakers and plan per
series, sum the report's aggregates, write the tables and the report, prune), and the child's
peak RSS is the driver's. Markers are made by the job's own functions, so their hashes are the
ones a real run would write.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorole_ray.corpus.enhance_stage import finish_episode  # noqa: E402
from audiorole_ray.corpus.job import CorpusJobConfig, link_and_plan  # noqa: E402
from audiorole_ray.corpus.plan import plan_episode  # noqa: E402
from audiorole_ray.corpus.report import Totals  # noqa: E402
from audiorole_ray.dummies import episode_diarization  # noqa: E402
from audiorole_ray.io.storage import join, list_episodes  # noqa: E402
from audiorole_ray.link import relabel  # noqa: E402
from audiorole_ray.pipeline.runner import item_hash  # noqa: E402
from audiorole_ray.pipeline.state import MarkerStore  # noqa: E402
from audiorole_ray.records import AudioInfo, Diarized, Marker, Transcribed, to_dict  # noqa: E402

TURNS = 11  # about ten dialogue rows per episode
FLAC_STAND_IN = b"fLaC" + bytes(60)  # the driver never opens shards: their size is what it checks


def config_for(root: Path) -> CorpusJobConfig:
    return CorpusJobConfig(str(root / "in"), str(root / "out"), enhancer=None, quality_every=0)


def fake_corpus(root: Path, n_episodes: int, per_series: int) -> None:
    for i in range(n_episodes):
        path = root / "in" / f"series{i // per_series:04d}" / f"ep{i % per_series:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    config = config_for(root)
    diarize, transcribe, enhance = config.stages()
    store = MarkerStore(join(config.output, "_state"))
    episodes = list_episodes(config.input)
    hashes = {}
    for k, e in enumerate(episodes):
        d = episode_diarization(e.episode_id, n_turns=TURNS, seed=k // per_series)
        decoded = d.turns[-1].end + 1.0
        hashes[e.episode_id] = item_hash(diarize, {"inputs": e.fingerprint})
        store.write(Marker("diarized", e.episode_id, hashes[e.episode_id],
                           to_dict(Diarized(AudioInfo(decoded, 16_000, 1, "pcm_s16le"), decoded, d)), 1.0, 0.1))
    linked = link_and_plan(config, episodes, store, hashes, Totals())
    series = {e.episode_id: e.series for e in episodes}
    for item in linked.transcribe_items:
        spec = json.loads(item["spec"])
        d = episode_diarization(item["id"], n_turns=TURNS)
        turns = relabel(d.turns, spec["mapping"])  # as the worker would
        plan = plan_episode(item["id"], turns, spec["targets"], config.plan, spec["test_scenes"], d.possible_overlap)
        for u in plan.utterances:
            u.text = f"words of {u.key}"
        t_hash = item_hash(transcribe, item)
        store.write(Marker("transcribed", item["id"], t_hash, to_dict(Transcribed(plan.utterances)), 1.0, 0.1))
        kept = [u for u in plan.utterances if not u.drop]
        samples = [(u.key, FLAC_STAND_IN, {"text": u.text}) for u in kept]
        out = finish_episode(plan.utterances, series[item["id"]], item["id"], samples, {}, [], config.output)
        store.write(Marker("enhanced", item["id"], item_hash(enhance, {"inputs": t_hash}), to_dict(out.payload),
                           1.0, 0.1, out.outputs))


DRIVER = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from benchmarks.bench_driver_memory import config_for
from audiorole_ray.corpus.job import run
from pathlib import Path
t = time.perf_counter()
s = run(config_for(Path({root!r})))
print(json.dumps({{"wall_s": time.perf_counter() - t, "rows": s["dialogue_rows"], "episodes": s["episodes_done"],
                  "resumed": s["stage_resumed"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(root: Path) -> dict:
    code = DRIVER.format(repo=str(Path(__file__).resolve().parents[1]), root=str(root))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def baseline() -> float:
    """Peak RSS of a child that only imports the job (the floor every run pays)."""
    code = ("import resource, sys; sys.path.insert(0, %r); import audiorole_ray.corpus.job; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)") % str(Path(__file__).resolve().parents[1])
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--per-series", type=int, default=250, help="episodes per series (the paper's longest: 235)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}")
    floor = baseline()
    print(f"imports alone: peak RSS {floor:.0f} MB")
    results = []
    for n in args.episodes:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            fake_corpus(Path(tmp), n, args.per_series)
            made = time.perf_counter() - t
            r = measure(Path(tmp))
        r.update(episodes_faked=n, fake_s=round(made, 1))
        results.append(r)
        print(f"{n} episodes ({n // args.per_series} series): {r['rows']} dialogue rows; driver peak RSS "
              f"{r['peak_rss_mb']:.0f} MB, {r['wall_s']:.0f} s (faking the corpus took {made:.0f} s); resumed {r['resumed']}")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(f"rows x{b['rows'] / a['rows']:.1f} -> peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
              f"(above the import floor: x{(b['peak_rss_mb'] - floor) / max(a['peak_rss_mb'] - floor, 1):.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "floor_mb": floor, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
