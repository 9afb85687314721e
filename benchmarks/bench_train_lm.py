#!/usr/bin/env python
"""LM fine-tune throughput of the shared trainer: jobs/train_lm.py with the tiny GLM on a corpus
with speech tokens, 1 and 2 Ray Train workers (ColossalAI DDP on gloo), printing tokens/s, wall
time and the loss fall.

    python benchmarks/bench_train_lm.py --corpus out/corpus --target sitcom_spk00 [--epochs 2]

Tokens/s counts every non-padding token all workers process per step (the figure in
metrics.jsonl); the median over steps leaves out the first step of each epoch (data start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(corpus: str, target: str, workers: int, epochs: int, out: Path) -> dict:
    cmd = [sys.executable, str(REPO / "jobs" / "train_lm.py"), "--corpus", corpus, "--target", target, "--model", "tiny",
           "--output", str(out), "--epochs", str(epochs), "--workers", str(workers)]
    t0 = time.time()
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    wall = time.time() - t0
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    rows = [json.loads(line) for line in (out / "lm" / "metrics.jsonl").read_text().splitlines()]
    first_of_epoch = {min(r["step"] for r in rows if r["epoch"] == e) for e in {r["epoch"] for r in rows}}
    rates = [r["tokens_per_s"] for r in rows if r["step"] not in first_of_epoch]
    means = {}
    for r in rows:
        means.setdefault(r["epoch"], []).append(r["loss"])
    return {"workers": workers, "steps": len(rows), "wall_s": round(wall, 1),
            "train_s": round(json.loads(done.stdout.strip().splitlines()[-1])["wall_s"], 1),
            "tokens_per_s_median": round(statistics.median(rates), 1) if rates else None,
            "epoch_loss": [round(sum(v) / len(v), 3) for _, v in sorted(means.items())]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; tiny GLM (GlmForCausalLM, 2 layers, width 64), ColossalAI DDP on gloo")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            print(json.dumps(run(args.corpus, args.target, n, args.epochs, Path(tmp) / f"w{n}")), flush=True)


if __name__ == "__main__":
    main()
