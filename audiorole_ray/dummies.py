"""Synthetic inputs for tests and benchmarks: episode files in any container, corrupt files.

Voices here are not speech (VAD would ignore them); tests of diarization quality use the bundled
sample series, which has real speech.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def tone(duration_s: float, freq: float = 220.0, sample_rate: int = 16_000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = 16_000, channels: int = 1, codec: str | None = None) -> Path:
    """Encode mono float audio into ``path``'s container with PyAV (wav, flac, mp3, m4a, ogg, ...)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".m4a": "aac", ".ogg": "libopus", ".opus": "libopus", ".mkv": "libopus"}[path.suffix]
    layout = "mono" if channels == 1 else "stereo"
    planar = np.repeat(audio[None, :].astype(np.float32), channels, axis=0)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
    frame.sample_rate = sample_rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=48_000 if codec == "libopus" else sample_rate)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=stream.rate)
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_corrupt(path: str | Path, kind: str = "garbage", source: str | Path | None = None) -> Path:
    """``garbage``: random bytes; ``empty``: 0 bytes; ``truncated``: the first 40% of ``source``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = Path(source).read_bytes()
        path.write_bytes(data[: int(len(data) * 0.4)])
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return path
