"""ColossalAI inside a Ray Train worker: a Booster on the process group Ray already made.

Ray Train's torch backend has called ``init_process_group`` before the loop starts, so
``colossalai.launch*`` must not run (it fails with "initialize the default process group twice");
ColossalAI's plugins use the default group as they find it.
"""
from __future__ import annotations

import torch

from audiorole_ray.errors import require

COLOSSALAI_PIP = "--no-deps colossalai==0.5.0 (then audiorole-ray[train]; see audiorole_ray/train/TRAINING.md)"


def colossalai():
    return require("colossalai", COLOSSALAI_PIP, "training with ColossalAI")


def make_plugin(name: str, precision: str = "bf16", max_norm: float = 1.0):
    colossalai()
    from colossalai.booster.plugin import GeminiPlugin, LowLevelZeroPlugin, TorchDDPPlugin

    if name == "ddp":
        return TorchDDPPlugin()
    if name == "zero2":
        return LowLevelZeroPlugin(stage=2, precision=precision, max_norm=max_norm)
    if name == "gemini":
        # static placement: parameters, gradients and optimizer states sharded over the GPUs, none
        # offloaded (the arithmetic of lm/plan.py); chunk gathers happen in forward/backward
        return GeminiPlugin(placement_policy="static", precision=precision, max_norm=max_norm)
    raise ValueError(name)


def make_optimizer(plugin: str, params, lr: float, weight_decay: float):
    if plugin == "gemini":
        # Gemini manages fp32 master weights in its own chunks and needs ColossalAI's Adam
        from colossalai.nn.optimizer import HybridAdam

        return HybridAdam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def clip_gradients(plugin: str, optimizer, max_norm: float) -> None:
    """DDP: clip here; ZeRO-2 and Gemini clip inside their optimizer (``max_norm`` of the plugin)."""
    if plugin == "ddp" and max_norm > 0:
        optimizer.clip_grad_by_norm(max_norm)
