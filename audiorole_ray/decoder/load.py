"""Load a trained decoder (``MODEL/decoder/``: ``decoder.json`` + ``flow.pt``)."""
from __future__ import annotations

import io
import json

import torch
from fsspec.core import url_to_fs

from audiorole_ray.decoder.task import DECODER_JSON, FLOW_PT
from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.storage import join


def load_flow_decoder(decoder_dir: str, device: str = "cpu"):
    """(FlowDecoder in eval mode, its decoder.json)."""
    from audiorole_ray.decoder.presets import build_flow

    fs, meta_path = url_to_fs(join(decoder_dir, DECODER_JSON))
    if not fs.exists(meta_path):
        raise MissingModelError(f"no trained decoder at {decoder_dir} (no {DECODER_JSON}): run jobs/train_decoder.py")
    with fs.open(meta_path) as f:
        meta = json.load(f)
    with fs.open(url_to_fs(join(decoder_dir, FLOW_PT))[1], "rb") as f:
        state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
    model = build_flow(meta["config"])
    model.load_state_dict(state, strict=True)
    return model.eval().to(device), meta
