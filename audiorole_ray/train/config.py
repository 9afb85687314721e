"""Settings of one training run, shared by the driver and the workers (plain, picklable)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from audiorole_ray.errors import ConfigError

PLUGINS = ("ddp", "gemini", "zero2")
# what a run's checkpoints depend on (how the model learns, and the checkpoint's layout: ddp keeps
# optimizer.pt, gemini/zero2 a sharded optimizer/): a re-run that changes one of them cannot continue
# them (train/runner.py). Not here: epochs (more of them continue the run), workers (a
# re-submission after a lost node), resources, storage, checkpoint cadence, failures, logging.
LEARNING = ("lr", "batch_size", "seed", "plugin", "precision", "warmup_steps", "weight_decay", "min_lr_ratio",
            "max_grad_norm", "shuffle_seed")


@dataclass
class TrainConfig:
    output: str  # the task's output folder (MODEL/lm): final model, metrics.jsonl, loss.png
    epochs: int = 20
    batch_size: int = 1  # samples per worker per step
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decay down to lr * this
    max_grad_norm: float = 1.0
    plugin: str = "ddp"
    precision: str = "bf16"  # for gemini / zero2 (DDP trains in the model's own dtype)
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    storage: str = ""  # Ray Train storage_path (local folder or s3://); default: <output>/_ray
    run_name: str = ""  # Ray Train run name; default: the task's name
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at the end of each epoch only)
    keep_checkpoints: int = 2
    max_failures: int = 3  # worker failures Ray Train recovers from within one run
    shuffle_seed: int = 0  # per-epoch local shuffle of each worker's shard (-1: none)
    seed: int = 0
    steps_per_epoch: int = 0  # filled in by the driver from the dataset's size
    dist_timeout_s: int = 1800  # collective timeout: rank 0 gathers whole checkpoints with Gemini
    log_every: int = 1  # the driver prints every n-th step (0: epochs only)

    def validate(self) -> None:
        if self.plugin not in PLUGINS:
            raise ConfigError(f"--plugin {self.plugin!r}: choose one of {', '.join(PLUGINS)}")
        for name in ("epochs", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.lr <= 0:
            raise ConfigError("--lr must be positive")
        if self.plugin in ("gemini", "zero2") and self.gpus_per_worker <= 0:
            raise ConfigError(f"--plugin {self.plugin} needs GPUs (ColossalAI's {self.plugin} runs on CUDA only): "
                              "give --gpus-per-worker 1, or use --plugin ddp on CPUs")

    @property
    def storage_path(self) -> str:
        if self.storage:
            return self.storage
        return os.path.abspath(os.path.join(self.output, "_ray")) if "://" not in self.output else self.output.rstrip("/") + "/_ray"

    def to_dict(self) -> dict:
        return asdict(self)

    def learning_settings(self) -> dict:
        return {k: getattr(self, k) for k in LEARNING}
