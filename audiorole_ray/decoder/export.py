"""Write a trained decoder as GLM-4-Voice-Decoder files.

``flow.pt`` is the flow module's state dict with the official names (the modules are named as
GLM-4-Voice's classes name theirs, so no renaming is needed), in float32 on the CPU, loadable
with ``AudioDecoder(config_path, flow_ckpt_path=..., hift_ckpt_path=...)`` when the model was
built with the ``glm4voice`` preset.
"""
from __future__ import annotations

from pathlib import Path

import torch


def flow_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().to("cpu", torch.float32).clone() for name, t in model.state_dict().items()}


def save_flow_pt(model: torch.nn.Module, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(flow_state_dict(model), tmp)
    tmp.replace(path)
    return path
