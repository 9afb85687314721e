"""What a model brings to the shared trainer: a small task object, the rest is the trainer's.

The trainer (:mod:`audiorole_ray.train.runner` on the driver, :mod:`audiorole_ray.train.loop` on
each Ray Train worker) owns scaling, storage, failures, checkpoints (model, optimizer, scheduler,
step/epoch counters), Ray Data shard iteration, metrics and the loss curve. A task owns only:

- ``build_model(ctx)``: the ``torch.nn.Module`` to train (built on every worker);
- ``collate(batch)``: a Ray Data batch (dict of numpy arrays) to a dict of tensors;
- ``loss(model, batch)``: ``(mean loss tensor, units)``; units (tokens, frames) weight the loss
  across workers and give the throughput;
- ``export(model, booster, directory, is_main)``: the final model in the format its users load
  (every rank calls it: sharded plugins gather in ``booster.save_model``);
- optionally ``eval_loss(model, batch)``: the validation loss when the run has a validation set
  (default: ``loss`` without gradients, the model in eval mode, the RNG seeded the same way at
  every epoch so epochs compare).

A task is pickled to the workers: keep it to settings and paths, build heavy things in methods.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class WorkerContext:
    rank: int
    world_size: int
    device: Any  # torch.device
    plugin: str


class TrainTask:
    name = "task"  # the output subfolder and the Ray Train run's name
    unit = "items"  # what ``loss`` counts: throughput is reported as <unit>_per_s

    @property
    def rate_key(self) -> str:
        """The throughput's key in the reported metrics and ``metrics.jsonl``."""
        return f"{self.unit}_per_s"

    def build_model(self, ctx: WorkerContext):
        raise NotImplementedError

    def collate(self, batch: dict):
        raise NotImplementedError

    def loss(self, model, batch: dict):
        raise NotImplementedError

    def eval_loss(self, model, batch: dict):
        """``(mean loss tensor, units)`` of a validation batch; called under ``torch.no_grad``."""
        return self.loss(model, batch)

    def throughput_units(self, batch: dict) -> int:
        """How many ``unit`` a batch holds, for the throughput figure (default: its rows)."""
        return len(next(iter(batch.values())))

    def trainable_parameters(self, model):
        """What the optimizer updates (all parameters that require gradients)."""
        return [p for p in model.parameters() if p.requires_grad]

    def lora_config(self):
        """A ``peft.LoraConfig`` to train adapters through ``booster.enable_lora``, or ``None``."""
        return None

    def export(self, model, booster, directory: str, is_main: bool) -> None:
        booster.save_model(model, directory, shard=True, use_safetensors=True)
