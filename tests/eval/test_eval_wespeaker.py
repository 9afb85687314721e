"""The paper's AP embedding (pyannote's WeSpeaker ResNet34): the backend's loading code on a tiny
randomly initialised model of the same class, saved as pyannote saves its checkpoints. Runs in
the pyannote environment (``make test-pyannote``); skipped where pyannote.audio is missing."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from audiorole_ray import registry
from audiorole_ray.errors import MissingModelError


def test_needs_a_local_model(tmp_path):
    with pytest.raises(MissingModelError):
        registry.create("speaker_embedding", "wespeaker")
    backend = registry.create("speaker_embedding", "wespeaker", model=str(tmp_path / "absent"))
    with pytest.raises(MissingModelError, match="no WeSpeaker model"):
        backend.load()


@pytest.fixture(scope="module")
def tiny_wespeaker(tmp_path_factory) -> Path:
    pytest.importorskip("pyannote.audio")
    import lightning
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    torch.manual_seed(3)
    model = WeSpeakerResNet34(num_mel_bins=8)  # same layers as the hub model, on 8 mel bins
    model.specifications = Specifications(problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=3.0)
    folder = tmp_path_factory.mktemp("wespeaker")
    trainer = lightning.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(str(folder / "pytorch_model.bin"), weights_only=True)
    return folder


def test_wespeaker_loads_a_folder_and_embeds(tiny_wespeaker):
    import torch
    from pyannote.audio import Inference, Model

    from audiorole_ray.eval.speaker import cosine

    backend = registry.create("speaker_embedding", "wespeaker", model=str(tiny_wespeaker))
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.1, 32_000).astype(np.float32)
    b = rng.normal(0, 0.1, 24_000).astype(np.float32)
    ea, eb = backend(a), backend(b)
    assert ea.shape == (256,) and np.isfinite(ea).all()
    assert cosine(ea, ea) == pytest.approx(1.0) and -1.0 <= cosine(ea, eb) <= 1.0
    # the same numbers as pyannote's own whole-clip inference of that checkpoint
    ref = Inference(Model.from_pretrained(tiny_wespeaker / "pytorch_model.bin"), window="whole")
    want = np.asarray(ref({"waveform": torch.from_numpy(a)[None], "sample_rate": 16_000})).reshape(-1)
    assert np.allclose(ea, want, atol=1e-5)
    with pytest.raises(ValueError):
        backend(np.zeros(100, np.float32))
