"""The decoder as a task of the shared Ray Train + ColossalAI trainer (``audiorole_ray.train``)."""
from __future__ import annotations

import json

import torch

from audiorole_ray.decoder.data import collate, iter_rows
from audiorole_ray.decoder.mel import MEL
from audiorole_ray.train.task import TrainTask, WorkerContext

FLOW_PT = "flow.pt"
DECODER_JSON = "decoder.json"


class DecoderTask(TrainTask):
    name = "decoder"
    unit = "frames"

    def __init__(self, config: dict, preset: str, tokenizer: dict, seed: int = 0, mel_mean: list | None = None):
        self.config, self.preset, self.tokenizer, self.seed = config, preset, tokenizer, seed
        self.mel_mean = mel_mean  # per-bin mean log-mel of the training clips

    def build_model(self, ctx: WorkerContext):
        from audiorole_ray.decoder.presets import build_flow

        torch.manual_seed(self.seed)  # every rank starts from the same weights
        model = build_flow(self.config)
        if self.mel_mean is not None:
            init_output_bias(model, self.mel_mean)
        return model.to(ctx.device)

    def collate(self, batch):
        return collate(iter_rows(batch))

    def loss(self, model, batch):
        loss = model(batch["tokens"], batch["token_len"], batch["mel"], batch["mel_len"])
        return loss, int(batch["mel_len"].sum())

    def throughput_units(self, batch) -> int:
        return int(batch["mel_len"].sum())

    def export(self, model, booster, directory: str, is_main: bool) -> None:
        """``flow.pt`` (the flow's state dict; GLM-4-Voice's names) and ``decoder.json``."""
        if not is_main:
            return
        inner = model.unwrap() if hasattr(model, "unwrap") else model
        write_decoder(inner, directory, self.preset, self.config, self.tokenizer)


def write_decoder(model, directory: str, preset: str, config: dict, tokenizer: dict) -> None:
    """A decoder folder: ``flow.pt`` + ``decoder.json`` (what :func:`load_flow_decoder` reads)."""
    from pathlib import Path

    from audiorole_ray.decoder.export import save_flow_pt

    Path(directory).mkdir(parents=True, exist_ok=True)
    save_flow_pt(model, f"{directory}/{FLOW_PT}")
    meta = {"format": "audiorole-flow-decoder", "preset": preset, "config": config, "mel": MEL.to_dict(),
            "tokenizer": tokenizer, "parameters": sum(p.numel() for p in model.parameters())}
    with open(f"{directory}/{DECODER_JSON}", "w") as f:
        json.dump(meta, f, indent=2)


def init_output_bias(model, mel_mean) -> None:
    """Start the estimator's output bias at the data's mean log-mel. The velocity target
    ``x1 - (1 - s) z`` has the data's mean (the noise has none), and log-mels sit around -5 to
    -8: from a zero bias, most of the first hundreds of steps would go into learning that offset."""
    with torch.no_grad():
        model.decoder.estimator.final_proj.bias.copy_(torch.as_tensor(mel_mean, dtype=torch.float32))
