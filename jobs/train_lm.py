#!/usr/bin/env python
"""Fine-tune the ARP-Model's LM (GLM-4-Voice) on one character's dialogues, on Ray Train + ColossalAI.

    python jobs/train_lm.py --corpus OUT --target sitcom_spk00 --model tiny --output models/sitcom
    python jobs/train_lm.py --corpus s3://b/corpus --target SPK --model /models/glm-4-voice-9b \\
        --output s3://b/models/SPK --plugin gemini --workers 8 --gpus-per-worker 1
    python jobs/train_lm.py --plan --model /models/glm-4-voice-9b --plugin gemini --workers 8 --gpus-per-worker 1

OUT is a corpus from jobs/build_corpus.py with speech tokens from jobs/tokenize_corpus.py
(OUT/tokens/<tokenizer>/). Every training dialogue of --target becomes one sample in GLM-4-Voice's
chat format (responses as 13 text / 26 speech token blocks). Writes MODEL/lm/ (Hugging Face model
and tokenizer, preview.jsonl, metrics.jsonl, loss.png), MODEL/speech_tokenizer/ (the model's copy of
the speech tokenizer's description and codebook) and MODEL/arp_model.json. Re-running the same
command continues from the run's latest checkpoint; a re-run with other settings is refused unless
--restart. A folder holding another character's model, or parts on other speech codes, is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from audiorole_ray.cli import TRAIN_ENV, add_common_args, apply_common_args, check_writable_outputs, init_ray, run_main  # noqa: E402
from audiorole_ray.errors import ConfigError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="corpus folder or s3:// URI (with tokens/<tokenizer>/)")
    p.add_argument("--target", help="the character: a series speaker id such as sitcom_spk00")
    p.add_argument("--model", required=True, help="'tiny' (a small random GLM, runs on CPU) or a local glm-4-voice-9b folder")
    p.add_argument("--output", help="the ARP-Model folder (local or s3://); the LM goes to OUTPUT/lm/")
    p.add_argument("--tokenizer", help="which speech tokens of the corpus (default: the only one)")
    p.add_argument("--epochs", type=int, default=20, help="default 20, as the paper")
    p.add_argument("--plugin", choices=("ddp", "gemini", "zero2"), default="ddp",
                   help="ColossalAI plugin: ddp (CPU or GPU), gemini or zero2 (GPU only); default ddp")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model); not with gemini")
    p.add_argument("--max-tokens", type=int, default=2048, help="longest sample; longer dialogues are cut at a turn boundary (default 2048)")
    p.add_argument("--batch-size", type=int, default=1, help="samples per worker per step (default 1)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-5 for a real model, 3e-3 for tiny)")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps (default: each epoch)")
    p.add_argument("--storage", default="", help="Ray Train storage for checkpoints (local or s3://; default OUTPUT/lm/_ray)")
    p.add_argument("--max-failures", type=int, default=3, help="worker failures one run recovers from (default 3)")
    p.add_argument("--preview", type=int, default=3, help="samples written to OUTPUT/lm/preview.jsonl (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true",
                   help="discard the run's checkpoints (a re-run with other settings is refused without it) and train afresh")
    g = p.add_argument_group("memory plan (no training, no weights loaded)")
    g.add_argument("--plan", action="store_true", help="print parameters and per-GPU memory from the model's config.json and exit")
    g.add_argument("--gpu-memory", type=float, default=40.0, help="GB per GPU for --plan (default 40)")
    add_common_args(p)  # --workers (Ray Train workers), --cpus/--gpus-per-worker, --address, storage, -v
    return p.parse_args(argv)


def run_plan(args) -> int:
    from audiorole_ray.lm import plan

    if args.model == "tiny":
        from audiorole_ray.lm.tiny import build_tokenizer, tiny_config

        config = tiny_config(build_tokenizer(16384))
        config.update(model_type="glm")
    else:
        config = plan.load_config(args.model)
    gpus = max(1, round(args.workers * (args.gpus_per_worker or 1)))  # one GPU per worker unless told
    seq = args.max_tokens
    p = plan.plan(config, plugin=args.plugin, gpus=gpus, micro_batch=args.batch_size, seq_len=seq,
                  gpu_gb=args.gpu_memory, lora=args.lora, model=args.model)
    print(plan.describe(p))
    print()
    print(f"all plugins, full fine-tune, {gpus} GPU(s), {args.batch_size} x {seq} tokens per GPU:")
    print(plan.compare(config, gpus=gpus, micro_batch=args.batch_size, seq_len=seq, gpu_gb=args.gpu_memory))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_common_args(args)
    if args.plan:
        return run_plan(args)
    missing = [f"--{n}" for n in ("corpus", "target", "output") if not getattr(args, n)]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required (or --plan)")
    from audiorole_ray.io.storage import check_reachable, join
    from audiorole_ray.lm.job import prepare, start, train
    from audiorole_ray.pipeline.lock import OutputLock

    # every check reads only: a refused run leaves the model folder and the storage as they were
    check_reachable({"--corpus": args.corpus, "--output": args.output, "--storage": args.storage})
    lr = args.lr if args.lr is not None else (3e-3 if args.model == "tiny" else 1e-5)
    prepared = prepare(args.corpus, args.target, args.model, args.output, tokenizer=args.tokenizer,
                       max_tokens=args.max_tokens, lora=args.lora, preview=args.preview, seed=args.seed, restart=args.restart,
                       epochs=args.epochs, plugin=args.plugin, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                       gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size, lr=lr,
                       warmup_steps=args.warmup_steps, checkpoint_every=args.checkpoint_every,
                       storage=args.storage, max_failures=args.max_failures)
    check_writable_outputs(args)
    with OutputLock(args.output, name="lm.lock"):  # one LM run per model folder (the decoder may train beside it)
        c = prepared.counts
        print(f"samples {c['samples']} ({c.get('samples_multi', 0)} multi-turn, {c.get('samples_single', 0)} single-turn) "
              f"from {c['dialogues']} dialogues of {args.target}; {c['tokens']} tokens, {c['trained_tokens']} trained, "
              f"longest {c['max_len']}; cut at --max-tokens {c.get('cut_too_long', 0)}, dropped too long "
              f"{c.get('dropped_too_long', 0)}, missing speech tokens {c.get('cut_missing_tokens', 0)}", flush=True)
        env.update(TRAIN_ENV)
        init_ray(args, env, cpus=args.cpus_per_worker, gpus=args.gpus_per_worker)  # refuses a local Ray without room
        import ray

        try:
            start(prepared)  # --restart's removal, the run's settings, preview.jsonl
            print(f"preview: {join(prepared.config.output, 'preview.jsonl')}", flush=True)
            summary = train(prepared, env=env)
        finally:
            ray.shutdown()
    print(json.dumps({k: summary[k] for k in ("output", "steps", "epochs", "first_epoch_loss", "last_epoch_loss",
                                                "resumed_from_step", "resumed_at", "wall_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
