#!/usr/bin/env python
"""ARP-Eval: score systems' spoken answers on the test split of a corpus.

    python jobs/evaluate.py --corpus OUT --system reference --system copy-input --output EVAL
    python jobs/evaluate.py --corpus OUT --system mine=responses:/data/answers \\
        --system gpt4o=openai:gpt-4o-audio-preview --judge-url https://api.openai.com/v1 --judge-model gpt-4o \\
        --audio-judge-url https://api.openai.com/v1 --audio-judge-model gpt-4o-audio-preview --output EVAL

One Ray Data pass over every (A, B) exchange of the test split's dialogues of every target
character, per system. Writes EVAL/items.parquet (one row per system and exchange),
EVAL/report.md + report.json (the paper's Table 3 layout) and EVAL/report.png.
An arp:MODEL system answers only its model's character's turns (add ,all-characters=true to the
--system to ask it for the others). openai:MODEL systems send to --api-url if given, else
OPENAI_BASE_URL, else the openai client's default; the job prints each endpoint and checks each
with one small request before any work. API keys are read from the environment (OPENAI_API_KEY
unless --api-key-env / --judge-key-env name another variable); they are never printed or written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install


def parse_args(argv=None) -> argparse.Namespace:
    from audiorole_ray import registry
    from audiorole_ray.cli import add_common_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a corpus built by jobs/build_corpus.py (folder or s3://)")
    p.add_argument("--output", required=True, help="where items.parquet and the report go")
    p.add_argument("--system", action="append", default=[], metavar="NAME=SPEC[,key=value]", required=True,
                   help="a system to score (repeatable): reference, copy-input, responses:DIR, openai:MODEL, arp:MODEL; "
                        "arp: answers only its own character's turns unless given ,all-characters=true")
    p.add_argument("--character", action="append", default=[], help="only these target characters (default: all)")
    p.add_argument("--language", action="append", default=[], metavar="SERIES=LANG",
                   help="language of a series' answers for the transcripts (default en; tiny.en needs en)")
    p.add_argument("--name", action="append", default=[], metavar="ID=NAME",
                   help="display name of a series or character id in the prompts (e.g. sitcom_spk00=Allison)")
    g = p.add_argument_group("metric backends")
    g.add_argument("--aq", default="distillmos", choices=registry.names("aq"), help=f"AQ backend: {registry.help_text('aq')}")
    g.add_argument("--aq-model", help="local weights of the AQ backend (audiobox: checkpoint.pt or a folder)")
    g.add_argument("--ap", default="campplus", choices=registry.names("speaker_embedding"),
                   help=f"AP speaker embedding: {registry.help_text('speaker_embedding')}")
    g.add_argument("--ap-model", help="local weights of the AP backend (wespeaker: folder or pytorch_model.bin)")
    g.add_argument("--asr-model", help="CTranslate2 Whisper checkpoint folder for CQ transcripts (default: embedded tiny.en)")
    g.add_argument("--no-style", action="store_true", help="do not compute the style_sim stand-in for CP")
    g.add_argument("--reference-clips", type=int, default=64, help="training-split answers per character reference (default 64)")
    g = p.add_argument_group("judges (any OpenAI-compatible endpoint)")
    g.add_argument("--judge-url", help="CQ text judge endpoint, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", help="CQ text judge model name (paper: gpt-4o)")
    g.add_argument("--judge-key-env", help="environment variable holding the judges' API key (default OPENAI_API_KEY; "
                   "one named here must be set)")
    g.add_argument("--audio-judge-url", help="CP audio judge endpoint (must accept input_audio)")
    g.add_argument("--audio-judge-model", help="CP audio judge model (paper: gpt-4o-audio-preview)")
    g.add_argument("--judge-concurrency", type=int, default=4, help="requests in flight per judge and worker (default 4)")
    g.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per judge request (default 120)")
    g = p.add_argument_group("openai:MODEL systems")
    g.add_argument("--api-url", help="endpoint of openai:MODEL systems (default: OPENAI_BASE_URL, else the openai client's "
                   "default, https://api.openai.com/v1)")
    g.add_argument("--api-key-env", help="environment variable holding its API key (default OPENAI_API_KEY; one named here "
                   "must be set)")
    g.add_argument("--voice", default="alloy", help="voice of openai:MODEL answers (paper: the default, alloy)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto: cuda when workers reserve a GPU (default auto)")
    p.add_argument("--limit", type=int, help="score only the first N exchanges (a quick look)")
    p.add_argument("--local", action="store_true", help="score in this process, without Ray (small runs, debugging)")
    add_common_args(p)
    return p.parse_args(argv)


def make_settings(args):
    from audiorole_ray.errors import ConfigError
    from audiorole_ray.eval.judge import key_env, resolve_api_url
    from audiorole_ray.eval.stage import EvalSettings
    from audiorole_ray.eval.systems import check_names, parse_system
    from audiorole_ray.corpus.reader import read_dialogues
    from audiorole_ray.pipeline.stage import resolve_device

    read_dialogues(args.corpus, columns=["split"])  # InputError when it is not a corpus
    systems = [parse_system(s) for s in args.system]
    check_names(systems)
    def pairs(values, flag):
        out = {}
        for pair in values:
            k, sep, v = pair.partition("=")
            if not sep or not k or not v:
                raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}")
            out[k] = v
        return out

    names, languages = pairs(args.name, "--name"), pairs(args.language, "--language")

    def judge(url, model, flag):
        if bool(url) != bool(model):
            raise ConfigError(f"{flag}: give both the URL and the model, or neither")
        if not url:
            return None
        return {"url": url, "model": model, "api_key_env": key_env(args.judge_key_env, "--judge-key-env"),
                "concurrency": args.judge_concurrency, "timeout_s": args.judge_timeout}

    api = {"voice": args.voice, "concurrency": args.judge_concurrency, "device": resolve_device(args.device, args.gpus_per_worker)}
    if any(s.kind == "openai" for s in systems):  # resolved here, in the driver: workers get the same endpoint
        url, url_from = resolve_api_url(args.api_url)
        api.update(url=url, url_from=url_from, key_env=key_env(args.api_key_env, "--api-key-env"))

    return EvalSettings(
        corpus=args.corpus, output=args.output,
        systems=[{"name": s.name, "kind": s.kind, "arg": s.arg, **({"options": s.options} if s.options else {})} for s in systems],
        aq=args.aq, aq_model=args.aq_model, ap=args.ap, ap_model=args.ap_model, asr_model=args.asr_model,
        cp_standin=not args.no_style,
        text_judge=judge(args.judge_url, args.judge_model, "--judge-url/--judge-model"),
        audio_judge=judge(args.audio_judge_url, args.audio_judge_model, "--audio-judge-url/--audio-judge-model"),
        names=names, languages=languages, api=api,
        device=resolve_device(args.device, args.gpus_per_worker),
    )


def format_summary(summary: dict) -> str:
    """The run in a few lines; every count is one of items.parquet's, every file one written."""
    from audiorole_ray.eval.report import markdown

    run = summary
    scope = f", {run['out_of_scope']} out of scope (not asked)" if run["out_of_scope"] else ""
    failed = {m: n for m, n in run["metric_errors"].items() if n}
    per_metric = ", ".join(f"{m} {n}" for m, n in failed.items()) or "none"
    lines = [markdown(summary["report"]).rstrip(), "",
             f"items {run['items']} exchanges x {len(run['systems'])} systems = {run['rows']} rows: {run['asked']} asked{scope}; "
             f"errors {run['errors']} (no answer)",
             f"metric errors (of {run['answered']} answered rows): {per_metric}",
             f"resumed {run['resumed']} rows from an earlier run; wall: references {run['wall_s']['references']} s, "
             f"pass {run['wall_s']['pass']} s, total {run['wall_s']['total']} s",
             f"written: {run['output']}/" + ", ".join(run["files"])]
    if run.get("figure_error"):
        lines.append(f"no report.png: {run['figure_error']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from audiorole_ray.cli import apply_common_args, init_ray
    from audiorole_ray.eval.job import endpoint_lines, plan, preflight, run
    from audiorole_ray.io.storage import check_writable
    from audiorole_ray.pipeline.lock import OutputLock

    env = apply_common_args(args)
    from audiorole_ray.io.storage import check_reachable

    check_reachable({"--corpus": args.corpus, "--output": args.output})
    # everything that can be checked is checked before Ray starts and before the output is touched:
    # a run refused here leaves no trace
    settings = make_settings(args)
    planned = plan(settings, args.character or None, args.limit)
    for line in endpoint_lines(settings):
        print(line, flush=True)
    preflight(settings)
    if not args.local:  # its check that the cluster can hold a worker comes before the output is touched too
        init_ray(args, env, cpus=args.cpus_per_worker, gpus=args.gpus_per_worker)
    try:
        check_writable(args.output)
        with OutputLock(args.output):
            summary = run(settings, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                          gpus_per_worker=args.gpus_per_worker, max_reference_clips=args.reference_clips,
                          local=args.local, planned=planned)
    finally:
        if not args.local:
            import ray

            ray.shutdown()
    print(format_summary(summary))
    return 0 if summary["answered"] else 1


if __name__ == "__main__":
    from audiorole_ray.cli import run_main

    sys.exit(run_main(main))
