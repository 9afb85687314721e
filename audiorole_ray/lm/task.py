"""The LM fine-tune as a task of the shared trainer: GLM-4-Voice-9B (or the tiny GLM) on samples
of :mod:`audiorole_ray.lm.data`, next-token cross-entropy on the responses only."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingModelError
from audiorole_ray.lm.format import IGNORE
from audiorole_ray.train.task import TrainTask, WorkerContext

# what a remote-code model folder needs beside the weights for from_pretrained and its tokenizer
_SIDE_FILES = ("*.py", "tokenizer*", "special_tokens_map.json", "*.tiktoken", "*.model", "generation_config.json")


def load_pretrained(model_dir: str, gradient_checkpointing: bool = True):
    """GLM-4-Voice-9B from a local folder: remote code, bf16, gradient checkpointing."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if not Path(model_dir, "config.json").is_file():
        raise MissingModelError(f"--model {model_dir!r} is not a model folder (no config.json); nothing is downloaded")
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True, **{dtype_kw: torch.bfloat16})
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    return model


class LMTask(TrainTask):
    name = "lm"
    unit = "tokens"

    def __init__(self, model: str, tokenizer, tiny_config: dict | None = None, lora: bool = False,
                 lora_rank: int = 16, gradient_checkpointing: bool = True, seed: int = 0):
        self.model = model  # "tiny" or a local folder
        self.tokenizer = tokenizer
        self.tiny_config = tiny_config
        self.lora = lora
        self.lora_rank = lora_rank
        self.gradient_checkpointing = gradient_checkpointing
        self.seed = seed
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def build_model(self, ctx: WorkerContext):
        if self.tiny_config is not None:
            from audiorole_ray.lm.tiny import build_tiny_model

            return build_tiny_model(self.tiny_config, self.seed)
        return load_pretrained(self.model, self.gradient_checkpointing)

    def lora_config(self):
        if not self.lora:
            return None
        from peft import LoraConfig

        return LoraConfig(task_type="CAUSAL_LM", r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.05,
                          target_modules="all-linear")

    def collate(self, batch: dict) -> dict:
        import torch

        seqs, labs = list(batch["input_ids"]), list(batch["labels"])
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        labels = np.full((len(seqs), width), IGNORE, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for i, (s, lab) in enumerate(zip(seqs, labs)):
            ids[i, : len(s)], labels[i, : len(s)], mask[i, : len(s)] = s, lab, 1
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels), "attention_mask": torch.from_numpy(mask)}

    def loss(self, model, batch: dict):
        return lm_loss(model, batch)

    def throughput_units(self, batch: dict) -> int:
        return int(batch["attention_mask"].sum())

    def export(self, model, booster, directory: str, is_main: bool) -> None:
        """Hugging Face format: weights, config, tokenizer and (for remote code) its .py files."""
        if self.lora:
            if is_main:  # ddp/zero2 keep whole weights on every rank: rank 0 merges and saves
                peft_model = model.unwrap(unwrap_peft=False) if hasattr(model, "unwrap") else model
                merged = peft_model.merge_and_unload()
                merged.save_pretrained(directory, safe_serialization=True)
        else:
            inner = model.unwrap() if hasattr(model, "unwrap") else model
            booster.save_model(model, directory, shard=True, use_safetensors=True)
            if is_main:
                inner.config.save_pretrained(directory)
                if getattr(inner, "generation_config", None) is not None:
                    inner.generation_config.save_pretrained(directory)
        if not is_main:
            return
        if self.tiny_config is None:
            for pattern in _SIDE_FILES:
                for src in Path(self.model).glob(pattern):
                    if not Path(directory, src.name).exists():
                        shutil.copy2(src, os.path.join(directory, src.name))
        else:
            self.tokenizer.save_pretrained(directory)


def lm_loss(model, batch: dict):
    """Mean next-token cross-entropy over labelled tokens (fp32 logits) and how many there were."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    return loss, int((labels != IGNORE).sum())
