"""Corpus-quality figures for one clip (SPEC §1 step 9): blind SNR, noise duration, DNSMOS P.835.

Every function here takes 16 kHz mono float32 (the corpus rate), full scale = 1.0.

- :func:`snr_db`: WADA-SNR (Kim & Stern, Interspeech 2008), a blind estimate from one clip.
- :func:`noise_duration_s`: seconds that are not speech (silero VAD) yet carry sound above a
  level floor.
- :class:`DnsMos`: DNSMOS P.835 (SIG, BAK, OVRL), Microsoft's ONNX model as shipped in the
  ``speechmos`` wheel, run with onnxruntime exactly as Microsoft's ``dnsmos_local.py``.
- :class:`QualityMeter`: all of the above for a clip, as one dict.
"""
from __future__ import annotations

import importlib.util
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.audio import SAMPLE_RATE


# --------------------------------------------------------------------------------------------
# WADA-SNR
# --------------------------------------------------------------------------------------------
# G(SNR) = log E|z| - E log|z| for z = speech + noise, speech amplitude Gamma-distributed with
# shape 0.4 (random sign), noise Gaussian, at SNR = -20..100 dB in 1 dB steps. Computed by
# wada_curve() below (rounded to 6 decimals); it agrees within 0.001 (below 25 dB) and 0.006
# (above) with the table distributed with the usual WADA-SNR ports.
WADA_ALPHA = 0.4
WADA_DB = np.arange(-20, 101, dtype=np.float64)
WADA_G = np.array([
    0.409434, 0.409459, 0.409497, 0.409555, 0.409643, 0.409776, 0.409973, 0.410263, 0.410685, 0.411291,
    0.412146, 0.413337, 0.414967, 0.417161, 0.420063, 0.423835, 0.428650, 0.434687, 0.442123, 0.451123,
    0.461832, 0.474362, 0.488789, 0.505144, 0.523416, 0.543544, 0.565426, 0.588925, 0.613872, 0.640077,
    0.667337, 0.695441, 0.724181, 0.753355, 0.782774, 0.812262, 0.841660, 0.870828, 0.899643, 0.928001,
    0.955814, 0.983009, 1.009529, 1.035330, 1.060376, 1.084646, 1.108124, 1.130802, 1.152680, 1.173761,
    1.194053, 1.213570, 1.232324, 1.250334, 1.267618, 1.284197, 1.300090, 1.315320, 1.329910, 1.343880,
    1.357254, 1.370053, 1.382300, 1.394015, 1.405219, 1.415934, 1.426178, 1.435972, 1.445333, 1.454281,
    1.462832, 1.471004, 1.478813, 1.486274, 1.493403, 1.500213, 1.506720, 1.512936, 1.518873, 1.524545,
    1.529963, 1.535138, 1.540081, 1.544803, 1.549312, 1.553620, 1.557733, 1.561662, 1.565415, 1.568999,
    1.572422, 1.575691, 1.578813, 1.581795, 1.584642, 1.587362, 1.589959, 1.592440, 1.594809, 1.597071,
    1.599232, 1.601295, 1.603265, 1.605147, 1.606945, 1.608661, 1.610300, 1.611865, 1.613360, 1.614788,
    1.616151, 1.617453, 1.618697, 1.619884, 1.621018, 1.622101, 1.623136, 1.624124, 1.625067, 1.625968,
    1.626828,
])


def wada_curve(snr: float, nodes: int = 1001) -> float:
    """G(snr) of the WADA model, by quadrature (how :data:`WADA_G` was made; ~0.2 s a point).

    The speech amplitude g ~ Gamma(0.4, 1) is integrated over its quantiles (Gauss-Legendre,
    nodes crowded towards 0 where the density is singular). Given g, |g + n| with
    n ~ N(0, s^2) is folded-normal: E|z| has a closed form, and E log|z| follows from
    (z/s)^2 being noncentral chi-square with one degree of freedom, a Poisson(l/2) mixture of
    central chi-squares: E ln = ln 2 + sum_j P(j) digamma(1/2 + j) (asymptotic series for large
    g/s).
    """
    from scipy import special, stats

    sigma = np.sqrt(WADA_ALPHA * (WADA_ALPHA + 1) / 10 ** (snr / 10))  # E[g^2] = a(a+1)
    v, w = special.roots_legendre(nodes)
    v, w = (v + 1) / 2, w / 2
    u, wu = v ** 8, w * 8 * v ** 7  # u in (0, 1), crowded towards 0
    g = stats.gamma.ppf(u, WADA_ALPHA)
    r = g / sigma
    mean_abs = sigma * np.sqrt(2 / np.pi) * np.exp(-r ** 2 / 2) + g * (1 - 2 * stats.norm.cdf(-r))
    elog = np.empty_like(g)
    big = r > 30
    s = 1 / r[big]
    elog[big] = np.log(g[big]) - s ** 2 / 2 - 3 * s ** 4 / 4 - 15 * s ** 6 / 6
    lam = r[~big] ** 2 / 2
    j = np.arange(800)[:, None]
    pois = np.exp(-lam + j * np.log(np.maximum(lam, 1e-300)) - special.gammaln(j + 1))
    pois[0, lam == 0] = 1.0
    elog[~big] = np.log(sigma) + 0.5 * (np.log(2) + (pois * special.digamma(0.5 + j)).sum(0))
    return float(np.log((wu * mean_abs).sum()) - (wu * elog).sum())


def snr_db(clip: np.ndarray) -> float:
    """Blind SNR of one clip in dB, by WADA-SNR (Kim & Stern 2008).

    Why WADA: it needs no VAD and no noise-only stretch, works on short clips, and is the blind
    estimator corpus papers usually report. It models the clean speech amplitude as
    Gamma-distributed (shape 0.4) and the noise as Gaussian; the statistic
    G = log(mean|x|) - mean(log|x|) rises with the SNR (:data:`WADA_G`), and is read back to dB
    by linear interpolation, clamped to [-20, 100] dB.

    Measured on the sample series' real speech plus white noise at 0-30 dB: within about 1 dB
    of the true SNR (tests/test_quality.py). Limits: the noise is assumed stationary and
    Gaussian-like (babble or music read as speech, i.e. as higher SNR); exact digital silence
    (runs of 0.0 samples) reads as very clean, as in every WADA implementation. The same goes
    for DeepFilterNet output: with its default attenuation limit (100 dB) the pauses come out
    near digital silence and the estimate saturates at the 100 dB end of the table (measured:
    a 5 dB noisy clip reads 4.8 dB before and 100 dB after; with ``atten_lim=20``, 34 dB).
    To compare with a corpus' reported SNR, measure the audio before enhancement. NaN for an
    empty or all-zero clip.
    """
    x = np.abs(np.asarray(clip, dtype=np.float64).reshape(-1))
    peak = x.max() if x.size else 0.0
    if peak <= 0 or not np.isfinite(peak):
        return float("nan")
    x = np.maximum(x / peak, 1e-10)
    g = np.log(max(x.mean(), 1e-10)) - np.log(x).mean()
    return float(np.interp(g, WADA_G, WADA_DB))  # np.interp clamps to the ends of the table


# --------------------------------------------------------------------------------------------
# Noise duration
# --------------------------------------------------------------------------------------------
def speech_mask(clip: np.ndarray, vad, threshold: float = 0.5) -> np.ndarray:
    """Per-sample True where silero VAD (with its default smoothing) finds speech."""
    import torch
    from silero_vad import get_speech_timestamps

    mask = np.zeros(len(clip), bool)
    if len(clip) == 0:
        return mask
    stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)), vad,
                                   threshold=threshold, sampling_rate=SAMPLE_RATE)
    for s in stamps:
        mask[s["start"]: s["end"]] = True
    return mask


def noise_duration_s(clip: np.ndarray, vad=None, floor_dbfs: float = -50.0, frame_s: float = 0.01,
                     speech: np.ndarray | None = None) -> float:
    """Seconds of audible non-speech in a clip.

    Definition: the clip is cut into ``frame_s`` frames (10 ms); a frame counts as noise when
    none of its samples is speech according to silero VAD (``get_speech_timestamps`` with its
    defaults: threshold 0.5, 30 ms padding) and its RMS is above ``floor_dbfs`` (-50 dB re full
    scale 1.0). So pauses filled with background noise, music or effects count; digital silence
    and very quiet room tone do not; the speech itself never does, however noisy. The last,
    partial frame counts in proportion to its length.

    ``vad``: a loaded silero model (:func:`audiorole_ray.diarize.models.load_silero_vad`),
    loaded here when None; ``speech``: a per-sample speech mask instead of running the VAD.
    """
    x = np.asarray(clip, dtype=np.float32).reshape(-1)
    if speech is not None and len(speech) != x.size:
        raise ValueError(f"speech mask has {len(speech)} samples for a clip of {x.size}")
    if x.size == 0:
        return 0.0
    if speech is None:
        if vad is None:
            from audiorole_ray.diarize.models import load_silero_vad

            vad = load_silero_vad()
        speech = speech_mask(x, vad)
    hop = max(1, int(round(frame_s * SAMPLE_RATE)))
    n = -(-x.size // hop)
    pad = n * hop - x.size
    frames = np.pad(x.astype(np.float64), (0, pad)).reshape(n, hop)
    lengths = np.full(n, hop)
    lengths[-1] = hop - pad
    rms = np.sqrt((frames ** 2).sum(1) / lengths)
    loud = rms > 10 ** (floor_dbfs / 20)
    has_speech = np.pad(np.asarray(speech, bool), (0, pad)).reshape(n, hop).any(1)
    return float(lengths[loud & ~has_speech].sum() / SAMPLE_RATE)


# --------------------------------------------------------------------------------------------
# DNSMOS P.835
# --------------------------------------------------------------------------------------------
DNSMOS_INPUT_S = 9.01  # Microsoft's INPUT_LENGTH
# Microsoft's published calibration (dnsmos_local.py, non-personalised model), raw -> MOS
_POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_POLY_OVRL = np.poly1d([-0.06766283, 1.11546468, 0.04602535])
SPEECHMOS_HINT = "pip install speechmos==0.0.1.1"


def dnsmos_model_path() -> Path:
    """``sig_bak_ovr.onnx`` inside the speechmos wheel, found without importing speechmos
    (its ``dnsmos`` module imports librosa and requests, which we do not need)."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"DNSMOS P.835 uses the ONNX model in the 'speechmos' wheel: {SPEECHMOS_HINT}")
    path = Path(spec.submodule_search_locations[0]) / "dnsmos_models" / "sig_bak_ovr.onnx"
    if not path.is_file():
        raise MissingModelError(f"DNSMOS model missing from the speechmos install: {path} ({SPEECHMOS_HINT})")
    return path


def dnsmos_windows(clip: np.ndarray, fs: int = SAMPLE_RATE, max_windows: int | None = None) -> np.ndarray:
    """The 9.01 s windows DNSMOS scores, one per row, exactly as Microsoft's dnsmos_local.py:
    a clip shorter than 9.01 s is doubled (whole copies) until it is not; windows start every
    1 s; ``floor(duration) - 9.01 + 1`` of them (truncated), dropping any that come out one
    sample short from the float arithmetic of the slice bounds (it happens to those starting
    at 7-23 s). So a 1-2 s clip (doubled to 16 s) is scored on 7 windows, a 5 s or a 10 s clip
    on one, a 30 s clip on 7.

    ``max_windows``: keep at most this many, evenly spaced (first and last kept); the cost is
    one model run per window (~1 s CPU). None: all of them, as Microsoft does.
    """
    audio = np.asarray(clip, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise ValueError("DNSMOS needs a non-empty clip")
    len_samples = int(DNSMOS_INPUT_S * fs)
    while len(audio) < len_samples:
        audio = np.append(audio, audio)
    num_hops = int(np.floor(len(audio) / fs) - DNSMOS_INPUT_S) + 1
    segs = [audio[int(i * fs): int((i + DNSMOS_INPUT_S) * fs)] for i in range(num_hops)]
    segs = [s for s in segs if len(s) >= len_samples]
    if max_windows is not None and len(segs) > max_windows:
        keep = np.unique(np.linspace(0, len(segs) - 1, max(1, max_windows)).round().astype(int))
        segs = [segs[i] for i in keep]
    return np.stack(segs).astype(np.float32)


class DnsMos:
    """DNSMOS P.835 (SIG, BAK, OVRL on 1-5) of 16 kHz clips, on onnxruntime with ``threads``
    intra-op threads (1: one core per worker). P.808 MOS is not computed (its features need
    librosa). ``batch``: windows scored per onnxruntime call. ``max_windows``: see
    :func:`dnsmos_windows` (None: every window, Microsoft's numbers; 1-3 bounds the cost of
    short and long clips alike, at the price of comparability)."""

    def __init__(self, threads: int = 1, batch: int = 8, max_windows: int | None = None):
        self.threads = threads
        self.batch = batch
        self.max_windows = max_windows
        self._session = None
        self._times: dict[str, float] = defaultdict(float)

    def load(self) -> None:
        t = time.perf_counter()
        path = dnsmos_model_path()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingModelError("DNSMOS runs on onnxruntime: pip install onnxruntime") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._times["load"] += time.perf_counter() - t

    def __call__(self, clip: np.ndarray) -> dict[str, float]:
        if self._session is None:
            self.load()
        t = time.perf_counter()
        windows = dnsmos_windows(clip, max_windows=self.max_windows)
        raw = np.concatenate([self._session.run(None, {self._input: windows[i: i + self.batch]})[0]
                              for i in range(0, len(windows), self.batch)])
        out = {
            "sig": float(np.mean(_POLY_SIG(raw[:, 0]))),
            "bak": float(np.mean(_POLY_BAK(raw[:, 1]))),
            "ovrl": float(np.mean(_POLY_OVRL(raw[:, 2]))),
        }
        self._times["dnsmos"] += time.perf_counter() - t
        return out

    def timings(self) -> dict[str, float]:
        return dict(self._times)


# --------------------------------------------------------------------------------------------
class QualityMeter:
    """All quality figures of a 16 kHz clip: ``measure(clip)`` -> ``{"snr_db", "noise_s",
    "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}`` (floats). Load once per worker.

    ``dnsmos=False`` skips DNSMOS (the dict then has only ``snr_db`` and ``noise_s``);
    ``dnsmos_max_windows`` caps its cost per clip (see :func:`dnsmos_windows`).
    """

    def __init__(self, dnsmos: bool = True, floor_dbfs: float = -50.0, threads: int = 1,
                 dnsmos_max_windows: int | None = None):
        self.floor_dbfs = floor_dbfs
        self._dnsmos = DnsMos(threads=threads, max_windows=dnsmos_max_windows) if dnsmos else None
        self._vad = None
        self._times: dict[str, float] = defaultdict(float)

    def load(self) -> None:
        t = time.perf_counter()
        from audiorole_ray.diarize.models import load_silero_vad

        if self._dnsmos is not None:
            self._dnsmos.load()
        self._vad = load_silero_vad()
        self._times["load"] += time.perf_counter() - t

    def measure(self, clip16k: np.ndarray) -> dict[str, float]:
        if self._vad is None:
            self.load()
        x = np.asarray(clip16k, dtype=np.float32).reshape(-1)
        t = time.perf_counter()
        out = {"snr_db": snr_db(x), "noise_s": noise_duration_s(x, self._vad, self.floor_dbfs)}
        self._times["snr_noise"] += time.perf_counter() - t
        if self._dnsmos is not None:
            mos = self._dnsmos(x) if x.size else {"sig": float("nan"), "bak": float("nan"), "ovrl": float("nan")}
            out.update({f"dnsmos_{k}": v for k, v in mos.items()})
        return out

    def timings(self) -> dict[str, float]:
        t = dict(self._times)
        if self._dnsmos is not None:
            t["dnsmos"] = self._dnsmos.timings().get("dnsmos", 0.0)
        return t
