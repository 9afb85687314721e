#!/usr/bin/env python
"""Train one character's flow-matching decoder from scratch (speech tokens -> mel), on Ray Train + ColossalAI.

    python jobs/train_decoder.py --corpus OUT --target sitcom_spk00 --output models/sitcom
    python jobs/train_decoder.py --corpus s3://b/corpus --target SPK --output s3://b/models/SPK \\
        --preset glm4voice --workers 8 --gpus-per-worker 1

OUT is a corpus from jobs/build_corpus.py with speech tokens from jobs/tokenize_corpus.py. Every
clip the character speaks is one (tokens, mel) pair; its test-split clips (or a seeded held-out
share) give the per-epoch val_loss. Writes MODEL/decoder/ (flow.pt, decoder.json,
metrics.jsonl, loss.png), MODEL/speech_tokenizer/ (the model's copy of the speech tokenizer) and
adds the decoder to MODEL/arp_model.json. Re-running the same command continues from the run's
latest checkpoint; a re-run with other settings is refused unless --restart. A folder holding
another character's model, or an LM on other speech codes, is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray.cli import TRAIN_ENV, add_common_args, apply_common_args, check_writable_outputs, init_ray, run_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus folder or s3:// URI (with tokens/<tokenizer>/)")
    p.add_argument("--target", required=True, help="the character: a series speaker id such as sitcom_spk00")
    p.add_argument("--output", required=True, help="the ARP-Model folder (local or s3://); the decoder goes to OUTPUT/decoder/")
    p.add_argument("--preset", choices=("tiny", "glm4voice"), default="tiny",
                   help="tiny (trains in minutes on a CPU) or glm4voice (GLM-4-Voice-Decoder's flow, ~111M; a flow.pt for its AudioDecoder)")
    p.add_argument("--tokenizer", help="which speech tokens of the corpus (default: the only one)")
    p.add_argument("--epochs", type=int, default=15, help="default 15, as the paper")
    p.add_argument("--plugin", choices=("ddp", "gemini", "zero2"), default="ddp", help="ColossalAI plugin (default ddp)")
    p.add_argument("--batch-size", type=int, default=None, help="clips per worker per step (default: the preset's, tiny 2, glm4voice 4)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the preset's; glm4voice 1e-3 as upstream)")
    p.add_argument("--warmup-steps", type=int, default=None, help="default: the preset's (glm4voice 2500)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share when the character has no test clips")
    p.add_argument("--checkpoint-every", type=int, default=None, help="also checkpoint every N steps (default: each epoch)")
    p.add_argument("--storage", default="", help="Ray Train storage for checkpoints (local or s3://; default OUTPUT/decoder/_ray)")
    p.add_argument("--max-failures", type=int, default=3)
    p.add_argument("--data-cpus", type=float, default=0.0,
                   help="CPUs each mel-computing Ray Data task reserves (default 0: runs beside workers holding every CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true",
                   help="discard the run's checkpoints (a re-run with other settings is refused without it) and train afresh")
    add_common_args(p)  # --workers (Ray Train workers), --cpus/--gpus-per-worker, --address, storage, -v
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_common_args(args)
    from audiorole_ray.decoder.job import prepare, start, train
    from audiorole_ray.io.storage import check_reachable
    from audiorole_ray.pipeline.lock import OutputLock

    # every check reads only: a refused run leaves the model folder and the storage as they were
    check_reachable({"--corpus": args.corpus, "--output": args.output, "--storage": args.storage})
    prepared = prepare(args.corpus, args.target, args.output, preset=args.preset, tokenizer=args.tokenizer,
                       val_fraction=args.val_fraction, seed=args.seed, restart=args.restart, epochs=args.epochs,
                       workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
                       plugin=args.plugin, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                       checkpoint_every=args.checkpoint_every, storage=args.storage, max_failures=args.max_failures)
    check_writable_outputs(args)
    with OutputLock(args.output, name="decoder.lock"):  # one decoder run per model folder
        c = prepared.counts
        print(f"{args.target}: {c['train_clips']} training clips ({c['train_seconds']} s), {c['val_clips']} validation clips "
              f"({c['val_seconds']} s, {c['validation']}); {c['missing_tokens']} clips without speech tokens left out", flush=True)
        for w in prepared.warnings:
            print(f"warning: {w}", flush=True)
        env.update(TRAIN_ENV)
        init_ray(args, env, cpus=args.cpus_per_worker, gpus=args.gpus_per_worker)  # refuses a local Ray without room
        import ray

        try:
            start(prepared)  # --restart's removal, the run's settings
            summary = train(prepared, env=env, data_cpus=args.data_cpus)
        finally:
            ray.shutdown()
    print(json.dumps({k: summary[k] for k in ("output", "steps", "epochs", "first_val_loss", "last_val_loss",
                                                "resumed_from_step", "resumed_at", "wall_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
