"""The LM fine-tune job: samples on the driver, training on Ray Train, the model folder at the end.

``prepare`` does everything that can fail on bad input before Ray starts and writes nothing
(corpus, target, tokens, tokenizer, options, whose the model folder is and what it was built on,
whether a checkpoint of other settings is there); ``start`` (under the output lock) records the
run's settings and writes ``preview.jsonl``; ``train`` runs the shared trainer and writes
``MODEL/lm/`` (model, tokenizer, metrics.jsonl, loss.png), the speech tokenizer's copy and
``MODEL/arp_model.json``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from audiorole_ray.arp_model import SpeechTokenizer, check_part, location, read_manifest, tokenizer_settings, update_part
from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import join
from audiorole_ray.lm import data
from audiorole_ray.lm.format import ChatTokens
from audiorole_ray.train.config import TrainConfig

PREVIEW = "preview.jsonl"


@dataclass
class Prepared:
    task: object
    config: TrainConfig
    samples: list[dict]
    counts: dict
    tokenizer_info: dict
    corpus: str
    target: str
    model_dir: str
    base_model: str
    speech: SpeechTokenizer | None = None
    settings: dict = field(default_factory=dict)  # what the checkpoints depend on (train/runner.py)
    restart: bool = False
    preview: int = 3
    extra: dict = field(default_factory=dict)


def load_tokenizer(model: str, n_audio: int):
    """(text+speech tokenizer, tiny model config or None)."""
    if model == "tiny":
        from audiorole_ray.lm.tiny import build_tokenizer, tiny_config

        tok = build_tokenizer(n_audio)
        return tok, tiny_config(tok)
    from pathlib import Path

    from transformers import AutoTokenizer

    if not Path(model, "config.json").is_file():
        raise InputError(f"--model {model!r}: not a local model folder (no config.json); give 'tiny' or the "
                         "glm-4-voice-9b folder (nothing is downloaded)")
    return AutoTokenizer.from_pretrained(model, trust_remote_code=True), None


def prepare(corpus: str, target: str, model: str, output: str, *, tokenizer: str | None = None,
            max_tokens: int | None = 2048, lora: bool = False, preview: int = 3, seed: int = 0, restart: bool = False,
            **train_options) -> Prepared:
    from audiorole_ray.lm.task import LMTask
    from audiorole_ray.tokens.reader import tokens_by_key
    from audiorole_ray.train.runner import check_continue

    cfg = TrainConfig(output=join(output, "lm"), seed=seed, **train_options)
    cfg.validate()
    if cfg.plugin == "gemini" and lora:
        raise ConfigError("--lora does not work with --plugin gemini (ColossalAI's LoRA supports ddp and zero2)")
    if max_tokens is not None and max_tokens < 64:
        raise ConfigError("--max-tokens must be at least 64")
    corpus, model = location(corpus), model if model == "tiny" else location(model)
    name = data.resolve_tokenizer(corpus, tokenizer)
    speech = SpeechTokenizer.from_corpus(corpus, name)
    info = speech.info
    # whose the folder is and what it was built on, then the checkpoint: before anything is read at length
    check_part(output, read_manifest(output), character=target, corpus=corpus, tokenizer=info, part="lm", restart=restart)
    settings = {"model": model, "corpus": corpus, "target": target, **tokenizer_settings(info), "max_tokens": max_tokens,
                "lora": lora, **cfg.learning_settings()}
    check_continue(cfg.storage_path, cfg.run_name or LMTask.name, settings, restart)
    dialogues = data.target_dialogues(corpus, target)
    codes = tokens_by_key(corpus, name)
    n_audio = int(info.get("vocab_size") or 0)
    if n_audio <= 0:
        raise InputError(f"{join(corpus, 'tokens', name, 'tokenizer.json')} has no vocab_size")
    tok, tiny = load_tokenizer(model, n_audio)
    ct = ChatTokens.from_tokenizer(tok, n_audio)
    samples, counts = data.build_samples(dialogues, codes, ct, lambda s: tok.encode(s, add_special_tokens=False), max_tokens)
    if not samples:
        raise InputError(f"no training samples for {target!r} (counts: {counts})")
    task = LMTask(model=model, tokenizer=tok, tiny_config=tiny, lora=lora, seed=seed)
    return Prepared(task=task, config=cfg, samples=samples, counts=counts, tokenizer_info=info, corpus=corpus, target=target,
                    model_dir=output, base_model=model, speech=speech, settings=settings, restart=restart, preview=preview,
                    extra={"max_tokens": max_tokens})


def start(p: Prepared) -> None:
    """Under the output lock, right before Ray starts: the run's checkpoints go (``--restart``)
    and its settings are recorded; the preview of the samples is written."""
    from audiorole_ray.train.runner import start_run

    start_run(p.config.storage_path, p.config.run_name or p.task.name, p.settings, p.restart)
    data.write_preview(join(p.config.output, PREVIEW), p.samples, p.task.tokenizer, p.preview)


def train(p: Prepared, env: dict | None = None) -> dict:
    import ray

    from audiorole_ray.train.metrics import epoch_means, write_final
    from audiorole_ray.train.runner import run

    t0 = time.time()
    ray.data.DataContext.get_current().enable_progress_bars = False  # one log line per step is enough
    rows = [{"input_ids": s["input_ids"], "labels": s["labels"]} for s in p.samples]
    dataset = ray.data.from_items(rows)
    outcome = run(p.task, dataset, p.config, rows=len(rows), env=env)
    write_final(p.config.output, outcome.history, title=f"LM fine-tune of {p.target} ({p.base_model})")
    means = epoch_means(outcome.history)
    info = {
        "base_model": p.base_model, "plugin": p.config.plugin, "lora": p.task.lora, "epochs": outcome.epochs_done,
        "steps": outcome.steps, "samples": len(p.samples), "max_tokens": p.extra.get("max_tokens"),
        "first_epoch_loss": means[min(means)] if means else None, "last_epoch_loss": means[max(means)] if means else None,
    }
    update_part(p.model_dir, character=p.target, corpus=p.corpus, tokenizer=p.tokenizer_info, part="lm",
                info={**info, "settings": p.settings}, speech=p.speech, restart=p.restart)
    return {**info, "resumed_from_step": outcome.resumed_from_step, "resumed_at": outcome.resumed_at, "wall_s": round(time.time() - t0, 1),
            "output": p.config.output, "checkpoint": outcome.checkpoint, "epoch_loss": means}
