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


# -- record builders: tests and benchmarks build records through these, not by hand ----------

def turns(*spec: tuple[float, float, str]):
    """Turns from (start, end, speaker) triples."""
    from audiorole_ray.records import Turn

    return [Turn(float(a), float(b), spk) for a, b, spk in spec]


def planned(roles: str, drops: list[str] | None = None, split: str = "train", scene_id: str = "s/e#0000",
            target: str = "s_spk00", step: float = 1.0, **fields):
    """Planned utterances of one dialogue: one per letter of ``roles`` ("ABAB"), 0.9 s long,
    ``step`` seconds apart, transcribed as "t<i>"."""
    from audiorole_ray.records import PlannedUtterance

    drops = drops or [""] * len(roles)
    return [
        PlannedUtterance(key=f"k{i}", scene_id=scene_id, target=target, index=i, role=r, start=i * step,
                         end=i * step + 0.9, speaker_id=target if r == "B" else "s_spk01",
                         speakers=[target if r == "B" else "s_spk01"], overlap_s=0.0, split=split, drop=d,
                         text=f"t{i}", **fields)
        for i, (r, d) in enumerate(zip(roles, drops))
    ]


def episode_diarization(episode_id: str, n_turns: int = 40, speakers: int = 3, dim: int = 192, seed: int = 0,
                        turn_s: float = 2.0, gap_s: float = 0.5):
    """A synthetic diarization: alternating speakers, one random unit centroid each (speaker k's
    centroid is the same in every episode of a seed, so linking finds them again)."""
    import numpy as np

    from audiorole_ray.records import EpisodeDiarization, Turn

    rng = np.random.default_rng(seed)
    base = rng.standard_normal((speakers, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    out, t = [], 0.0
    for i in range(n_turns):
        spk = f"L{(i * 7 % 5) % speakers}"
        out.append(Turn(round(t, 3), round(t + turn_s, 3), spk))
        t += turn_s + gap_s
    used = sorted({x.speaker for x in out})
    speech = {s: sum(x.duration for x in out if x.speaker == s) for s in used}
    return EpisodeDiarization(episode_id, out, {s: base[int(s[1:])].round(6).tolist() for s in used}, speech)


# -- dummy model backends: the real stages, runner and storage without any model --------------

class DummyDiarizer:
    """Turns every 2 s over the audio, alternating two local speakers (the second with less
    speech), with fixed centroids, so linking finds the same two speakers in every episode."""

    def __init__(self, model=None, device="cpu", turn_s: float = 2.0):
        self.turn_s = turn_s

    def load(self) -> None:
        pass

    def diarize(self, episode_id: str, audio):
        from audiorole_ray.io.audio import SAMPLE_RATE
        from audiorole_ray.records import EpisodeDiarization, Turn

        length = len(audio) / SAMPLE_RATE
        out, t, i = [], 0.0, 0
        while t + 0.5 < length:
            spk = "L0" if i % 3 != 1 else "L1"
            out.append(Turn(round(t, 3), round(min(t + self.turn_s, length), 3), spk))
            t += self.turn_s + 0.25
            i += 1
        speech = {s: sum(x.duration for x in out if x.speaker == s) for s in sorted({x.speaker for x in out})}
        centroids = {"L0": [1.0, 0.0, 0.0], "L1": [0.0, 1.0, 0.0]}
        return EpisodeDiarization(episode_id, out, {s: centroids[s] for s in speech}, speech)


class DummyAsr:
    """A transcript from the clip's length and energy: deterministic, different per clip."""

    def __init__(self, model=None, device="cpu"):
        pass

    def load(self) -> None:
        pass

    def transcribe(self, clips, language: str = "en") -> list[str]:
        import numpy as np

        return [f"clip of {len(c)} samples level {int(np.abs(c).mean() * 1e4)}" for c in clips]


def register_dummies() -> None:
    """Make the dummy backends available by name (``dummy``) in the registry."""
    from audiorole_ray import registry

    registry.register("diarizer", "dummy", "audiorole_ray.dummies:DummyDiarizer", embedded=True)
    registry.register("asr", "dummy", "audiorole_ray.dummies:DummyAsr", embedded=True)
