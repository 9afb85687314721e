"""Training progress printed by the driver: a line per step and per epoch, made from the metrics
the workers already send with ``ray.train.report``.

Ray Train hands every round of reports to a ``UserCallback`` in its controller process; the
callback passes rank 0's metrics through a Ray queue to a thread of the driver, which prints them.
Unlike forwarding the workers' own output (best-effort, and all of Ray's worker logs with it),
every reported step reaches the driver, in order, while the run goes on.
"""
from __future__ import annotations

import sys
import threading
from typing import IO

from ray.train import UserCallback


def progress_line(row: dict, epochs: int, steps_per_epoch: int, rate_key: str) -> str:
    """The driver's line for one reported row: a training step or an epoch's summary."""
    if "epoch_done" in row:
        val = f", val loss {row['val_loss']:.4f}" if "val_loss" in row else ""
        return f"[train] epoch {row['epoch_done']}/{epochs} done: mean loss {row['epoch_loss']:.4f}{val}"
    epoch_step = row["step"] - row["epoch"] * steps_per_epoch
    rate = f" {rate_key} {row[rate_key]:.1f}" if rate_key in row else ""
    return (f"[train] epoch {row['epoch'] + 1}/{epochs} step {epoch_step}/{steps_per_epoch} "
            f"(global {row['step']}) loss {row['loss']:.4f} lr {row['lr']:.3g}{rate}")


class _ForwardReports(UserCallback):
    """Runs in Ray Train's controller: puts rank 0's metrics of each report round on the queue."""

    def __init__(self, queue):
        self.queue = queue

    def after_report(self, run_context, metrics, checkpoint):
        if metrics:
            self.queue.put_nowait(dict(metrics[0]))


class ProgressPrinter:
    """Prints reported rows: a step line every ``log_every`` steps (0: none), epoch lines always.
    A step that is not after the last one seen means the workers restarted from a checkpoint."""

    def __init__(self, epochs: int, steps_per_epoch: int, rate_key: str, log_every: int = 1,
                 out: IO[str] | None = None):
        self.epochs, self.steps_per_epoch, self.rate_key, self.log_every = epochs, steps_per_epoch, rate_key, log_every
        self.out = out or sys.stdout
        self.last_step: int | None = None

    def show(self, row: dict) -> None:
        if "epoch_done" not in row:
            step = int(row["step"])
            if self.last_step is not None and step <= self.last_step:
                print(f"[train] workers restarted from the checkpoint at step {step - 1}", file=self.out, flush=True)
            self.last_step = step
            if not self.log_every or step % self.log_every:
                return
        print(progress_line(row, self.epochs, self.steps_per_epoch, self.rate_key), file=self.out, flush=True)


class DriverProgress:
    """``with DriverProgress(printer) as progress: TorchTrainer(..., run_config=RunConfig(
    callbacks=[progress.callback])).fit()``: the printer shows every report while the run goes on."""

    def __init__(self, printer: ProgressPrinter):
        from ray.util.queue import Queue

        self.printer = printer
        self.queue = Queue(actor_options={"num_cpus": 0})  # must not take a CPU the workers need
        self.callback = _ForwardReports(self.queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="train-progress", daemon=True)

    def __enter__(self) -> "DriverProgress":
        self._thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            rows = self.queue.get_nowait_batch(self.queue.qsize())  # what came after the last poll
            self.queue.shutdown()
        except Exception:
            if exc_type is None:
                raise
            rows = []  # Ray going down with the run's own error: that error is the one to show
        for row in rows:
            self.printer.show(row)

    def _pump(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                row = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue's actor is gone (Ray shutting down): the run reports why
                return
            self.printer.show(row)
