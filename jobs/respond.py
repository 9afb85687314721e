#!/usr/bin/env python
"""The ARP-Model answers in character: input speech -> the character's spoken answer.

    python jobs/respond.py --model MODEL --input A.wav --output B.wav [--text]
    python jobs/respond.py --model MODEL --corpus OUT --output RESPONSES [--workers N] [--gpus-per-worker G]

MODEL is an ARP-Model folder (jobs/train_lm.py + jobs/train_decoder.py). The input is tokenized
with the model's speech tokenizer, the fine-tuned LM generates in GLM-4-Voice's chat format
(sampling defaults: GLM-4-Voice's demo, temperature 0.2, top_p 0.8), the interleaved output is
split into text and speech tokens, and the speech tokens go through the character's flow decoder
and the vocoder. --lm / --decoder-model use a real glm-4-voice-9b / glm-4-voice-decoder folder.
The batch mode answers every test A turn of the character in corpus OUT, writing
RESPONSES/responses.parquet and FLAC shards; re-running it skips the dialogues already answered.

Single mode writes the .wav it names or fails: a folder, another extension, the input itself or
an unwritable place is refused before the model loads. An input longer than the model's context
(with room for --max-new-tokens) is refused, or with --truncate-input keeps its last tokens and
says so (status input_cut); in batch mode such a turn is recorded as too_long unless cut.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiorole_ray.cli import add_common_args, apply_common_args, init_ray, run_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the ARP-Model folder (local or s3://)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="one input utterance (any audio file FFmpeg reads)")
    src.add_argument("--corpus", help="batch mode: answer every test A turn of the model's character in this corpus")
    p.add_argument("--output", required=True, help="the answer's .wav (single mode) or the RESPONSES folder (batch mode)")
    p.add_argument("--text", action="store_true", help="single mode: print the answer's transcript part")
    p.add_argument("--truncate-input", action="store_true",
                   help="an input longer than the model's context keeps its last tokens (recorded as status input_cut) "
                   "instead of being refused")
    from audiorole_ray.respond.engine import Sampling
    from audiorole_ray.tokens.base import TOKEN_RATE

    d = Sampling()  # one place for the defaults (respond.engine.Sampling says why each)
    g = p.add_argument_group("sampling (GLM-4-Voice demo defaults but the token limit)")
    g.add_argument("--temperature", type=float, default=d.temperature, help=f"default {d.temperature}")
    g.add_argument("--top-p", type=float, default=d.top_p, help=f"default {d.top_p}")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens,
                   help=f"default {d.max_new_tokens}: at most {d.max_new_tokens / TOKEN_RATE:.0f} s of speech (GLM-4-Voice's demo: 2000)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--steps", type=int, default=10, help="Euler steps of the flow decoder (default 10, as GLM-4-Voice)")
    m = p.add_argument_group("parts")
    m.add_argument("--vocoder", default="hifigan", help="hifigan (embedded), griffinlim, or hift (with --vocoder-model and --glm4voice-repo)")
    m.add_argument("--vocoder-model", help="local weights of the vocoder (hift: a glm-4-voice-decoder folder)")
    m.add_argument("--glm4voice-repo", default=os.environ.get("GLM4VOICE_REPO"),
                   help="a local GLM-4-Voice checkout, for its official parts: the glm4voice tokenizer, hift, --decoder-model "
                   "(default: $GLM4VOICE_REPO)")
    m.add_argument("--lm", help="a local LM folder instead of MODEL/lm (e.g. glm-4-voice-9b)")
    m.add_argument("--decoder-model", help="a local glm-4-voice-decoder folder: GLM-4-Voice's own flow + HiFT instead of MODEL/decoder")
    m.add_argument("--codebook", help="whisper-units codebook (default: the one in the training corpus)")
    m.add_argument("--tokenizer-model", help="local weights of the speech tokenizer (glm4voice: glm-4-voice-tokenizer)")
    m.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    add_common_args(p, workers=1)  # batch mode: actors answering dialogues, their resources, Ray, storage
    return p.parse_args(argv)


def responder_options(args) -> dict:
    return {"vocoder": args.vocoder, "vocoder_model": args.vocoder_model, "lm": args.lm, "decoder_model": args.decoder_model,
            "codebook": args.codebook, "tokenizer_model": args.tokenizer_model, "glm4voice_repo": args.glm4voice_repo,
            "n_timesteps": args.steps, "truncate_input": args.truncate_input}


def sampling(args) -> dict:
    return {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens, "seed": args.seed}


def single(args) -> int:
    from audiorole_ray.io.audio import SAMPLE_RATE, load
    from audiorole_ray.pipeline.stage import resolve_device
    from audiorole_ray.respond.engine import Responder, Sampling
    from audiorole_ray.respond.job import check_answer_file
    from audiorole_ray.wav import write_wav

    # everything that can be refused is, before the model's weights load (minutes for a 9B LM)
    check_answer_file(args.output, args.input)
    audio, _ = load(args.input, SAMPLE_RATE)
    responder = Responder(args.model, device=resolve_device(args.device, 0), sampling=Sampling(**sampling(args)),
                          **responder_options(args)).prepare()
    responder.check_input(audio.size)
    answer = responder.load().respond(audio)
    if args.text:
        print(answer.text)
    summary = {"status": answer.status, "problems": answer.problems, "input_tokens": answer.input_tokens,
               "input_tokens_cut": answer.input_cut, "speech_tokens": len(answer.speech), "seconds": answer.seconds}
    if answer.audio.size:
        write_wav(args.output, answer.audio, answer.rate)  # through a temporary name: the file is whole or absent
        summary.update(output=args.output, duration_s=round(answer.audio.size / answer.rate, 3), sample_rate=answer.rate)
    else:  # a file left there by an earlier run is not this answer: never named as written
        summary.update(output=None, not_written=f"no speech to write: {args.output} was not written")
    print(json.dumps(summary), file=sys.stderr if args.text else sys.stdout)
    return 0 if answer.audio.size else 1


def batch(args, env: dict) -> int:
    from audiorole_ray.io.storage import check_writable
    from audiorole_ray.pipeline.lock import OutputLock
    from audiorole_ray.respond.job import check_batch_output, plan_batch, removed_if_failed, run_batch

    # read-only checks first (model, context, the character's test turns), then the output
    check_batch_output(args.output, args.corpus, args.model)
    plan = plan_batch(args.model, args.corpus, responder_options(args), sampling(args))
    with removed_if_failed(args.output):
        check_writable(args.output)
        with OutputLock(args.output):
            init_ray(args, {**env, "TOKENIZERS_PARALLELISM": "false"}, cpus=args.cpus_per_worker, gpus=args.gpus_per_worker)
            import ray

            try:
                options = {**responder_options(args), "device": args.device}
                summary = run_batch(args.model, args.corpus, args.output, options, sampling(args), workers=args.workers,
                                    cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, plan=plan)
            finally:
                ray.shutdown()
    print(json.dumps(summary))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_common_args(args)
    from audiorole_ray.io.storage import check_reachable

    # object storage that cannot be reached is one line here, not a traceback from inside a load
    check_reachable({"--model": args.model, "--input": args.input, "--corpus": args.corpus, "--output": args.output})
    return single(args) if args.input else batch(args, env)


if __name__ == "__main__":
    sys.exit(run_main(main))
