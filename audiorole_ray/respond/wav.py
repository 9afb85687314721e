"""16-bit PCM WAV writing (stdlib ``wave``), local or any fsspec URI."""
from __future__ import annotations

import io
import wave

import fsspec
import numpy as np


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(uri: str, audio: np.ndarray, rate: int) -> None:
    fs, path = fsspec.core.url_to_fs(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(wav_bytes(audio, rate))
