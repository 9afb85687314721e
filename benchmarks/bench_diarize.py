#!/usr/bin/env python
"""Diarization throughput: per-part real-time factor of the embedded backend (one process, one
thread), then the Ray Data job's audio seconds per wall second with 1 and 2 workers.

    python benchmarks/bench_diarize.py [--repeat 3] [--workers 1 2] [--json out.json]

The input is the bundled sample series copied ``--repeat`` times (as distinct episodes), so the
job runs long enough for steady state. Ray start-up is excluded from the job timings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorole_ray.io.audio import SAMPLE_RATE, decode  # noqa: E402
from audiorole_ray.io.storage import list_episodes  # noqa: E402
from audiorole_ray.pipeline.state import MarkerStore  # noqa: E402
from audiorole_ray.sample import SAMPLE_SERIES  # noqa: E402


def make_input(repeat: int, root: Path) -> Path:
    inp = root / "in"
    for k in range(repeat):
        for src in sorted(SAMPLE_SERIES.glob("*/*")):
            dst = inp / src.parent.name / f"{src.stem}_r{k}{src.suffix}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return inp


def print_speed_up(runs: list[dict], indent: str = "") -> None:
    """Print the x real time of the run with the most workers over that of the fewest (runs given
    in any order), if there are two or more runs."""
    if len(runs) >= 2:
        few, many = min(runs, key=lambda r: r["workers"]), max(runs, key=lambda r: r["workers"])
        print(f"{indent}speed-up of {many['workers']} workers over {few['workers']}: "
              f"{many['x_real_time'] / few['x_real_time']:.2f}x")


def backend_parts(inp: Path) -> dict:
    """RTF of each part of the embedded backend on one thread, over the un-repeated sample."""
    import torch

    from audiorole_ray.diarize.embedded import EmbeddedBackend

    torch.set_num_threads(1)
    backend = EmbeddedBackend()
    backend.load()
    load_s = backend.timings()["load"]
    episodes = [e for e in list_episodes(str(inp)) if e.stem.endswith("_r0")]
    audio_s, decode_s = 0.0, 0.0
    backend.diarize("warmup", decode(episodes[0].uri)[: SAMPLE_RATE * 20])
    backend._times.clear()
    for ep in episodes:
        t = time.perf_counter()
        wave = decode(ep.uri)
        decode_s += time.perf_counter() - t
        audio_s += len(wave) / SAMPLE_RATE
        backend.diarize(ep.episode_id, wave)
    parts = {"decode": decode_s, **backend.timings()}
    return {
        "audio_s": audio_s,
        "load_s": load_s,
        "rtf": {k: v / audio_s for k, v in parts.items()},
        "rtf_total": sum(parts.values()) / audio_s,
    }


def ray_throughput(inp: Path, workers: list[int], root: Path) -> list[dict]:
    import ray

    from audiorole_ray.corpus.job import CorpusJobConfig, run

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    out = []
    try:
        for n in workers:
            config = CorpusJobConfig(input=str(inp), output=str(root / f"out_w{n}"), workers=n)
            t = time.perf_counter()
            summary = run(config, stop_after="link")
            wall = time.perf_counter() - t
            audio = summary["audio_h"] * 3600
            # time the actors spent on episodes (from the markers) over the time they were held:
            # what is left is actor start-up, model load and the tail of the last episodes
            store = MarkerStore(str(root / f"out_w{n}" / "_state"))
            busy = sum(m.wall_s for m in store.read("diarized", sorted(store.ids("diarized"))).values())
            out.append({
                "workers": n, "audio_s": audio, "wall_s": wall, "x_real_time": audio / wall,
                "actor_busy": busy / (wall * n), "errors": summary["errors"],
            })
    finally:
        ray.shutdown()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inp = make_input(args.repeat, root)
        parts = backend_parts(inp)
        runs = ray_throughput(inp, args.workers, root)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}")
    print(f"embedded backend, one process, 1 thread, {parts['audio_s']:.0f} s of audio (model load {parts['load_s']:.1f} s):")
    for k, v in parts["rtf"].items():
        print(f"  {k:<8} RTF {v:.4f}")
    print(f"  {'total':<8} RTF {parts['rtf_total']:.4f}  ({1 / parts['rtf_total']:.1f}x real time)")
    print("Ray Data job (ray.init excluded):")
    for r in runs:
        print(
            f"  workers={r['workers']}: {r['audio_s']:.0f} s audio in {r['wall_s']:.1f} s = "
            f"{r['x_real_time']:.1f}x real time, actors busy {r['actor_busy']:.0%} of the time"
        )
    print_speed_up(runs, indent="  ")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "parts": parts, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
