"""Probe and decode any container/codec FFmpeg reads (through PyAV's bundled FFmpeg) to 16 kHz mono."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from audiorole_ray.errors import DecodeError
from audiorole_ray.records import AudioInfo

SAMPLE_RATE = 16_000  # the project's analysis rate: VAD, embeddings, ASR, tokens, quality


@contextmanager
def _audio_stream(uri: str):
    """Open ``uri`` (local path or any fsspec URI) and yield (container, first audio stream);
    every way of failing becomes an DecodeError naming the file."""
    import av
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    size = fs.size(path) if fs.exists(path) else None
    if size == 0:
        raise DecodeError(uri, "empty file (0 bytes)")
    fobj = None
    try:
        if "://" in uri and not uri.startswith("file://"):
            # PyAV reads from a file-like object, so s3:// and friends stream without a local copy
            fobj = fsspec.open(uri, "rb").open()
            container = av.open(fobj, "r")
        else:
            container = av.open(uri.removeprefix("file://"), "r")
    except FileNotFoundError as exc:
        raise DecodeError(uri, "file not found") from exc
    except (av.error.FFmpegError, OSError) as exc:
        if fobj is not None:
            fobj.close()
        raise DecodeError(uri, f"not a readable media file ({exc})") from exc
    try:
        if not container.streams.audio:
            raise DecodeError(uri, "no audio stream")
        if container.format.name == "wav" and size:
            with fs.open(path, "rb") as f:
                _check_wav_length(uri, f.read(WAV_HEADER_BYTES), size)
        yield container, container.streams.audio[0]
    except av.error.FFmpegError as exc:
        raise DecodeError(uri, f"cannot decode audio ({exc})") from exc
    finally:
        container.close()
        if fobj is not None:
            fobj.close()


WAV_HEADER_BYTES = 1 << 16  # RIFF chunks before 'data' (fmt, LIST, bext...) fit in this


def _check_wav_length(uri: str, head: bytes, file_size: int) -> None:
    """A WAV whose data chunk declares more bytes than the file holds is truncated. FFmpeg
    decodes what is there without a word, so the header is read here."""
    import struct

    if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return  # RF64/W64 and friends: trust FFmpeg
    fmt = "<I" if head[:4] == b"RIFF" else ">I"
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack(fmt, head[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            held = file_size - (pos + 8)
            if size not in (0, 0xFFFFFFFF) and held < size:  # 0 / all ones: length left open by a streaming writer
                raise DecodeError(uri, f"truncated: the WAV header declares {size} bytes of audio, the file holds {held}")
            return
        pos += 8 + size + (size & 1)


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


def _mono_chunks(container, stream, sample_rate: int):
    """The stream decoded and resampled to mono float32 at ``sample_rate``, chunk by chunk
    (the resampler's tail is flushed after the last frame)."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1)


def probe(uri: str) -> AudioInfo:
    with _audio_stream(uri) as (container, stream):
        return _info(container, stream)


def decode(uri: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``."""
    return load(uri, sample_rate)[0]


def load(uri: str, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """Decode, plus the container's metadata, opening the file once."""
    with _audio_stream(uri) as (container, stream):
        info = _info(container, stream)
        claimed = info.duration_s
        chunks = list(_mono_chunks(container, stream, sample_rate))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise DecodeError(uri, "no audio samples (empty or silent container)")
    got = audio.size / sample_rate
    if claimed - got > TRUNCATION_TOLERANCE_S:
        raise DecodeError(uri, f"truncated: decoded {got:.2f} s of the {claimed:.2f} s its header declares")
    if not np.isfinite(audio).all():
        raise DecodeError(uri, "decoded audio has NaN/inf samples")
    return audio.astype(np.float32, copy=False), info


def load_segments(uri: str, segments: list[tuple[float, float]], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Decode only the given (start, end) second ranges, in one sequential pass.

    Sample positions are ``round(t * sample_rate)`` on the decoded stream, the same positions a
    full decode would give, so clips match the RTTM exactly. Memory holds the clips, not the
    episode: at 48 kHz a 45-minute episode would be 520 MB as float32.
    """
    bounds = [(round(s * sample_rate), round(e * sample_rate)) for s, e in segments]
    for (s, e), seg in zip(bounds, segments):
        if s < 0 or e <= s:
            raise ValueError(f"{uri}: bad segment {seg}")
    order = sorted(range(len(bounds)), key=lambda i: bounds[i])
    parts: list[list[np.ndarray]] = [[] for _ in bounds]
    pos = 0  # samples of the decoded stream seen so far
    first = 0  # index into ``order``: segments ending before ``pos`` are complete

    def take(chunk: np.ndarray) -> None:
        nonlocal pos, first
        end = pos + chunk.size
        for k in range(first, len(order)):
            i = order[k]
            s, e = bounds[i]
            if s >= end:
                break  # sorted by start: no later segment begins in this chunk
            if e > pos:
                parts[i].append(chunk[max(s - pos, 0) : min(e, end) - pos])
        while first < len(order) and bounds[order[first]][1] <= end:
            first += 1
        pos = end

    with _audio_stream(uri) as (container, stream):
        for chunk in _mono_chunks(container, stream, sample_rate):
            take(chunk)
            if first == len(order):
                break  # every segment is complete: no need to decode the rest
    clips = []
    for (s, e), p in zip(bounds, parts):
        clip = np.concatenate(p) if p else np.zeros(0, np.float32)
        # Times are rounded to the millisecond and decoders at other rates end a few samples
        # apart, so an end just past the audio is the audio's end; further is an error.
        if clip.size < e - s and (e - pos > END_SLACK_S * sample_rate or clip.size == 0):
            raise DecodeError(uri, f"segment {s / sample_rate:.3f}-{e / sample_rate:.3f} s ends past the decoded audio ({pos / sample_rate:.3f} s)")
        clips.append(clip.astype(np.float32, copy=False))
    return clips


# How far past the decoded audio a segment may end and still be cut at the audio's end.
END_SLACK_S = 0.05


def encode_flac(clip: np.ndarray, sample_rate: int) -> bytes:
    """16-bit FLAC bytes of a mono float32 clip (clipped to [-1, 1])."""
    import io

    import av

    pcm = (np.clip(clip, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=sample_rate, layout="mono")
        stream.format = "s16"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an in-memory file (e.g. a FLAC from a corpus shard) at its own rate, mono float32."""
    import io

    import av

    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = list(_mono_chunks(container, stream, rate))
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate
