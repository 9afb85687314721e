#!/usr/bin/env python
"""Turn every clip of a built corpus into discrete speech tokens at 12.5 tokens per second.

    python jobs/tokenize_corpus.py --corpus OUT
    python jobs/tokenize_corpus.py --corpus OUT --tokenizer glm4voice \\
        --tokenizer-model /models/glm-4-voice-tokenizer --glm4voice-repo /src/GLM-4-Voice --gpus-per-worker 1

Writes OUT/tokens/<tokenizer>/: shards/<series>/<stem>.parquet (one row per clip: audio_key,
tokens, frame_rate, n_tokens), errors.parquet, tokenizer.json (what the LM trainer reads:
vocab_size, frame_rate, codebook hash) and, for whisper-units, codebook.npz. Re-running the
same command resumes per shard.

A missing or damaged shard fails only the clips it cannot give (a truncated tar: from the cut
on), each listed in errors.parquet; those clips keep the tokens an earlier run wrote for them,
and the shard is redone by the next run. Exit code 0 when every clip was tokenized, 1 when any
failed (the rest is written; unlike raw episodes, a clip of a built corpus that cannot be read
means the corpus is damaged), 2 when the job refused to start.

whisper-units (the default; offline) is a k-means unit tokenizer over Whisper tiny.en encoder
frames, for exercising and sizing the pipeline: its codes are not GLM-4-Voice's. Its codebook is
fitted on the corpus's training split on the first run, or again with --fit-codebook.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray import registry  # noqa: E402
from audiorole_ray.cli import add_common_args, apply_common_args, init_ray, run_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a corpus built by jobs/build_corpus.py (folder or s3:// URI)")
    g = p.add_argument_group("tokenizer (local weights only; nothing is downloaded)")
    g.add_argument("--tokenizer", default="whisper-units", choices=registry.names("tokenizer"), help=registry.help_text("tokenizer"))
    g.add_argument("--tokenizer-model", help="local weights: the glm-4-voice-tokenizer folder (glm4voice), or a CTranslate2 "
                   "Whisper folder (whisper-units; default: the embedded tiny.en)")
    g.add_argument("--glm4voice-repo", default=os.environ.get("GLM4VOICE_REPO"),
                   help="glm4voice: a local checkout of THUDM/GLM-4-Voice, for its speech_tokenizer/ code (default: $GLM4VOICE_REPO)")
    g.add_argument("--batch-size", type=int, default=32, help="glm4voice: 30 s pieces per forward pass (default 32)")
    g = p.add_argument_group("whisper-units codebook")
    g.add_argument("--fit-codebook", action="store_true", help="(re)fit the codebook on the training split (done anyway "
                   "when the corpus has none); a new codebook redoes every shard's tokens")
    g.add_argument("--codebook", help="tokenize with this codebook.npz (e.g. one fitted on another corpus)")
    g.add_argument("--codebook-size", type=int, default=256, help="number of speech codes (default 256)")
    g.add_argument("--fit-hours", type=float, default=1.0, help="training audio to fit on, at most (default 1 h)")
    g.add_argument("--seed", type=int, default=0, help="seed of the codebook fit (default 0)")
    add_common_args(p)
    return p.parse_args(argv)


def make_config(args):
    from audiorole_ray.tokens.job import TokenizeConfig

    return TokenizeConfig(
        corpus=args.corpus, tokenizer=args.tokenizer, model=args.tokenizer_model, repo=args.glm4voice_repo,
        batch_size=args.batch_size, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, codebook=args.codebook, fit_codebook=args.fit_codebook,
        codebook_size=args.codebook_size, seed=args.seed, fit_hours=args.fit_hours,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_common_args(args)

    from audiorole_ray.io.storage import check_reachable, check_writable
    from audiorole_ray.pipeline.lock import OutputLock
    from audiorole_ray.tokens.job import check, run

    # everything that can be checked is checked before Ray starts
    check_reachable({"--corpus": args.corpus})
    config = make_config(args)
    clips = check(config)
    check_writable(config.output)
    with OutputLock(config.output):
        init_ray(args, env, cpus=config.cpus_per_worker, gpus=config.gpus_per_worker)
        import ray

        try:
            summary = run(config, clips)
        finally:
            ray.shutdown()
    print(format_summary(summary))
    # failed clips are listed and the rest is written, but a damaged corpus is not a success
    return 1 if summary["errors"] else 0


def format_summary(s: dict) -> str:
    fit = s.get("codebook_fit") or {}
    lines = [
        "",
        f"tokens written to {s['output']}",
        f"  tokenizer {s['tokenizer']}: {s['vocab_size']} codes at {s['frame_rate']} tokens/s"
        + (f", codebook {s['codebook_hash'][:12]}" if s.get("codebook_hash") else ""),
    ]
    if fit.get("fitted"):
        lines.append(f"  codebook fitted on {fit['frames']} frames of {fit['clips']} training clips in {fit['wall_s']} s")
    kept = f", {s['kept']} of them keep the tokens of an earlier run" if s["kept"] else ""
    lines += [
        f"  clips {s['tokenized']}/{s['clips']} tokenized, {s['errors']} failed{kept}"
        + (f" (listed in {s['output'].rstrip('/')}/errors.parquet)" if s["errors"] else ""),
        f"  shards {s['shards']}: {s['shards_written']} written, {s['shards_resumed']} resumed from an earlier run, "
        f"{s['shards_failed']} with failed clips (redone by the next run)",
    ]
    if s.get("x_real_time"):
        lines.append(f"  tokenize pass: {s['worker_audio_s']} s of audio in {s['pass_s']} s, {s['x_real_time']}x real time")
    lines.append(f"  wall {s['wall_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_main(main))
