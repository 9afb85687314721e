"""Probe and decode any container/codec FFmpeg reads (through PyAV's bundled FFmpeg) to 16 kHz mono."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000


class AudioDecodeError(RuntimeError):
    """An episode could not be read as audio; the message names the file and the reason."""

    def __init__(self, uri: str, reason: str):
        super().__init__(f"{uri}: {reason}")
        self.uri, self.reason = uri, reason


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    codec: str


@contextmanager
def _audio_stream(uri: str):
    """Open ``uri`` (local path or any fsspec URI) and yield (container, first audio stream);
    every way of failing becomes an AudioDecodeError naming the file."""
    import av
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path) and fs.size(path) == 0:
        raise AudioDecodeError(uri, "empty file (0 bytes)")
    fobj = None
    try:
        if "://" in uri and not uri.startswith("file://"):
            # PyAV reads from a file-like object, so s3:// and friends stream without a local copy
            fobj = fsspec.open(uri, "rb").open()
            container = av.open(fobj, "r")
        else:
            container = av.open(uri.removeprefix("file://"), "r")
    except FileNotFoundError as exc:
        raise AudioDecodeError(uri, "file not found") from exc
    except (av.error.FFmpegError, OSError) as exc:
        if fobj is not None:
            fobj.close()
        raise AudioDecodeError(uri, f"not a readable media file ({exc})") from exc
    try:
        if not container.streams.audio:
            raise AudioDecodeError(uri, "no audio stream")
        yield container, container.streams.audio[0]
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(uri, f"cannot decode audio ({exc})") from exc
    finally:
        container.close()
        if fobj is not None:
            fobj.close()


def _header_duration(container, stream) -> float:
    """Duration the container claims (0.0 when it does not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # in av.time_base units (microseconds)
    return 0.0


def _info(container, stream) -> AudioInfo:
    return AudioInfo(_header_duration(container, stream), int(stream.rate or 0), int(stream.channels or 0), stream.codec_context.name)


# A file that decodes shorter than its header by more than this is reported as truncated.
TRUNCATION_TOLERANCE_S = 1.0


def probe(uri: str) -> AudioInfo:
    with _audio_stream(uri) as (container, stream):
        return _info(container, stream)


def decode(uri: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``."""
    return load(uri, sample_rate)[0]


def load(uri: str, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode, plus the container's metadata, opening the file once."""
    import av

    chunks: list[np.ndarray] = []
    with _audio_stream(uri) as (container, stream):
        info = _info(container, stream)
        claimed = info.duration_s
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(stream):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))  # flush
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise AudioDecodeError(uri, "no audio samples (empty or silent container)")
    got = audio.size / sample_rate
    if claimed - got > TRUNCATION_TOLERANCE_S:
        raise AudioDecodeError(uri, f"truncated: decoded {got:.2f} s of the {claimed:.2f} s its header declares")
    if not np.isfinite(audio).all():
        raise AudioDecodeError(uri, "decoded audio has NaN/inf samples")
    return audio.astype(np.float32, copy=False), info
