"""Corpus-quality figures: WADA-SNR, noise duration, DNSMOS P.835."""
from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from audiorole_ray import quality
from audiorole_ray.errors import MissingModelError
from audiorole_ray.io.audio import decode
from audiorole_ray.quality import (
    WADA_DB, WADA_G, DnsMos, QualityMeter, dnsmos_windows, noise_duration_s, snr_db, wada_curve,
)
from audiorole_ray.sample import SAMPLE_SERIES

SR = 16_000
EP01 = str(SAMPLE_SERIES / "sitcom" / "ep01.wav")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """First 10 s of the sample episode: real speech (allison, sheila) over a faint noise bed."""
    return decode(EP01)[:10 * SR].astype(np.float64)


@pytest.fixture(scope="module")
def dnsmos() -> DnsMos:
    pytest.importorskip("speechmos")
    m = DnsMos()
    m.load()
    return m


def white(n: int, power: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n)
    return x * np.sqrt(power / np.mean(x ** 2))


# -- SNR -------------------------------------------------------------------------------------
def test_wada_table_is_the_model_curve():
    assert np.all(np.diff(WADA_G) > 0) and WADA_DB[0] == -20 and WADA_DB[-1] == 100
    for db in (0, 25):
        assert wada_curve(db) == pytest.approx(WADA_G[db + 20], abs=2e-6)


def test_snr_tracks_known_mixtures(speech):
    # the clip already carries a noise bed (the sample's pink noise, ~21 dB under it): measure it
    # on the 1.3 s before the first word, and count it in the true SNR
    bed = np.mean(speech[: int(1.3 * SR)] ** 2)
    total = np.mean(speech ** 2)
    est, truth = [], []
    for target in (0, 5, 10, 15, 20, 30):
        noise = white(speech.size, total / 10 ** (target / 10), seed=target)
        truth.append(10 * np.log10((total - bed) / (bed + np.mean(noise ** 2))))
        est.append(snr_db((speech + noise).astype(np.float32)))
    est, truth = np.array(est), np.array(truth)
    assert np.all(np.diff(est) > 0), est  # monotone
    assert np.max(np.abs(est - truth)) < 2.0, list(zip(truth.round(1), est.round(1)))  # measured < 1.1 dB


def test_snr_edge_cases():
    assert np.isnan(snr_db(np.zeros(100, np.float32)))
    assert np.isnan(snr_db(np.zeros(0, np.float32)))
    assert snr_db(white(16_000, 0.01)) < -15  # noise alone reads as (clamped near) -20 dB
    x = white(16_000, 0.01)
    assert snr_db(x) == snr_db(10 * x)  # scale-free


# -- noise duration --------------------------------------------------------------------------
def test_noise_duration_definition():
    quiet, loud = white(SR // 2, 10 ** (-70 / 10), 1), white(SR // 2, 10 ** (-30 / 10), 2)
    clip = np.concatenate([quiet, loud, np.zeros(SR), loud]).astype(np.float32)
    no_speech = np.zeros(clip.size, bool)
    # only the two loud halves count: 1.0 s
    assert noise_duration_s(clip, speech=no_speech) == pytest.approx(1.0)
    assert noise_duration_s(clip, speech=no_speech, floor_dbfs=-80) == pytest.approx(1.5)
    # speech frames never count, however loud
    assert noise_duration_s(clip, speech=np.ones(clip.size, bool)) == 0.0
    # partial last frame: 5 ms of loud noise
    assert noise_duration_s(loud[:80].astype(np.float32), speech=np.zeros(80, bool)) == pytest.approx(0.005)
    assert noise_duration_s(np.zeros(0, np.float32)) == 0.0


def test_noise_duration_with_vad(speech):
    from audiorole_ray.diarize.models import load_silero_vad

    vad = load_silero_vad()
    s = speech.astype(np.float32)
    base = noise_duration_s(s, vad)
    # the pauses of the clip carry its noise bed (about -47 dBFS, above the -50 dB floor)
    assert 0.5 < base < 4.0
    assert noise_duration_s(s, vad, floor_dbfs=-20) == 0.0
    more = np.concatenate([s, white(2 * SR, 10 ** (-35 / 10), 3).astype(np.float32), np.zeros(SR, np.float32)])
    assert noise_duration_s(more, vad) == pytest.approx(base + 2.0, abs=0.35)


# -- DNSMOS ----------------------------------------------------------------------------------
def test_dnsmos_windows_follow_microsoft():
    counts = {s: len(dnsmos_windows(np.ones(int(s * SR), np.float32))) for s in (0.5, 2, 5, 9.01, 10, 12.5, 30)}
    # short clips double until >= 9.01 s (0.5 and 2 s -> 16 s: 7 windows); windows start every
    # second, and Microsoft's float slicing drops those starting at 7-23 s (one sample short)
    assert counts == {0.5: 7, 2: 7, 5: 1, 9.01: 1, 10: 1, 12.5: 3, 30: 7}
    assert len(dnsmos_windows(np.ones(30 * SR, np.float32), max_windows=2)) == 2
    assert dnsmos_windows(np.ones(5 * SR, np.float32)).shape == (1, 144_160)
    with pytest.raises(ValueError):
        dnsmos_windows(np.zeros(0, np.float32))


def test_dnsmos_matches_speechmos(dnsmos, speech, monkeypatch):
    """Same SIG/BAK/OVRL as speechmos.dnsmos.run (Microsoft's code). speechmos imports librosa
    for its P.808 features only: without librosa it is replaced by a stand-in and P.808 ignored."""
    pytest.importorskip("requests")
    if importlib.util.find_spec("librosa") is None:
        lib, feat = types.ModuleType("librosa"), types.ModuleType("librosa.feature")
        feat.melspectrogram = lambda y, sr, n_fft, hop_length, n_mels: np.ones((n_mels, 900), np.float32)
        lib.feature, lib.power_to_db = feat, (lambda m, ref=None: m)
        monkeypatch.setitem(sys.modules, "librosa", lib)
        monkeypatch.setitem(sys.modules, "librosa.feature", feat)
    monkeypatch.delitem(sys.modules, "speechmos.dnsmos", raising=False)
    from speechmos import dnsmos as ms

    monkeypatch.setattr(ms, "dnsmos", None)  # its cached instance may hold the stand-in
    clip = (speech[: int(4.7 * SR)] + white(int(4.7 * SR), 1e-3)).astype(np.float32)  # doubled: 1 window
    ours, ref = dnsmos(clip), ms.run(clip, SR)
    for k in ("sig", "bak", "ovrl"):
        assert ours[k] == pytest.approx(float(ref[f"{k}_mos"]), abs=1e-4)


def test_dnsmos_ranks_noise(dnsmos, speech):
    clean = dnsmos(speech.astype(np.float32))
    noisy = dnsmos((speech + white(speech.size, np.mean(speech ** 2) / 10 ** 0.5)).astype(np.float32))
    for k in ("sig", "bak", "ovrl"):
        assert 1.0 <= noisy[k] <= 5.0 and 1.0 <= clean[k] <= 5.0
    # OFFLINE-MODELS.md: a noisy clip scores OVRL ~1.7; this one at 5 dB ~2.0; the clip itself ~3.0
    assert noisy["ovrl"] < 2.4 < 2.7 < clean["ovrl"]
    assert noisy["bak"] < clean["bak"] - 1.0


# -- the meter -------------------------------------------------------------------------------
def test_quality_meter(speech):
    pytest.importorskip("speechmos")
    m = QualityMeter()
    m.load()
    out = m.measure(speech[:5 * SR].astype(np.float32))
    assert set(out) == {"snr_db", "noise_s", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}
    assert all(isinstance(v, float) for v in out.values())
    assert 15 < out["snr_db"] < 30 and 0 <= out["noise_s"] <= 5
    assert set(QualityMeter(dnsmos=False).measure(speech[:SR].astype(np.float32))) == {"snr_db", "noise_s"}
    assert m.timings()["dnsmos"] > 0


def test_missing_speechmos(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(quality.importlib.util, "find_spec",
                        lambda name, *a: None if name == "speechmos" else real(name, *a))
    with pytest.raises(MissingModelError, match="pip install speechmos"):
        QualityMeter().load()
