"""The trainer's pure parts: LR schedule, settings, metrics file and loss curve, checkpoint lookup."""
from __future__ import annotations

import json

import pytest

from audiorole_ray.errors import ConfigError
from audiorole_ray.train.config import TrainConfig
from audiorole_ray.train.loop import lr_lambda
from audiorole_ray.train.metrics import METRICS, MetricsLog, epoch_means, loss_png, read_metrics, write_final
from audiorole_ray.train.runner import SNAPSHOT, latest_state


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    f = lr_lambda(total_steps=100, warmup_steps=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    values = [f(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert lr_lambda(10, 0, 0.0)(0) == pytest.approx(1.0)


@pytest.mark.parametrize("change, message", [
    ({"plugin": "fsdp"}, "--plugin"), ({"epochs": 0}, "--epochs"), ({"lr": 0}, "--lr"),
    ({"plugin": "gemini"}, "needs GPUs"), ({"plugin": "zero2", "gpus_per_worker": 0}, "needs GPUs"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(output="/m/lm", **change).validate()


def test_storage_defaults_beside_the_output(tmp_path):
    assert TrainConfig(output=str(tmp_path / "m" / "lm")).storage_path == str(tmp_path / "m" / "lm" / "_ray")
    assert TrainConfig(output="s3://b/m/lm").storage_path == "s3://b/m/lm/_ray"
    assert TrainConfig(output="x", storage="s3://b/ckpt").storage_path == "s3://b/ckpt"


def _rows(n, per_epoch):
    return [{"step": i + 1, "epoch": i // per_epoch, "loss": 10.0 - i, "lr": 1e-3, "tokens_per_s": 100.0} for i in range(n)]


def test_metrics_log_restarts_from_the_checkpoint_history(tmp_path):
    rows = _rows(6, 3)
    log = MetricsLog(str(tmp_path), rows[:4])
    log.append(rows[4])
    assert read_metrics(str(tmp_path)) == rows[:5]
    MetricsLog(str(tmp_path), rows[:3])  # a resumed run rewrites the steps its checkpoint holds
    assert read_metrics(str(tmp_path)) == rows[:3]
    assert epoch_means(rows) == {0: 9.0, 1: 6.0}


def test_final_metrics_and_png(tmp_path):
    rows = _rows(8, 4)
    write_final(str(tmp_path), rows, "t")
    lines = (tmp_path / METRICS).read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert loss_png(rows)[:4] == b"\x89PNG"


def test_latest_state_follows_ray_trains_snapshot(tmp_path):
    assert latest_state(str(tmp_path), "lm") is None
    for name, step in [("checkpoint_a", 4), ("checkpoint_b", 9), ("checkpoint_c", 12)]:
        (tmp_path / "lm" / name).mkdir(parents=True)
        (tmp_path / "lm" / name / "state.json").write_text(json.dumps({"step": step, "epoch": 1}))
    assert latest_state(str(tmp_path), "lm") is None  # no snapshot: Ray Train would start afresh
    # checkpoint_c was written but not registered when the run died: Ray continues from checkpoint_b
    (tmp_path / "lm" / SNAPSHOT).write_text(json.dumps({"latest_checkpoint_result": {"checkpoint_dir_name": "checkpoint_b"}}))
    assert latest_state(str(tmp_path), "lm")["step"] == 9


def test_driver_progress_lines():
    import io

    from audiorole_ray.train.progress import ProgressPrinter

    out = io.StringIO()
    p = ProgressPrinter(epochs=2, steps_per_epoch=3, rate_key="tokens_per_s", log_every=2, out=out)
    rows = _rows(6, 3)
    for r in rows[:3]:
        p.show(r)
    p.show({"step": 3, "epoch": 0, "epoch_done": 1, "epoch_loss": 9.0, "val_loss": 8.5})
    for r in rows[2:5]:  # a worker failed after step 3 was done: the workers restart from step 2's checkpoint
        p.show(r)
    assert out.getvalue().splitlines() == [
        "[train] epoch 1/2 step 2/3 (global 2) loss 9.0000 lr 0.001 tokens_per_s 100.0",
        "[train] epoch 1/2 done: mean loss 9.0000, val loss 8.5000",
        "[train] workers restarted from the checkpoint at step 2",
        "[train] epoch 2/2 step 1/3 (global 4) loss 7.0000 lr 0.001 tokens_per_s 100.0",
    ]
    quiet = ProgressPrinter(epochs=1, steps_per_epoch=3, rate_key="x", log_every=0, out=io.StringIO())
    for r in rows[:3]:
        quiet.show(r)
    assert quiet.out.getvalue() == ""


def _draws() -> list:
    import random

    import numpy as np
    import torch

    return [torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]]


class _StubBooster:
    """What checkpoint.save asks of a Booster, as a rank that writes no model files."""

    def save_model(self, model, path, **kw):
        pass

    def save_lr_scheduler(self, scheduler, path):
        open(path, "w").close()


class _StubOptimizer:
    def unwrap(self):
        import torch

        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_every_rank_keeps_its_random_states_in_the_checkpoint(tmp_path):
    from audiorole_ray.train import checkpoint as ckpt_io

    folders = {}
    for rank in (0, 1):
        ckpt_io.seed_rng(7, rank, 0)
        _draws()
        folders[rank] = ckpt_io.save(str(tmp_path), _StubBooster(), None, _StubOptimizer(), None, ckpt_io.TrainState(),
                                     is_main=rank == 0, rank=rank)
        folders[rank, "next"] = _draws()
    # rank 0 hands over the whole folder, rank 1 a folder of its RNG file alone (Ray Train merges them)
    assert folders[0] == str(tmp_path) and {"state.json", "rng_0.pt"} <= {p.name for p in tmp_path.iterdir()}
    assert [p.name for p in (tmp_path / "rank1").iterdir()] == ["rng_1.pt"]
    (tmp_path / "rank1" / "rng_1.pt").rename(tmp_path / "rng_1.pt")  # as Ray Train's checkpoint folder holds it
    assert folders[0, "next"] != folders[1, "next"]  # each rank draws its own numbers
    for rank in (1, 0):
        ckpt_io.seed_rng(99, 5, 5)
        assert ckpt_io.load_rng(str(tmp_path), rank)
        assert _draws() == folders[rank, "next"]  # torch, numpy and random continue where they were saved
    assert not ckpt_io.load_rng(str(tmp_path), 2)  # a rank the run did not have: the caller seeds it
    ckpt_io.seed_rng(7, 1, 0)
    first = _draws()
    ckpt_io.seed_rng(7, 1, 0)
    assert _draws() == first and first != _draws()
