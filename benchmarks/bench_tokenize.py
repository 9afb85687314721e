#!/usr/bin/env python
"""Speech tokenizer throughput: the embedded whisper-units tokenizer in one process, then the
tokenize job on Ray with 1 and 2 workers, in x real time.

    python benchmarks/bench_tokenize.py --corpus out/corpus [--repeat 4] [--workers 1 2] [--json out.json]

The input is the clips of a built corpus (its FLAC shards), copied ``--repeat`` times as
distinct shards and keys into a temporary corpus, so the job runs long enough for the actors'
start-up to weigh little. The codebook is fitted once (not timed in the job figures); each job
run tokenizes every shard afresh. Ray start-up is excluded from the job timings; actor start-up
(model load) is included.

The machine is shared: wall-clock figures depend on what else runs. Every figure is also given
per CPU-second of the tokenizer's own processes (``time.process_time``), which does not, and the
load average is printed beside each phase.
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

from audiorole_ray.corpus.reader import iter_shard_clips, read_dialogues  # noqa: E402
from audiorole_ray.corpus.shards import read_shard, shard_bytes  # noqa: E402
from audiorole_ray.io.storage import join, write_bytes  # noqa: E402


def make_corpus(src: str, repeat: int, root: Path) -> Path:
    """``repeat`` copies of ``src``'s clips as distinct shards (audio/r<k>/...) and keys."""
    d = read_dialogues(src)
    rows = []
    for k in range(repeat):
        for path in sorted(d.audio_path.unique()):
            samples = [(f"{key}-r{k}", s["flac"], s.get("json", {})) for key, s in sorted(read_shard(join(src, path)).items())]
            new = f"audio/r{k}/{path[len('audio/'):]}"
            write_bytes(str(root / new), shard_bytes(samples))
            rows.append(d[d.audio_path == path].assign(audio_path=new, audio_key=lambda x, k=k: x.audio_key + f"-r{k}"))
    import pandas as pd

    pd.concat(rows).to_parquet(root / "dialogues.parquet")
    return root


def in_process(corpus: Path, codebook: str) -> dict:
    """whisper-units on one thread over the clips of the first copy: decode + resample, encode,
    codebook assignment, each timed."""
    import numpy as np

    from audiorole_ray.resample import resample
    from audiorole_ray.tokens.base import SAMPLE_RATE
    from audiorole_ray.tokens.whisper_units import WhisperUnits

    d = read_dialogues(str(corpus))
    paths = sorted(p for p in d.audio_path.unique() if p.startswith("audio/r0/"))
    tok = WhisperUnits(codebook=codebook)
    t = time.perf_counter()
    tok.load()
    load_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    clips = [resample(a, r, SAMPLE_RATE) for p in paths for _, a, r, _ in iter_shard_clips(str(corpus), p)]
    decode_s, decode_cpu = time.perf_counter() - t, time.process_time() - c
    tok.encode(clips[:2])  # warm-up
    t, c = time.perf_counter(), time.process_time()
    frames = tok.encode(clips)
    encode_s, encode_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    codes = [tok.codebook.assign(f) for f in frames]
    assign_s, assign_cpu = time.perf_counter() - t, time.process_time() - c
    # the alternative: Whisper's fixed 30 s window, each clip padded to it (the first 5 clips)
    import ctranslate2

    t, c = time.perf_counter(), time.process_time()
    for clip in clips[:5]:
        mel = tok._features(np.pad(clip, (0, 480_000 - clip.size)), padding=0)[:, :3000]
        tok._encoder.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=True)
    window_s, window_cpu = (time.perf_counter() - t) / 5, (time.process_time() - c) / 5
    five_s = sum(x.size for x in clips[:5]) / 16_000
    audio_s = sum(c.size for c in clips) / 16_000
    n_tokens = sum(len(c) for c in codes)
    lengths = np.array([c.size / 16_000 for c in clips])
    return {"clips": len(clips), "audio_s": round(audio_s, 1), "clip_s_median": round(float(np.median(lengths)), 2),
            "tokens": n_tokens, "load_s": round(load_s, 2), "decode_resample_s": round(decode_s, 2),
            "encode_s": round(encode_s, 2), "assign_s": round(assign_s, 3),
            "decode_resample_cpu_s": round(decode_cpu, 2), "encode_cpu_s": round(encode_cpu, 2), "assign_cpu_s": round(assign_cpu, 3),
            "x_real_time": round(audio_s / (decode_s + encode_s + assign_s), 1),
            "x_real_time_encode_only": round(audio_s / encode_s, 1),
            "audio_per_cpu_s": round(audio_s / (decode_cpu + encode_cpu + assign_cpu), 1), "load": os.getloadavg()[0],
            "window_s": round(window_s, 3), "window_cpu_s": round(window_cpu, 3),
            "x_real_time_padded_window": round(five_s / 5 / window_s, 1), "x_real_time_full_window": round(30 / window_s, 1)}


def job(corpus: Path, codebook: str, workers: int) -> dict:
    from audiorole_ray.tokens.job import TokenizeConfig, run

    out = corpus / "tokens" / "whisper-units"
    for sub in ("shards", "_state/tokenized"):
        shutil.rmtree(out / sub, ignore_errors=True)
    s = run(TokenizeConfig(corpus=str(corpus), codebook=codebook, workers=workers))
    assert s["shards_resumed"] == 0 and s["errors"] == 0, s
    return {"workers": workers, "audio_s": s["worker_audio_s"], "pass_s": s["pass_s"], "x_real_time": s["x_real_time"],
            "busy": round(s["worker_s"] / (workers * s["pass_s"]), 2), "clips": s["tokenized"],
            "worker_cpu_s": s["worker_cpu_s"], "audio_per_cpu_s": round(s["worker_audio_s"] / s["worker_cpu_s"], 1),
            "load": os.getloadavg()[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="out/corpus", help="a built corpus (default out/corpus, as `make run` builds it)")
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="job runs (none: in-process figures only)")
    p.add_argument("--codebook-size", type=int, default=256)
    p.add_argument("--fit-hours", type=float, default=0.1, help="training audio the codebook is fitted on (not timed in the job figures)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from audiorole_ray.tokens.job import TokenizeConfig, prepare_codebook, clip_table
    from audiorole_ray.pipeline.state import MarkerStore

    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench-tokenize-"))
    try:
        corpus = make_corpus(args.corpus, args.repeat, tmp)
        clips = clip_table(str(corpus))
        config = TokenizeConfig(corpus=str(corpus), codebook_size=args.codebook_size, fit_hours=args.fit_hours, workers=1)
        t = time.perf_counter()
        codebook, fit = prepare_codebook(config, clips, MarkerStore(str(corpus / "tokens" / "whisper-units" / "_state")), local=True)
        fit["total_s"] = round(time.perf_counter() - t, 1)
        results = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
                   "corpus": args.corpus, "repeat": args.repeat, "clips": len(clips),
                   "audio_s": round(float(clips.duration.sum()), 1), "codebook_fit": fit,
                   "load_start": load0, "in_process": in_process(corpus, codebook)}
        print(f"load average at start {results['load_start']:.1f} on {os.cpu_count()} CPUs")
        print(f"corpus: {args.corpus} x {args.repeat} = {len(clips)} clips, {results['audio_s']} s of audio")
        print(f"codebook ({args.codebook_size} codes) fitted in-process on {fit['frames']} frames of "
              f"{fit['clips']} training clips in {fit['total_s']} s")
        ip = results["in_process"]
        print(f"whisper-units, one process, 1 thread, {ip['audio_s']} s ({ip['clips']} clips, median {ip['clip_s_median']} s), "
              f"model load {ip['load_s']} s:")
        for part in ("decode_resample", "encode", "assign"):
            wall, cpu = ip[part + "_s"], ip[part + "_cpu_s"]
            print(f"  {part:16} wall {wall:7.2f} s (RTF {wall / ip['audio_s']:.4f})  CPU {cpu:7.2f} s (RTF {cpu / ip['audio_s']:.4f})")
        print(f"  total: {ip['x_real_time']}x real time (encoder alone {ip['x_real_time_encode_only']}x); "
              f"{ip['audio_per_cpu_s']} s of audio per CPU-second; load average {ip['load']:.1f}")
        print(f"  Whisper's 30 s window instead: {ip['window_s']} s wall ({ip['window_cpu_s']} s CPU) per window; one clip per "
              f"window {ip['x_real_time_padded_window']}x real time, 30 s of packed speech per window at most "
              f"{ip['x_real_time_full_window']}x (encoder only)")

        results["job"] = []
        if args.workers:
            import ray

            ray.init(num_cpus=2, logging_level="WARNING", log_to_driver=False)
            try:
                print("tokenize job on Ray (ray.init excluded, actor start-up included):")
                for w in args.workers:
                    r = job(corpus, codebook, w)
                    results["job"].append(r)
                    print(f"  workers={w}: {r['audio_s']} s audio in {r['pass_s']} s = {r['x_real_time']}x real time, "
                          f"actors busy {r['busy']:.0%} of the time; {r['audio_per_cpu_s']} s of audio per worker "
                          f"CPU-second; load average {r['load']:.1f}")
            finally:
                ray.shutdown()
        if len(results["job"]) == 2:
            print(f"  speed-up {results['job'][1]['workers']} vs {results['job'][0]['workers']} workers: "
                  f"{results['job'][1]['x_real_time'] / results['job'][0]['x_real_time']:.2f}x")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
