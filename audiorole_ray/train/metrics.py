"""Per-step training metrics: ``metrics.jsonl`` (one JSON object per step) and the loss curve.

The history travels inside every checkpoint, so after a resume the file holds each step once:
steps a killed run did after its last checkpoint are done again and written again.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence

from fsspec.core import url_to_fs

from audiorole_ray.io.storage import join, write_text

METRICS = "metrics.jsonl"
LOSS_PNG = "loss.png"


def to_jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def read_metrics(folder: str) -> list[dict]:
    fs, path = url_to_fs(join(folder, METRICS))
    if not fs.exists(path):
        return []
    with fs.open(path, "r") as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsLog:
    """Rank 0's live log: rewritten from the checkpoint's history at start, one line per step.

    Appending needs a filesystem that appends, so an ``s3://`` output gets the file at the end
    only (:func:`write_final`)."""

    def __init__(self, folder: str, history: Sequence[dict]):
        self.path = join(folder, METRICS) if "://" not in folder else None
        if self.path:
            os.makedirs(folder, exist_ok=True)
            with open(self.path, "w") as f:
                f.write(to_jsonl(history))

    def append(self, row: dict) -> None:
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")


def epoch_means(rows: Sequence[dict], key: str = "loss") -> dict[int, float]:
    """Mean of ``key`` over the steps of each epoch."""
    sums: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        sums[int(r["epoch"])].append(float(r[key]))
    return {e: sum(v) / len(v) for e, v in sorted(sums.items())}


def write_final(folder: str, rows: Sequence[dict], title: str = "") -> None:
    """``metrics.jsonl`` and ``loss.png`` in ``folder`` (local or s3://)."""
    write_text(join(folder, METRICS), to_jsonl(rows))
    if rows:
        fs, path = url_to_fs(join(folder, LOSS_PNG))
        with fs.open(path, "wb") as f:
            f.write(loss_png(rows, title))


def loss_png(rows: Sequence[dict], title: str = "") -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, [r["loss"] for r in rows], lw=0.8, alpha=0.5, label="step loss")
    means = epoch_means(rows)
    last_step = {}
    for r in rows:
        last_step[int(r["epoch"])] = r["step"]
    ax.plot([last_step[e] for e in means], list(means.values()), "o-", lw=1.5, label="epoch mean")
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r and "loss" in r]
    if val:
        ax.plot(*zip(*val), "s-", lw=1.5, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    lr_ax = ax.twinx()
    lr_ax.plot(steps, [r["lr"] for r in rows], color="grey", lw=0.8, ls="--")
    lr_ax.set_ylabel("learning rate", color="grey")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
