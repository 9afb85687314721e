"""16-bit PCM mono WAV (stdlib ``wave``): answers of the ARP-Model, of API systems and the
audio sent to judges, local or any fsspec URI."""
from __future__ import annotations

import io
import wave

import numpy as np

from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.io.storage import write_bytes


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(uri: str, audio: np.ndarray, rate: int) -> int:
    """Write through a temporary name (see ``write_bytes``); returns the size."""
    return write_bytes(uri, wav_bytes(audio, rate))
