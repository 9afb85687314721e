"""The trainer's ColossalAI parts in one process (a 1-rank gloo group, no Ray): a checkpoint
restores model, optimizer, scheduler and counters; the LM export (full and LoRA-merged) loads
with from_pretrained."""
from __future__ import annotations

import os

import pytest
import torch

from audiorole_ray.lm.task import LMTask, lm_loss
from audiorole_ray.lm.tiny import tiny_config
from audiorole_ray.train import checkpoint as ckpt_io
from audiorole_ray.train.loop import lr_lambda
from audiorole_ray.train.plugins import make_optimizer, make_plugin


@pytest.fixture(scope="module", autouse=True)
def process_group():
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _boosted(task: LMTask):
    from colossalai.booster import Booster

    booster = Booster(plugin=make_plugin("ddp"))
    model = task.build_model(None)
    if task.lora_config() is not None:
        model = booster.enable_lora(model, lora_config=task.lora_config())
    opt = make_optimizer("ddp", task.trainable_parameters(model), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(10, 2, 0.1))
    model, opt, _, _, sched = booster.boost(model, opt, lr_scheduler=sched)
    return booster, model, opt, sched


def _batch(task: LMTask):
    ids = [[task.pad_id + 1 + i for i in range(12)], [task.pad_id + 2 + i for i in range(9)]]
    labels = [[-100] * 4 + s[4:] for s in ids]
    return task.collate({"input_ids": ids, "labels": labels})


def _step(booster, model, opt, sched, batch):
    loss, _ = lm_loss(model, batch)
    booster.backward(loss, opt)
    opt.step()
    opt.zero_grad()
    sched.step()
    return float(loss)


def test_checkpoint_round_trip(tmp_path, tiny_tokenizer):
    task = LMTask(model="tiny", tokenizer=tiny_tokenizer, tiny_config=tiny_config(tiny_tokenizer))
    booster, model, opt, sched = _boosted(task)
    batch = _batch(task)
    for _ in range(3):
        _step(booster, model, opt, sched, batch)
    state = ckpt_io.TrainState(epoch=1, epoch_step=2, step=3, history=[{"step": 3, "loss": 1.0}])
    ckpt_io.save(str(tmp_path), booster, model, opt, sched, state, is_main=True)
    next_loss = _step(booster, model, opt, sched, batch)  # what the 4th step gives

    booster2, model2, opt2, sched2 = _boosted(task)  # fresh weights, as a restarted worker has
    restored = ckpt_io.load(str(tmp_path), booster2, model2, opt2, sched2)
    assert restored == state
    assert sched2.last_epoch == 3
    assert _step(booster2, model2, opt2, sched2, batch) == pytest.approx(next_loss, rel=1e-5)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_export_loads_with_from_pretrained(tmp_path, tiny_tokenizer, lora):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    task = LMTask(model="tiny", tokenizer=tiny_tokenizer, tiny_config=tiny_config(tiny_tokenizer), lora=lora, lora_rank=4)
    booster, model, opt, sched = _boosted(task)
    batch = _batch(task)
    for _ in range(3):
        _step(booster, model, opt, sched, batch)
    with torch.no_grad():
        expect, _ = lm_loss(model, batch)
    task.export(model, booster, str(tmp_path), is_main=True)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert AutoTokenizer.from_pretrained(tmp_path).convert_tokens_to_ids("<|audio_63|>") == tiny_tokenizer.convert_tokens_to_ids("<|audio_63|>")
    with torch.no_grad():
        got, _ = lm_loss(loaded, batch)
    assert float(got) == pytest.approx(float(expect), rel=1e-4)  # the trained (and merged) weights, not fresh ones
