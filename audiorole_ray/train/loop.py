"""The loop every Ray Train worker runs: ColossalAI Booster, Ray Data shard, checkpoints, metrics.

Model-agnostic: the task (:class:`audiorole_ray.train.task.TrainTask`) supplies the model, the
collate and the loss. Everything here runs inside ``TorchTrainer``'s ``train_loop_per_worker``.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time

import torch


def lr_lambda(total_steps: int, warmup_steps: int, min_ratio: float):
    """Linear warm-up, then cosine decay to ``min_ratio`` of the peak at ``total_steps``."""

    def f(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train_loop(loop_config: dict) -> None:
    import ray.train
    import torch.distributed as dist
    from ray.train import Checkpoint

    from audiorole_ray.train import checkpoint as ckpt_io
    from audiorole_ray.train.config import TrainConfig
    from audiorole_ray.train.metrics import MetricsLog
    from audiorole_ray.train.plugins import clip_gradients, colossalai, make_optimizer, make_plugin
    from audiorole_ray.train.task import WorkerContext

    task = loop_config["task"]
    cfg = TrainConfig(**loop_config["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    is_main = rank == 0
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)  # what building the model draws (initial weights, LoRA): the same on every rank
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))

    colossalai()
    from colossalai.booster import Booster

    booster = Booster(plugin=make_plugin(cfg.plugin, cfg.precision, cfg.max_grad_norm))
    model = task.build_model(WorkerContext(rank=rank, world_size=world, device=device, plugin=cfg.plugin))
    lora = task.lora_config()
    if lora is not None:
        model = booster.enable_lora(model, lora_config=lora)
    optimizer = make_optimizer(cfg.plugin, task.trainable_parameters(model), cfg.lr, cfg.weight_decay)
    total_steps = cfg.steps_per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, cfg.warmup_steps, cfg.min_lr_ratio))
    model, optimizer, _, _, scheduler = booster.boost(model, optimizer, lr_scheduler=scheduler)

    state = ckpt_io.TrainState()
    resumed, restored_rng = ray.train.get_checkpoint(), False
    if resumed is not None:
        with resumed.as_directory() as d:
            state = ckpt_io.load(d, booster, model, optimizer, scheduler, cfg.plugin)
            restored_rng = ckpt_io.load_rng(d, rank, device)
        state.resumed_at.append(state.step)
    if not restored_rng:  # the training draws (noise, dropout): each rank its own, the same in every run
        ckpt_io.seed_rng(cfg.seed, rank, state.step)
    log = MetricsLog(cfg.output, state.history) if is_main else None
    rate_key = task.rate_key

    def report(metrics: dict, with_checkpoint: bool) -> None:
        if not with_checkpoint:
            ray.train.report(metrics)
            return
        tmp = tempfile.mkdtemp(prefix="arp-ckpt-")
        try:
            own = ckpt_io.save(tmp, booster, model, optimizer, scheduler, state, is_main, cfg.plugin, rank, device)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(own))  # every rank: its RNG state
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    shard = ray.train.get_dataset_shard("train")
    try:
        val_shard = ray.train.get_dataset_shard("val")
    except (KeyError, ValueError):
        val_shard = None

    def validate(epoch: int) -> float:
        """Mean validation loss over every worker's share, with the same RNG draws each epoch."""
        model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=device)
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed + 12345)
            for raw in val_shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
                loss, weight = task.eval_loss(model, _to(task.collate(raw), device))
                total += torch.tensor([float(loss) * float(weight), float(weight)], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        model.train()
        return float(total[0] / max(float(total[1]), 1e-12))
    for epoch in range(state.epoch, cfg.epochs):
        skip = state.epoch_step if epoch == state.epoch else 0
        state.epoch, state.epoch_step = epoch, skip
        model.train()
        shuffle = {} if cfg.shuffle_seed < 0 else {"local_shuffle_buffer_size": 4 * cfg.batch_size,
                                                   "local_shuffle_seed": cfg.shuffle_seed + epoch}
        batches = shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy", **shuffle)
        t_last = time.perf_counter()
        for i, raw in enumerate(batches):
            if i < skip:  # a mid-epoch checkpoint: these steps are done
                t_last = time.perf_counter()
                continue
            batch = _to(task.collate(raw), device)
            lr = scheduler.get_last_lr()[0]
            loss, weight = task.loss(model, batch)
            booster.backward(loss, optimizer)
            clip_gradients(cfg.plugin, optimizer, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            stats = torch.tensor([float(loss.detach()) * float(weight), float(weight),
                                  float(task.throughput_units(batch))], dtype=torch.float64, device=device)
            dist.all_reduce(stats)
            now = time.perf_counter()
            state.step += 1
            state.epoch_step = i + 1
            row = {"step": state.step, "epoch": epoch, "loss": float(stats[0] / max(stats[1], 1.0)), "lr": lr,
                   rate_key: float(stats[2]) / max(now - t_last, 1e-9)}
            t_last = now
            state.history.append(row)
            if is_main:
                log.append(row)
            end_of_epoch = state.epoch_step >= cfg.steps_per_epoch
            every = bool(cfg.checkpoint_every) and state.step % cfg.checkpoint_every == 0 and not end_of_epoch
            report(row, with_checkpoint=every)
        epoch_rows = [r for r in state.history if r["epoch"] == epoch]
        state.epoch, state.epoch_step = epoch + 1, 0
        summary = {"step": state.step, "epoch": epoch, "epoch_done": epoch + 1,
                   "epoch_loss": sum(r["loss"] for r in epoch_rows) / max(1, len(epoch_rows))}
        if val_shard is not None:
            summary["val_loss"] = validate(epoch)
            if epoch_rows:  # the epoch's last step carries its val_loss (metrics.jsonl is rewritten at the end)
                epoch_rows[-1]["val_loss"] = summary["val_loss"]
        report(summary, with_checkpoint=True)  # the driver prints the progress lines (train/progress.py)

    # the final model, in the format the task's users load
    tmp = tempfile.mkdtemp(prefix="arp-export-")
    try:
        model.eval()
        task.export(model, booster, tmp, is_main)
        if is_main:
            _publish(tmp, cfg.output)
        dist.barrier()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(local_dir: str, output: str) -> None:
    """Copy the exported files into the output folder (local or s3://), replacing older ones."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(output)
    fs.makedirs(root, exist_ok=True)
    for name in sorted(os.listdir(local_dir)):
        src = os.path.join(local_dir, name)
        dst = f"{root.rstrip('/')}/{name}"
        if os.path.isdir(src):
            if fs.exists(dst):
                fs.rm(dst, recursive=True)
            fs.put(src, dst, recursive=True)
        else:
            fs.put_file(src, dst)
