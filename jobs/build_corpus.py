#!/usr/bin/env python
"""Build the AudioRole corpus from TV-series episode audio.

    python jobs/build_corpus.py --input IN --output OUT
    ray job submit --working-dir . -- python jobs/build_corpus.py --input s3://bucket/series --output s3://bucket/corpus

IN holds <series>/<episode>.<ext> (a local folder or s3://); the default is the bundled sample
series. Re-running the same command resumes: finished episodes are skipped.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray.sample import SAMPLE_SERIES  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=str(SAMPLE_SERIES), help="folder or s3:// URI of <series>/<episode>.<ext> (default: bundled sample)")
    p.add_argument("--output", default="out/corpus", help="output folder or s3:// URI (default: out/corpus)")
    p.add_argument("--backend", choices=("embedded", "pyannote"), default="embedded", help="diarization backend")
    p.add_argument("--pyannote-model", help="local folder of the pyannote speaker-diarization-3.1 pipeline (config.yaml)")
    p.add_argument("--cluster-threshold", type=float, help="embedded backend: cosine distance for clustering turns within an episode")
    p.add_argument("--link-threshold", type=float, default=None, help="cosine distance for linking speakers across episodes")
    p.add_argument("--workers", type=int, default=2, help="diarization actors (default 2)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="e.g. 1 on GPU nodes, 0.5 to pack two actors per GPU")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from audiorole_ray.io.storage import InputError, list_episodes
    from audiorole_ray.link import LinkConfig
    from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig, run

    options = {}
    if args.backend == "embedded" and args.cluster_threshold is not None:
        options["cluster_threshold"] = args.cluster_threshold
    if args.backend == "pyannote":
        if not args.pyannote_model:
            print("error: --backend pyannote needs --pyannote-model DIR (a local pipeline folder)", file=sys.stderr)
            return 2
        options["model_dir"] = args.pyannote_model
    config = DiarizeJobConfig(
        input=args.input,
        output=args.output,
        backend=args.backend,
        backend_options=options,
        link_threshold=args.link_threshold if args.link_threshold is not None else LinkConfig.threshold,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
    )
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        list_episodes(args.input)  # fail fast, before starting Ray, on a wrong --input
        LinkConfig(config.link_threshold)
        if args.backend == "embedded":
            from audiorole_ray.diarize.embedded import EmbeddedConfig

            EmbeddedConfig(**options)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import ray

    # Ship the package to workers when connecting to a cluster from a checkout (ray job submit
    # --working-dir does this already; a direct ray.init(address=...) does not).
    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=args.verbose)
    try:
        summary = run(config)
    finally:
        ray.shutdown()
    print(format_summary(summary))
    return 1 if summary["episodes_done"] == 0 else 0


def format_summary(s: dict) -> str:
    lines = [
        "",
        f"corpus part 1 written to {s['output']}",
        f"  series {s['series']}, episodes {s['episodes_done']}/{s['episodes']} done "
        f"({s['episodes_skipped_resume']} resumed from an earlier run), errors {s['errors']}",
        f"  audio {s['audio_h'] * 60:.1f} min, speech {s['speech_h'] * 60:.1f} min, "
        f"series speakers {s['speakers']}, turns {s['turns']}",
        f"  main characters: {json.dumps(s['main_characters'])}",
        f"  wall {s['wall_s']:.1f} s, {s['x_real_time']:.1f}x real time",
    ]
    if s["errors"]:
        lines.append(f"  failed inputs are listed in {s['output'].rstrip('/')}/errors.parquet")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
