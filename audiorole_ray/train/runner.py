"""The driver side: one ``TorchTrainer`` for any task, resumable by re-running the same command.

Ray Train keeps the run's checkpoints under ``<storage>/<run name>/`` (local folder or s3://).
A run that loses a worker restarts its workers from the latest checkpoint (``FailureConfig``);
a run whose driver was killed is continued by the next run with the same run name and storage:
Ray Train reloads the run's checkpoint snapshot from there. Only a run with the same settings
continues it: the driver records them beside the run folder (``<storage>/<run name>.settings.json``)
and compares them with a re-run's before Ray starts (:func:`check_continue`); ``--restart``
removes the run's checkpoints first (:func:`start_run`).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from audiorole_ray.errors import ConfigError
from audiorole_ray.train.config import TrainConfig
from audiorole_ray.train.task import TrainTask


@dataclass
class TrainOutcome:
    steps: int
    epochs_done: int
    history: list[dict]
    checkpoint: str  # where the last checkpoint lives
    resumed_from_step: int  # 0 for a fresh run
    resumed_at: list[int]  # the steps the workers restarted from, over the whole run (from the last checkpoint)


SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train V2's record of a run's checkpoints


def record_uri(storage_path: str, run_name: str) -> str:
    """The driver's record of the settings a run's checkpoints were made with, beside Ray Train's
    run folder (Ray Train never touches it)."""
    from audiorole_ray.io.storage import join

    return join(storage_path, f"{run_name}.settings.json")


def latest_state(storage_path: str, run_name: str) -> dict | None:
    """The counters (``state.json``) of the checkpoint a re-run of this run continues from, or
    ``None``: the latest one in the run snapshot Ray Train keeps beside the checkpoints, which is
    the one it hands to ``get_checkpoint()``. Storage that cannot be read is an error, not
    "no checkpoint"."""
    from audiorole_ray.io.storage import join, read_json
    from audiorole_ray.train.checkpoint import STATE

    root = join(storage_path, run_name)
    try:
        latest = read_json(join(root, SNAPSHOT)).get("latest_checkpoint_result") or {}
        return read_json(join(root, latest["checkpoint_dir_name"], STATE))
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_continue(storage_path: str, run_name: str, settings: dict, restart: bool = False) -> dict | None:
    """Before Ray starts: the state of the checkpoint a re-run would continue (``None``: nothing
    to continue, as after a run killed before its first checkpoint). A checkpoint made with
    other ``settings`` is refused, naming the differences, unless ``restart`` (the job then
    discards it in :func:`start_run`)."""
    from audiorole_ray.arp_model import changes
    from audiorole_ray.io.storage import join, read_json

    state = latest_state(storage_path, run_name)
    if state is None or restart:
        return state
    try:
        recorded = read_json(record_uri(storage_path, run_name))["settings"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        print(f"warning: the checkpoint at step {state['step']} in {join(storage_path, run_name)} has no record of its "
              "settings (made by an older version): continuing it as it is", file=sys.stderr)
        return state
    diff = changes(recorded, settings, sorted(set(recorded) | set(settings)))
    if diff:
        raise ConfigError(f"{join(storage_path, run_name)} holds a checkpoint at step {state['step']} made with other settings "
                          f"({'; '.join(diff)}): re-run with those to continue it, or add --restart to discard it and train afresh")
    return state


def start_run(storage_path: str, run_name: str, settings: dict, restart: bool = False) -> None:
    """Under the job's output lock, right before Ray starts: with ``restart`` the run's
    checkpoints are removed (the snapshot first, so a removal cut short leaves nothing to
    continue); then the settings are recorded for the next re-run to compare."""
    import datetime as _dt

    from audiorole_ray.io.storage import exists, join, remove, remove_tree, write_json

    root = join(storage_path, run_name)
    if restart:
        state = latest_state(storage_path, run_name)
        if state is not None:
            print(f"--restart: removing the checkpoints of {root} (the latest at step {state['step']})", flush=True)
        if exists(join(root, SNAPSHOT)):
            remove([join(root, SNAPSHOT)])
        remove_tree(root)
    write_json(record_uri(storage_path, run_name), {
        "run": run_name, "settings": settings,
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})


def run(task: TrainTask, dataset, cfg: TrainConfig, *, rows: int | None = None, env: dict | None = None,
        val_dataset=None) -> TrainOutcome:
    """Train ``task`` on the Ray Dataset ``dataset`` (one row per sample) with ``cfg``; with
    ``val_dataset``, every epoch ends with ``val_loss`` over it (split across the workers)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from audiorole_ray.train.progress import DriverProgress, ProgressPrinter

    cfg.validate()
    rows = dataset.count() if rows is None else rows
    per_worker = rows // cfg.workers
    if per_worker < 1:
        raise ConfigError(f"{rows} training samples cannot feed {cfg.workers} workers: use fewer --workers")
    cfg.steps_per_epoch = math.ceil(per_worker / cfg.batch_size)
    run_name = cfg.run_name or task.name

    # Ray Train 2.60 (Train V2) resumes by itself: a run with the same name and storage_path loads
    # its checkpoint manager's snapshot there and hands the latest checkpoint to get_checkpoint()
    state = latest_state(cfg.storage_path, run_name)
    resumed_from = state["step"] if state else 0
    if state:
        print(f"continuing run {run_name!r} from its checkpoint at step {state['step']} "
              f"(epoch {state['epoch'] + (1 if state['epoch_step'] else 0)} of {cfg.epochs})", flush=True)

    progress = DriverProgress(ProgressPrinter(cfg.epochs, cfg.steps_per_epoch, task.rate_key, cfg.log_every))
    resources = {"CPU": cfg.cpus_per_worker}
    if cfg.gpus_per_worker:
        resources["GPU"] = cfg.gpus_per_worker
    trainer = TorchTrainer(
        _entry,
        train_loop_config={"task": task, "config": cfg.to_dict(), "env": env or {}},
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=run_name,
            storage_path=cfg.storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            callbacks=[progress.callback],
        ),
        datasets={"train": dataset, **({"val": val_dataset} if val_dataset is not None else {})},
        dataset_config=DataConfig(datasets_to_split=["train"] + (["val"] if val_dataset is not None else [])),
        torch_config=TorchConfig(timeout_s=cfg.dist_timeout_s),
    )
    with progress:
        result = trainer.fit()
    if result.error:
        raise result.error
    final = _read_state(result.checkpoint)
    return TrainOutcome(steps=final.step, epochs_done=final.epoch, history=final.history,
                        checkpoint=result.checkpoint.path, resumed_from_step=resumed_from,
                        resumed_at=final.resumed_at)


def _read_state(checkpoint):
    """Only ``state.json`` of a checkpoint: a 9B checkpoint with its optimizer is ~150 GB, not
    something to download to the driver."""
    import json

    from audiorole_ray.train.checkpoint import STATE, TrainState

    with checkpoint.filesystem.open_input_stream(f"{checkpoint.path.rstrip('/')}/{STATE}") as f:
        return TrainState(**json.loads(f.read().decode()))


def _entry(loop_config: dict) -> None:
    import os

    import logging

    for key, value in loop_config.pop("env", {}).items():
        os.environ.setdefault(key, value)
    try:  # not one INFO line per ray.train.report (Train V2 logs them under the module's file name)
        from ray.train.v2._internal.execution import context as _context

        _context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):
        pass
    from audiorole_ray.train.loop import train_loop

    train_loop(loop_config)
