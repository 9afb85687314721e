#!/usr/bin/env python
"""ARP-Eval throughput with the offline defaults: items per second per system, and where the time
goes (answer, Distill-MOS, CAM++ AP, style_sim, Whisper transcript + intelligibility).

    python benchmarks/bench_eval.py                   # the truth corpus of the bundled sample
    python benchmarks/bench_eval.py --corpus OUT      # any corpus
    python benchmarks/bench_eval.py --ray --workers 2 # also the Ray Data pass end to end

One process, one thread (OMP_NUM_THREADS=1), models loaded once before timing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="a corpus (default: a truth corpus of the bundled sample, written to a temp dir)")
    p.add_argument("--systems", default="reference,copy-input")
    p.add_argument("--ray", action="store_true", help="also time jobs/evaluate.py's Ray pass")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    from audiorole_ray import registry
    from audiorole_ray.eval.items import exchange_items
    from audiorole_ray.eval.references import build_reference
    from audiorole_ray.eval.stage import EvalSettings, ItemScorer

    tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    corpus = args.corpus
    if corpus is None:
        from audiorole_ray.sample.truth_corpus import write_truth_corpus

        corpus = str(write_truth_corpus(tmp / "corpus", series=("sitcom", "heldout")))
    items = exchange_items(corpus)
    chars = sorted({it["character"] for it in items})
    out = str(tmp / "eval")
    t = time.perf_counter()
    emb, style = registry.create("speaker_embedding", "campplus"), registry.create("cp_standin", "style")
    for c in chars:
        build_reference(corpus, out, c, emb, style)
    t_ref = time.perf_counter() - t
    systems = [{"name": s, "kind": s, "arg": ""} for s in args.systems.split(",")]
    scorer = ItemScorer(EvalSettings(corpus=corpus, output=out, systems=systems))
    t = time.perf_counter()
    scorer.setup()
    t_setup = time.perf_counter() - t
    results = {}
    for s in systems:
        parts, audio_s = defaultdict(float), 0.0
        t = time.perf_counter()
        for it in items:
            row = scorer.process_item({**it, "system": s["name"]})
            audio_s += row["answer_s"]
            for k, v in json.loads(row["timings"]).items():
                parts[k] += v
        wall = time.perf_counter() - t
        results[s["name"]] = {"items": len(items), "wall_s": round(wall, 2), "items_per_s": round(len(items) / wall, 3),
                              "answer_audio_s": round(audio_s, 1), "rtf": round(wall / audio_s, 3),
                              "per_item_s": {k: round(v / len(items), 3) for k, v in parts.items()}}
    print(f"corpus {corpus}: {len(items)} test exchanges, characters {chars}")
    print(f"references {t_ref:.1f} s, model set-up {t_setup:.1f} s (once per worker)")
    print("| system | items | wall s | items/s | RTF | per item: " + ", ".join(next(iter(results.values()))["per_item_s"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['items']} | {r['wall_s']} | {r['items_per_s']} | {r['rtf']} | "
              + ", ".join(f"{v:.3f}" for v in r["per_item_s"].values()) + " |")
    if args.ray:
        import subprocess

        cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "jobs" / "evaluate.py"), "--corpus", corpus,
               "--output", str(tmp / "ray-eval"), "--workers", str(args.workers)]
        for s in systems:
            cmd += ["--system", s["name"]]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return 1
        rows = len(items) * len(systems)
        print(f"Ray pass, {args.workers} workers: {rows} rows in {wall:.1f} s wall including Ray start and references "
              f"= {rows / wall:.3f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
