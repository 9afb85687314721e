"""A training checkpoint: model, optimizer and LR scheduler through the Booster, plus counters.

Layout of one checkpoint folder (what Ray Train copies to its storage)::

    model/        booster.save_model(shard=True): Hugging Face-compatible safetensors shards
    optimizer/    booster.save_optimizer(shard=True); with the DDP plugin optimizer.pt instead
                  (every rank holds the whole state, and ColossalAI's loader needs CUDA)
    scheduler.pt  booster.save_lr_scheduler
    state.json    {"epoch", "epoch_step", "step", "history": [per-step metrics]}

``epoch`` is the epoch in progress and ``epoch_step`` the batches of it already done (0 at an
epoch boundary). Every rank calls :func:`save`: Gemini and ZeRO gather to rank 0 there; only rank
0 writes files, and only rank 0 hands the folder to ``ray.train.report``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import torch

STATE = "state.json"
DDP_OPTIMIZER = "optimizer.pt"


@dataclass
class TrainState:
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)  # the steps a worker restarted from, as the worker saw them


def save(directory: str, booster, model, optimizer, scheduler, state: TrainState, is_main: bool, plugin: str = "ddp") -> None:
    booster.save_model(model, os.path.join(directory, "model"), shard=True, use_safetensors=True)
    if plugin == "ddp":
        if is_main:
            torch.save(optimizer.unwrap().state_dict(), os.path.join(directory, DDP_OPTIMIZER))
    else:
        booster.save_optimizer(optimizer, os.path.join(directory, "optimizer"), shard=True)
    if is_main:
        booster.save_lr_scheduler(scheduler, os.path.join(directory, "scheduler.pt"))
        with open(os.path.join(directory, STATE), "w") as f:
            json.dump(asdict(state), f)


def load(directory: str, booster, model, optimizer, scheduler, plugin: str = "ddp") -> TrainState:
    booster.load_model(model, os.path.join(directory, "model"))
    if plugin == "ddp":
        # ColossalAI's sharded optimizer loader calls a device synchronize its CPU accelerator lacks
        optimizer.unwrap().load_state_dict(torch.load(os.path.join(directory, DDP_OPTIMIZER), map_location="cpu"))
    else:
        booster.load_optimizer(optimizer, os.path.join(directory, "optimizer"))
    booster.load_lr_scheduler(scheduler, os.path.join(directory, "scheduler.pt"))
    return read_state(directory)


def read_state(directory: str) -> TrainState:
    with open(os.path.join(directory, STATE)) as f:
        return TrainState(**json.load(f))
