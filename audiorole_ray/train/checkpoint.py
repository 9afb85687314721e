"""A training checkpoint: model, optimizer and LR scheduler through the Booster, counters and
every rank's random-number states.

Layout of one checkpoint folder (what Ray Train copies to its storage)::

    model/        booster.save_model(shard=True): Hugging Face-compatible safetensors shards
    optimizer/    booster.save_optimizer(shard=True); with the DDP plugin optimizer.pt instead
                  (every rank holds the whole state, and ColossalAI's loader needs CUDA)
    scheduler.pt  booster.save_lr_scheduler
    state.json    {"epoch", "epoch_step", "step", "history": [per-step metrics]}
    rng_<rank>.pt each rank's torch (CPU and its CUDA device), numpy and Python ``random`` states

``epoch`` is the epoch in progress and ``epoch_step`` the batches of it already done (0 at an
epoch boundary). Every rank calls :func:`save`: Gemini and ZeRO gather to rank 0 there; only rank
0 writes the model, optimizer, scheduler and counters. Every rank hands ``ray.train.report`` a
folder with its own ``rng_<rank>.pt`` (rank 0's holds the rest too): Ray Train copies them all
into the one checkpoint folder, which every rank is given on a resume, so each restores its own
draws (the flow decoder's noise, times and condition dropout continue as if never stopped).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import torch

STATE = "state.json"
DDP_OPTIMIZER = "optimizer.pt"
RNG = "rng_{rank}.pt"


@dataclass
class TrainState:
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)  # the steps a worker restarted from, as the worker saw them


def save(directory: str, booster, model, optimizer, scheduler, state: TrainState, is_main: bool, plugin: str = "ddp",
         rank: int = 0, device=None) -> str:
    """Write this rank's share of a checkpoint under ``directory``; returns the folder this rank
    hands to ``ray.train.report``: ``directory`` on rank 0, elsewhere a subfolder holding only the
    rank's RNG file (not what a sharded save may have left in ``directory`` on that rank)."""
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
    own = directory if is_main else os.path.join(directory, f"rank{rank}")
    os.makedirs(own, exist_ok=True)
    torch.save(rng_state(device), os.path.join(own, RNG.format(rank=rank)))
    return own


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


def seed_rng(seed: int, rank: int, step: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random`` from (seed, rank, step): each rank
    draws its own numbers, the same in every run. Used where no saved state is at hand: a fresh run,
    or a rank a checkpoint holds no state of (it was made with fewer workers)."""
    import random

    import numpy as np

    value = int(np.random.SeedSequence([seed % 2**64, rank, step]).generate_state(1)[0])
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


def rng_state(device=None) -> dict:
    """The random-number states of this process (and of ``device`` when it is a CUDA device), in
    types ``torch.load(weights_only=True)`` reads back."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    out = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if device is not None and torch.device(device).type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(saved: dict, device=None) -> None:
    import random

    import numpy as np

    torch.set_rng_state(saved["torch"])
    random.setstate(saved["python"])
    kind, keys, pos, has_gauss, gauss = saved["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in saved and device is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(saved["cuda"], device)


def load_rng(directory: str, rank: int, device=None) -> bool:
    """Restore this rank's random-number states from a checkpoint; False when it holds none."""
    path = os.path.join(directory, RNG.format(rank=rank))
    if not os.path.exists(path):
        return False
    set_rng_state(torch.load(path, map_location="cpu", weights_only=True), device)
    return True
