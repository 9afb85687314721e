"""``style_sim``: our offline stand-in for CP. It is NOT the paper's CP and no judge is involved.

CP asks an audio LLM whether an answer has the character's speaking style. No audio-capable LLM
ships its weights on PyPI, so offline we measure what can be measured from the signal: prosody.
Six statistics of a clip,

- pitch: median F0 (semitones re 100 Hz) and its spread (std in semitones), over voiced frames;
- rate: syllable nuclei per second of speech (peaks of the 300-2500 Hz band envelope);
- pauses: share of the clip's span that is pause, and the mean pause length;
- dynamics: std of the frame level (dB) over speech,

are compared with the same statistics of the character's reference clips (its training-split
answers): ``z_k = (x_k - mean_k) / max(std_k, floor_k)`` and
``style_sim = exp(-mean(z_k^2) / 2)``, in (0, 1]; 1 is the character's typical prosody. Pitch
carries voice identity too, so it overlaps AP; pauses, rate and dynamics do not.
"""
from __future__ import annotations

import numpy as np

from audiorole_ray.io.audio import SAMPLE_RATE
from audiorole_ray.masks import runs as mask_runs

FEATURES = ("f0_median_st", "f0_spread_st", "syllable_rate", "pause_ratio", "pause_mean_s", "level_spread_db")
# floors of the reference spread, so a very regular character does not make every answer an outlier
FLOORS = {"f0_median_st": 1.0, "f0_spread_st": 0.5, "syllable_rate": 0.5, "pause_ratio": 0.05,
          "pause_mean_s": 0.05, "level_spread_db": 1.0}
FRAME = 640  # 40 ms: two periods of 50 Hz
HOP = 160  # 10 ms
F0_MIN, F0_MAX = 60.0, 400.0
SPEECH_DB = -30.0  # frames within 30 dB of the clip's loud frames are speech
FLOOR_DB = -60.0  # ... and above -60 dBFS: digital silence is never speech
MIN_PAUSE_S = 0.15


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if x.size < size:
        x = np.pad(x, (0, size - x.size))
    n = 1 + (x.size - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def pitch(x: np.ndarray, sr: int = SAMPLE_RATE, threshold: float = 0.15) -> np.ndarray:
    """F0 per 10 ms frame by YIN's cumulative mean normalised difference; NaN where unvoiced."""
    frames = _frames(x.astype(np.float64), FRAME, HOP)
    frames = frames - frames.mean(1, keepdims=True)
    lag_min, lag_max = int(sr / F0_MAX), int(sr / F0_MIN)
    w = FRAME - lag_max  # integration window that every lag can use
    n_fft = 1 << int(np.ceil(np.log2(FRAME + w)))
    spec = np.fft.rfft(frames, n_fft)
    # r[t, tau] = sum_{j<w} x[j] x[j+tau]: cross-correlation of the first w samples with the frame
    head = np.fft.rfft(frames[:, :w], n_fft)
    r = np.fft.irfft(np.conj(head) * spec, n_fft)[:, : lag_max + 1]
    sq = frames**2
    csum = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(sq, 1)], 1)
    energy_head = csum[:, w] - csum[:, 0]
    lags = np.arange(lag_max + 1)
    energy_lag = csum[:, lags + w] - csum[:, lags]
    d = energy_head[:, None] + energy_lag - 2 * r
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], 1) / np.arange(1, lag_max + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    f0 = np.full(len(frames), np.nan)
    for t in range(len(frames)):
        c = cmnd[t, lag_min : lag_max + 1]
        below = np.flatnonzero(c < threshold)
        if below.size == 0:
            continue
        i = below[0]
        while i + 1 < c.size and c[i + 1] < c[i]:  # walk down to the local minimum
            i += 1
        tau = i + lag_min
        if 0 < i < c.size - 1:  # parabolic refinement
            a, b, cc = c[i - 1], c[i], c[i + 1]
            denom = a - 2 * b + cc
            tau = tau + (0.5 * (a - cc) / denom if denom > 0 else 0.0)
        f0[t] = sr / tau
    return f0


def _level_db(x: np.ndarray) -> np.ndarray:
    frames = _frames(x.astype(np.float64), 400, HOP)
    return 10 * np.log10((frames**2).mean(1) + 1e-10)


def _band_envelope(x: np.ndarray, sr: int) -> np.ndarray:
    """300-2500 Hz energy per 10 ms frame, smoothed over ~50 ms: one hump per syllable."""
    frames = _frames(x.astype(np.float64), 400, HOP) * np.hanning(400)
    spec = np.abs(np.fft.rfft(frames, 512)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / sr)
    band = spec[:, (freqs >= 300) & (freqs <= 2500)].sum(1)
    env = 10 * np.log10(band + 1e-10)
    k = np.hanning(7)
    return np.convolve(env, k / k.sum(), mode="same")


def features(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """The six prosodic statistics of a clip (see the module doc)."""
    if x.size < sr // 2:
        raise ValueError(f"clip too short for prosody statistics ({x.size / sr:.2f} s)")
    level = _level_db(x)
    loud = np.percentile(level, 95)
    speech = level > max(loud + SPEECH_DB, FLOOR_DB)
    runs = mask_runs(speech)
    if not runs:
        raise ValueError("no speech frames")
    first, last = runs[0][0], runs[-1][1]
    span = max(last - first, 1)
    pauses = [(b - a) * HOP / sr for (_, a), (b, _) in zip(runs[:-1], runs[1:]) if (b - a) * HOP / sr >= MIN_PAUSE_S]
    speech_s = speech.sum() * HOP / sr

    env = _band_envelope(x, sr)
    n = min(env.size, speech.size)
    env, sp = env[:n], speech[:n]
    # syllable nuclei: local maxima of the envelope in speech, at least 3 dB above the dip before
    peaks = 0
    last_min = np.inf
    for t in range(1, n - 1):
        last_min = min(last_min, env[t])
        if sp[t] and env[t] >= env[t - 1] and env[t] > env[t + 1] and env[t] - last_min >= 3.0:
            peaks += 1
            last_min = env[t]

    f0 = pitch(x, sr)
    m = min(f0.size, speech.size)
    voiced = f0[:m][speech[:m] & np.isfinite(f0[:m])]
    if voiced.size < 5:
        raise ValueError("too few voiced frames for pitch statistics")
    st = 12 * np.log2(voiced / 100.0)
    return {
        "f0_median_st": float(np.median(st)),
        "f0_spread_st": float(np.std(st)),
        "syllable_rate": float(peaks / max(speech_s, 1e-3)),
        "pause_ratio": float(sum(pauses) / (span * HOP / sr)),
        "pause_mean_s": float(np.mean(pauses)) if pauses else 0.0,
        "level_spread_db": float(np.std(level[speech])),
    }


def profile(clips_features: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """A character's reference: mean and std of each statistic over its reference clips."""
    if not clips_features:
        raise ValueError("no reference clips")
    out = {}
    for k in FEATURES:
        v = np.array([f[k] for f in clips_features], np.float64)
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0}
    return out


def similarity(feats: dict[str, float], ref: dict[str, dict[str, float]]) -> float:
    z = [(feats[k] - ref[k]["mean"]) / max(ref[k]["std"], FLOORS[k]) for k in FEATURES]
    return float(np.exp(-np.mean(np.square(z)) / 2))


class StyleSimilarity:
    """The ``style`` backend of kind ``cp_standin``: prosody against the character's profile."""

    metric = "style_sim"
    label = "CP stand-in: prosodic style similarity to the character's reference clips (0-1), not a judge"

    def __init__(self, model: str | None = None, device: str = "cpu"):
        self.model, self.device = model, device
        self.load_s = 0.0

    def describe(self) -> dict:
        return {"backend": "style", "features": list(FEATURES), "scale": "0-1"}

    def load(self) -> None:
        pass

    def features(self, audio: np.ndarray) -> dict[str, float]:
        return features(audio)

    def __call__(self, audio: np.ndarray, reference: dict[str, dict[str, float]]) -> float:
        return similarity(features(audio), reference)
