#!/usr/bin/env python
"""Diarization throughput: per-part real-time factor of the embedded backend (one process, one
thread), then the Ray Data job's audio seconds per wall second with 1 and 2 workers.

    python benchmarks/bench_diarize.py [--repeat 3] [--workers 1 2] [--long-minutes 45 [--long-only]] [--json out.json]

The input is the bundled sample series copied ``--repeat`` times (as distinct episodes), so the
job runs long enough for steady state. Ray start-up is excluded from the job timings.
``--long-minutes M`` also diarizes one M-minute episode (the sample's episodes end to end,
repeated) in a fresh process on one thread and prints its time and the process's peak memory
over what it held before: a TV episode is 20-45 minutes, the sample's are 1-2.
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


def long_episode(minutes: float) -> dict:
    """Time and peak-memory growth of the embedded backend on one ``minutes``-long episode. Run in
    a fresh process (``ru_maxrss`` is a high-water mark)."""
    import resource

    import numpy as np
    import torch

    from audiorole_ray.diarize.embedded import EmbeddedBackend

    torch.set_num_threads(1)
    peak_mb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 (KiB on Linux)
    pieces = [decode(str(f)) for f in sorted(SAMPLE_SERIES.glob("*/*"))]
    n = int(minutes * 60 * SAMPLE_RATE)
    audio = np.concatenate(pieces * (n // sum(map(len, pieces)) + 1))[:n].astype(np.float32)
    del pieces
    backend = EmbeddedBackend()
    backend.load()
    backend.diarize("warmup", audio[: SAMPLE_RATE * 20])
    backend._times.clear()
    before = peak_mb()
    t = time.perf_counter()
    d = backend.diarize("long", audio)
    wall = time.perf_counter() - t
    return {"minutes": minutes, "wall_s": wall, "rtf": wall / (n / SAMPLE_RATE), "turns": len(d.turns),
            "speakers": len(d.centroids), "peak_mb": peak_mb(), "before_mb": before,
            "audio_mb": audio.nbytes / 2**20, "parts_s": backend.timings()}


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
    p.add_argument("--long-minutes", type=float, default=0, help="also time one episode this long (0: no)")
    p.add_argument("--long-only", action="store_true", help="only the --long-minutes episode")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    if args.long_only and args.long_minutes <= 0:
        p.error("--long-only needs --long-minutes M > 0")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    figures = {"machine": machine}
    print(f"machine: {machine}")
    if args.long_minutes > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            figures["long"] = r = pool.submit(long_episode, args.long_minutes).result()
        print(f"one {r['minutes']:.0f}-minute episode, one process, 1 thread: {r['wall_s']:.1f} s (RTF {r['rtf']:.3f}, "
              f"{1 / r['rtf']:.1f}x real time), {r['turns']} turns, {r['speakers']} speakers; peak memory "
              f"{r['peak_mb']:.0f} MB, {r['peak_mb'] - r['before_mb']:.0f} MB over the {r['before_mb']:.0f} MB held "
              f"before (models, the decoded {r['audio_mb']:.0f} MB episode)")
        if args.long_only:
            if args.json:
                Path(args.json).write_text(json.dumps(figures, indent=2))
            return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inp = make_input(args.repeat, root)
        parts = backend_parts(inp)
        runs = ray_throughput(inp, args.workers, root)
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
        Path(args.json).write_text(json.dumps({**figures, "parts": parts, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
