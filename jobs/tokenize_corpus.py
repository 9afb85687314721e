#!/usr/bin/env python
"""Turn every clip of a built corpus into discrete speech tokens at 12.5 tokens per second.

    python jobs/tokenize_corpus.py --corpus OUT
    python jobs/tokenize_corpus.py --corpus OUT --tokenizer glm4voice \\
        --tokenizer-model /models/glm-4-voice-tokenizer --tokenizer-repo /src/GLM-4-Voice --gpus-per-worker 1

Writes OUT/tokens/<tokenizer>/: shards/*.parquet (one row per clip: audio_key, tokens,
frame_rate, n_tokens), errors.parquet, tokenizer.json (what the LM trainer reads: vocab_size,
frame_rate, codebook hash) and, for whisper-units, codebook.npz. Re-running resumes per shard.

whisper-units (default, offline) is a k-means unit tokenizer over Whisper tiny.en encoder
frames, for exercising and sizing the pipeline; its codes are not GLM-4-Voice's. Its codebook
is fitted on the corpus's training split on the first run (or with --fit-codebook).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray import registry  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="a corpus built by jobs/build_corpus.py (folder or s3:// URI)")
    p.add_argument("--tokenizer", default="whisper-units", choices=registry.names("tokenizer"),
                   help=f"speech tokenizer: {registry.help_text('tokenizer')}")
    p.add_argument("--tokenizer-model", help="local weights: a glm-4-voice-tokenizer folder (glm4voice), or a CTranslate2 "
                   "Whisper folder (whisper-units; default: the embedded tiny.en)")
    p.add_argument("--tokenizer-repo", help="glm4voice: a local checkout of THUDM/GLM-4-Voice (its speech_tokenizer/ code)")
    p.add_argument("--batch-size", type=int, default=32, help="glm4voice: 30 s pieces per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=2, help="tokenizer actors (default 2)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="e.g. 1 (or 0.5 to pack two) on GPU nodes")
    g = p.add_argument_group("whisper-units codebook")
    g.add_argument("--fit-codebook", action="store_true", help="(re)fit the codebook on the training split; "
                   "done anyway when the corpus has none. A new codebook redoes every shard's tokens")
    g.add_argument("--codebook", help="use this codebook.npz (e.g. one fitted on another corpus) instead")
    g.add_argument("--codebook-size", type=int, default=256, help="number of speech codes (default 256)")
    g.add_argument("--fit-hours", type=float, default=1.0, help="training audio to fit on, at most (default 1 h)")
    g.add_argument("--seed", type=int, default=0, help="seed of the codebook fit (default 0)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def make_config(args):
    from audiorole_ray.tokens.job import TokenizeConfig

    return TokenizeConfig(
        corpus=args.corpus, tokenizer=args.tokenizer, model=args.tokenizer_model, repo=args.tokenizer_repo,
        batch_size=args.batch_size, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, codebook=args.codebook, fit_codebook=args.fit_codebook,
        codebook_size=args.codebook_size, seed=args.seed, fit_hours=args.fit_hours,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from audiorole_ray.errors import AudioRoleError
    from audiorole_ray.tokens.job import check, run

    try:
        config = make_config(args)
        clips = check(config)  # a wrong corpus or model folder stops here, before Ray starts
    except AudioRoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import ray

    ray.init(address=args.address, logging_level=logging.WARNING, log_to_driver=args.verbose)
    try:
        summary = run(config, clips)
    except AudioRoleError as exc:  # e.g. too little training audio for the codebook size
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print(format_summary(summary))
    return 1 if summary["tokenized"] == 0 else 0


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
    lines += [
        f"  clips {s['tokenized']}/{s['clips']} tokenized, errors {s['errors']} (errors.parquet)",
        f"  shards {s['shards']} ({s['shards_resumed']} resumed from an earlier run)",
    ]
    if s.get("x_real_time"):
        lines.append(f"  tokenized {s['pass_audio_s']} s of audio in {s['pass_s']} s: {s['x_real_time']}x real time")
    lines.append(f"  wall {s['wall_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
