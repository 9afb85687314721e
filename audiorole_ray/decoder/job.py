"""``jobs/train_decoder.py``: a character's flow decoder trained from scratch on all its speech.

Driver: list the character's clips and their speech tokens, split off validation clips, and
hand the trainer two Ray Datasets that read shards and compute mels on the workers' side
(:class:`audiorole_ray.decoder.data.ClipMels`). The trainer (``audiorole_ray.train``) runs the
``TorchTrainer`` whose workers drive a ColossalAI Booster, checkpoints, resumes and logs
metrics; this module records the result in ``MODEL/arp_model.json`` with the model's copy of the
speech tokenizer (``MODEL/speech_tokenizer/``).

``prepare`` reads only: whose the model folder is and which speech codes its other parts were
built on (:func:`audiorole_ray.arp_model.check_part`), and whether a checkpoint of other
settings is there (:func:`audiorole_ray.train.runner.check_continue`) come first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from audiorole_ray.arp_model import SpeechTokenizer, check_part, location, read_manifest, tokenizer_settings
from audiorole_ray.decoder import data
from audiorole_ray.decoder.presets import preset_config
from audiorole_ray.decoder.task import DecoderTask
from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.io.storage import join
from audiorole_ray.train.config import TrainConfig

GLM4VOICE_TOKENS = (16384, 12.5)  # GLM-4-Voice-Tokenizer: codebook size, tokens per second


@dataclass
class Prepared:
    task: DecoderTask
    config: TrainConfig
    corpus: str
    target: str
    model_dir: str
    train_items: list
    val_items: list
    counts: dict
    tokenizer_info: dict
    warnings: list = field(default_factory=list)
    speech: SpeechTokenizer | None = None
    settings: dict = field(default_factory=dict)  # what the checkpoints depend on (train/runner.py)
    restart: bool = False


def prepare(corpus: str, target: str, output: str, *, preset: str = "tiny", tokenizer: str | None = None,
            val_fraction: float = 0.1, seed: int = 0, restart: bool = False, **train_options) -> Prepared:
    from audiorole_ray.lm.data import resolve_tokenizer
    from audiorole_ray.tokens.reader import tokens_by_key
    from audiorole_ray.train.runner import check_continue

    corpus = location(corpus)
    name = resolve_tokenizer(corpus, tokenizer)
    speech = SpeechTokenizer.from_corpus(corpus, name)
    info = speech.info
    check_part(output, read_manifest(output), character=target, corpus=corpus, tokenizer=info, part="decoder", restart=restart)
    vocab, rate = int(info.get("vocab_size") or 0), float(info.get("frame_rate") or 0)
    if vocab <= 0 or rate <= 0:
        raise InputError(f"{join(corpus, 'tokens', name, 'tokenizer.json')} lacks vocab_size or frame_rate")
    cfg = preset_config(preset)
    warnings = []
    if preset == "glm4voice":
        if vocab > cfg["vocab_size"]:
            raise ConfigError(f"speech tokenizer {name!r} has {vocab} codes; the glm4voice decoder takes {cfg['vocab_size']}")
        if (vocab, rate) != GLM4VOICE_TOKENS:
            warnings.append(f"tokens of {name!r} ({vocab} codes at {rate}/s) are not GLM-4-Voice's: the flow.pt has the "
                            "official layout, but only a decoder trained on glm-4-voice-tokenizer codes fits the official LM")
        cfg["input_frame_rate"] = rate
    else:
        cfg.update(vocab_size=vocab, input_frame_rate=rate)
    train_cfg = cfg["train"]
    options = {"lr": train_cfg["lr"], "warmup_steps": train_cfg["warmup_steps"], "max_grad_norm": train_cfg["grad_clip"],
               "epochs": 15, "batch_size": train_cfg["batch_size"], "min_lr_ratio": 0.1}
    options.update({k: v for k, v in train_options.items() if v is not None})
    config = TrainConfig(output=join(output, "decoder"), seed=seed, **options)
    config.validate()
    settings = {"preset": preset, "corpus": corpus, "target": target, **tokenizer_settings(info), "val_fraction": val_fraction,
                **config.learning_settings()}
    check_continue(config.storage_path, config.run_name or DecoderTask.name, settings, restart)

    clips = data.character_clips(corpus, target)
    train, val, how = data.split_clips(clips, val_fraction=val_fraction, seed=seed)
    codes = tokens_by_key(corpus, name, list(clips["audio_key"]))
    train_items, train_missing = data.shard_items(train, codes)
    val_items, val_missing = data.shard_items(val, codes)
    n_train = sum(len(i["keys"]) for i in train_items)
    n_val = sum(len(i["keys"]) for i in val_items)
    if n_train < config.workers:
        raise InputError(f"{target!r} has {n_train} training clips with speech tokens: too few for {config.workers} workers")
    if n_val == 0:
        raise InputError(f"none of {target!r}'s validation clips ({how}) has speech tokens")
    counts = {"clips": len(clips), "train_clips": n_train, "val_clips": n_val, "validation": how,
              "train_seconds": round(float(train[train.audio_key.isin(codes)].duration.sum()), 1),
              "val_seconds": round(float(val[val.audio_key.isin(codes)].duration.sum()), 1),
              "missing_tokens": len(train_missing) + len(val_missing)}
    task = DecoderTask({k: v for k, v in cfg.items() if k != "train"}, preset, info, seed=seed)
    return Prepared(task, config, corpus, target, output, train_items, val_items, counts, info, warnings, speech, settings, restart)


def start(p: Prepared) -> None:
    """Under the output lock, right before training: the run's checkpoints go (``--restart``) and
    its settings are recorded."""
    from audiorole_ray.train.runner import start_run

    start_run(p.config.storage_path, p.config.run_name or p.task.name, p.settings, p.restart)


def train(p: Prepared, env: dict | None = None, data_cpus: float = 0.0) -> dict:
    """``data_cpus``: CPUs each mel task reserves. The default 0 lets the tasks run beside
    training workers that hold every CPU (on a 2-core machine, 2 workers x 1 CPU); the work
    is light (decode, resample, one STFT per clip)."""
    import ray

    from audiorole_ray.arp_model import update_part
    from audiorole_ray.train.metrics import epoch_means, write_final
    from audiorole_ray.train.runner import run

    t0 = time.time()
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # mels in one order every run (and resume)
    clip_mels = data.ClipMels(p.corpus)
    train_ds = ray.data.from_items(p.train_items).flat_map(clip_mels, num_cpus=data_cpus)
    val_ds = ray.data.from_items(p.val_items).flat_map(clip_mels, num_cpus=data_cpus)
    p.task.mel_mean = mean_mel(train_ds, data_cpus)
    outcome = run(p.task, train_ds, p.config, rows=p.counts["train_clips"], env=env, val_dataset=val_ds)
    write_final(p.config.output, outcome.history, title=f"flow decoder of {p.target} ({p.task.preset})")
    val = [r["val_loss"] for r in outcome.history if "val_loss" in r]
    means = epoch_means(outcome.history)
    info = {"preset": p.task.preset, "epochs": outcome.epochs_done, "steps": outcome.steps,
            "vocoder": "hifigan", "mel": "22050 Hz, 80 bins, hop 256", **p.counts,
            "first_val_loss": val[0] if val else None, "last_val_loss": val[-1] if val else None,
            "first_epoch_loss": means[min(means)] if means else None, "last_epoch_loss": means[max(means)] if means else None}
    update_part(p.model_dir, character=p.target, corpus=p.corpus, tokenizer=p.tokenizer_info, part="decoder",
                info={**info, "settings": p.settings}, speech=p.speech, restart=p.restart)
    return {**info, "resumed_from_step": outcome.resumed_from_step, "resumed_at": outcome.resumed_at, "wall_s": round(time.time() - t0, 1),
            "output": p.config.output, "val_loss": val}


def mean_mel(dataset, data_cpus: float = 0.0) -> list[float]:
    """Per-bin mean log-mel of the training clips, streamed (80 sums per clip reach the driver)."""
    import numpy as np

    def sums(row: dict) -> dict:
        mel = np.asarray(row["mel"], np.float64).reshape(-1, 80)
        return {"sum": mel.sum(axis=0), "frames": mel.shape[0]}

    total, frames = np.zeros(80), 0
    for row in dataset.map(sums, num_cpus=data_cpus).iter_rows():
        total += row["sum"]
        frames += int(row["frames"])
    return (total / max(frames, 1)).tolist()
