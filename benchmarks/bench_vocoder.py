"""Resynthesis through each vocoder on the bundled sample's real voices: CAM++ cosine between
original and resynthesised speech (does the vocoder keep the speaker?), log-mel L1, and the
real-time factor. Prints one row per voice and vocoder, and the mean per vocoder.

    python benchmarks/bench_vocoder.py [--vocoders hifigan,griffinlim] [--seconds 6]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorole_ray import registry  # noqa: E402
from audiorole_ray.io.audio import load_segments  # noqa: E402
from audiorole_ray.sample import SAMPLE_SERIES  # noqa: E402
from audiorole_ray.vocoder.check import resynthesis_scores  # noqa: E402

REAL = {"allison", "diane", "sheila", "june", "carlo", "ivrvoice"}  # audiorole_ray/sample/README.md
RATE = 22050


def real_segments(min_s: float = 3.0, per_voice: int = 2):
    """(voice, episode file, start, end) of the longest true turns of each real voice."""
    truth = SAMPLE_SERIES.parent / "truth"
    found = defaultdict(list)
    for rttm in sorted(truth.glob("*/*.rttm")):
        media = [p for p in (SAMPLE_SERIES / rttm.parent.name).glob(rttm.stem + ".*")]
        for line in rttm.read_text().splitlines():
            f = line.split()
            voice, start, dur = f[7], float(f[3]), float(f[4])
            if voice in REAL and dur >= min_s and media:
                found[voice].append((dur, str(media[0]), start))
    for voice, rows in sorted(found.items()):
        for dur, path, start in sorted(rows, reverse=True)[:per_voice]:
            yield voice, path, start, start + dur


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocoders", default="hifigan,griffinlim")
    ap.add_argument("--seconds", type=float, default=6.0, help="longest stretch of each turn to use")
    args = ap.parse_args()
    vocoders = {name: registry.create("vocoder", name) for name in args.vocoders.split(",")}
    scores = defaultdict(list)
    print(f"{'voice':10} {'clip':28} {'vocoder':11} {'cosine':>7} {'mel L1':>7} {'RTF':>5}")
    for voice, path, start, end in real_segments():
        end = min(end, start + args.seconds)
        audio = load_segments(path, [(start, end)], RATE)[0]
        for name, vocoder in vocoders.items():
            t0 = time.perf_counter()
            s = resynthesis_scores(vocoder, audio, RATE)
            rtf = (time.perf_counter() - t0) / s["seconds"]
            scores[name].append(s["cosine"])
            clip = f"{Path(path).parent.name}/{Path(path).name} {start:.1f}-{end:.1f}"
            print(f"{voice:10} {clip:28} {name:11} {s['cosine']:7.3f} {s['mel_l1']:7.3f} {rtf:5.2f}", flush=True)
    for name, values in scores.items():
        print(f"mean CAM++ cosine, {name}: {np.mean(values):.3f} (min {np.min(values):.3f}, {len(values)} clips)")


if __name__ == "__main__":
    main()
