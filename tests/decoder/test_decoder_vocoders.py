"""Mel settings against the vocoder's config; HiFi-GAN, Griffin-Lim and the HiFT stand-in."""
import sys
import textwrap

import numpy as np
import pytest
import torch

from audiorole_ray import registry
from audiorole_ray.decoder.mel import MEL, _hz_to_mel, mel_filterbank, mel_spectrogram
from audiorole_ray.errors import ConfigError, MissingModelError


def test_mel_settings_match_the_hifigan_config():
    from audiorole_ray.vocoder.hifigan import mel_config_of, package_dir, read_config

    cfg = read_config(package_dir() / "data" / "config.json")
    assert mel_config_of(cfg) == MEL
    assert (MEL.sample_rate, MEL.n_mels, MEL.hop_size, MEL.fmax) == (22050, 80, 256, 8000)


def test_filterbank_is_slaney():
    fb = mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    assert fb.shape == (80, 513) and (fb >= 0).all()
    assert _hz_to_mel(np.array([1000.0]))[0] == pytest.approx(15.0)  # Slaney: linear to 1 kHz
    assert _hz_to_mel(np.array([6400.0]))[0] == pytest.approx(42.0)  # then 27 mels per factor 6.4
    hz = np.linspace(0, 11025, 513)
    assert fb[:, hz > 8000.0 + 1e-6].max() == 0  # nothing above fmax
    peaks = hz[fb.argmax(axis=1)]
    assert np.all(np.diff(peaks) >= 0)
    # Slaney area normalisation: each triangle has height 2 / (its base in Hz), so area 1
    area = fb.sum(axis=1) * (hz[1] - hz[0])
    assert np.allclose(area[20:], 1.0, rtol=0.06)


@pytest.mark.parametrize("n", [256 * 40, 256 * 40 + 100, 5000])
def test_mel_frames_are_samples_over_hop(n):
    audio = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    assert mel_spectrogram(audio).shape == (80, n // 256)


def test_mel_resamples_other_rates():
    t = np.arange(16000) / 16000
    mel = mel_spectrogram(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    assert mel.shape == (80, 22050 // 256)
    hz = np.linspace(0, 11025, 513)
    peak_bin = int(mel[:, 10:-10].mean(dim=1).argmax())
    centre = hz[mel_filterbank(22050, 1024, 80, 0.0, 8000.0)[peak_bin].argmax()]
    assert abs(centre - 440) < 60


def harmonic(seconds=2.0, rate=22050, f0=140.0):
    t = np.arange(int(seconds * rate)) / rate
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("name,max_l1", [("hifigan", 0.6), ("griffinlim", 1.5)])
def test_vocoder_inverts_the_mel(name, max_l1):
    vocoder = registry.create("vocoder", name)
    audio = harmonic()
    mel = mel_spectrogram(audio)
    out = vocoder(mel)
    assert vocoder.sample_rate == 22050
    assert out.dtype == np.float32 and len(out) == mel.shape[1] * 256
    back = mel_spectrogram(out)
    # where the signal is (log-mel above -6), the resynthesis has the same spectrum
    loud = mel > -6
    l1 = float((back - mel).abs()[loud].mean())
    assert l1 < max_l1, l1


def test_hifigan_rejects_a_missing_checkpoint(tmp_path):
    with pytest.raises(MissingModelError):
        registry.create("vocoder", "hifigan", model=str(tmp_path / "nope.pth"))


STANDIN = '''
import torch
from torch import nn


class HiFTGenerator(nn.Module):
    """Stand-in with the official name, constructor arguments and inference signature."""

    def __init__(self, in_channels=80, base_channels=512, sampling_rate=22050, upsample_rates=(8, 8),
                 istft_params=None, f0_predictor=None, **kwargs):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.hop = 1
        for r in upsample_rates:
            self.hop *= r
        self.hop *= istft_params["hop_len"]
        self.conv_pre = nn.Conv1d(in_channels, base_channels, 7, 1, padding=3)
        self.f0_predictor = f0_predictor

    @torch.inference_mode()
    def inference(self, mel, cache_source=torch.zeros(1, 1, 0)):
        h = self.conv_pre(mel).mean(dim=1)
        speech = torch.repeat_interleave(torch.tanh(h), self.hop, dim=-1)
        return speech, torch.zeros_like(speech)[:, None]


class ConvRNNF0Predictor(nn.Module):
    def __init__(self, num_class=1, in_channels=80, cond_channels=512):
        super().__init__()
        self.classifier = nn.Linear(cond_channels, num_class)
'''

BOOM = '''
class Boom:
    def __init__(self, **kwargs):
        raise RuntimeError("the HiFT backend must not build the config's other models")
'''


@pytest.fixture
def glm4voice_standin(tmp_path):
    """A fake GLM-4-Voice checkout (cosyvoice package with the official class paths) and a
    glm-4-voice-decoder folder whose config.yaml has the official structure."""
    code = tmp_path / "GLM-4-Voice"
    (code / "cosyvoice" / "hifigan").mkdir(parents=True)
    (code / "third_party" / "Matcha-TTS").mkdir(parents=True)
    (code / "cosyvoice" / "__init__.py").write_text("")
    (code / "cosyvoice" / "hifigan" / "__init__.py").write_text("")
    (code / "cosyvoice" / "hifigan" / "generator.py").write_text(STANDIN)
    (code / "cosyvoice" / "boom.py").write_text(BOOM)
    folder = tmp_path / "glm-4-voice-decoder"
    folder.mkdir()
    (folder / "config.yaml").write_text(textwrap.dedent("""\
        sample_rate: 22050
        llm: !new:cosyvoice.boom.Boom
            size: 1
        flow: !new:cosyvoice.boom.Boom
            size: 2
        hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
            in_channels: 80
            base_channels: 16
            sampling_rate: !ref <sample_rate>
            upsample_rates: [8, 8]
            istft_params:
                n_fft: 16
                hop_len: 4
            f0_predictor: !new:cosyvoice.hifigan.generator.ConvRNNF0Predictor
                num_class: 1
                in_channels: 80
                cond_channels: 16
        """))
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("_standin_generator", code / "cosyvoice" / "hifigan" / "generator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = mod.HiFTGenerator(base_channels=16, istft_params={"n_fft": 16, "hop_len": 4},
                            f0_predictor=mod.ConvRNNF0Predictor(cond_channels=16))
    torch.save(ref.state_dict(), folder / "hift.pt")
    yield code, folder, ref
    for name in [m for m in sys.modules if m == "cosyvoice" or m.startswith("cosyvoice.")]:
        del sys.modules[name]
    for p in (str(code), str(code / "third_party" / "Matcha-TTS")):
        while p in sys.path:
            sys.path.remove(p)


def test_hift_backend_loads_through_the_official_config(glm4voice_standin):
    code, folder, ref = glm4voice_standin
    vocoder = registry.create("vocoder", "hift", model=str(folder), repo=str(code))
    assert torch.equal(vocoder.hift.conv_pre.weight, ref.conv_pre.weight)  # hift.pt was loaded
    mel = mel_spectrogram(harmonic(1.0))
    out = vocoder(mel)
    assert vocoder.sample_rate == 22050 and len(out) == mel.shape[1] * 256


def test_hift_backend_errors(tmp_path, glm4voice_standin):
    code, folder, _ = glm4voice_standin
    with pytest.raises(MissingModelError):
        registry.create("vocoder", "hift")  # no embedded weights
    with pytest.raises(MissingModelError):
        registry.create("vocoder", "hift", model=str(tmp_path), repo=str(code))  # no hift.pt
    with pytest.raises(ConfigError):
        registry.create("vocoder", "hift", model=str(folder), repo=None)


FLOW_INFERENCE = '''
import torch


class AudioDecoder:
    """Stand-in with the official constructor and offline_inference signature."""

    def __init__(self, config_path, flow_ckpt_path, hift_ckpt_path, device="cuda"):
        for p in (config_path, flow_ckpt_path, hift_ckpt_path):
            open(p, "rb").close()
        self.device = device

    def offline_inference(self, token):
        frames = int(token.shape[1] / 12.5 * 22050 / 256)
        return torch.zeros(1, frames * 256) + 0.1
'''


def test_respond_uses_glm4voice_audio_decoder(glm4voice_standin):
    """--decoder-model: the answer's speech tokens go through GLM-4-Voice's own AudioDecoder."""
    from audiorole_ray.respond.engine import Responder

    code, folder, _ = glm4voice_standin
    (code / "flow_inference.py").write_text(FLOW_INFERENCE)
    (folder / "flow.pt").write_bytes(b"")
    r = Responder("unused", decoder_model=str(folder), glm4voice_repo=str(code))
    r._load_official_decoder(str(folder), str(code))
    audio, rate = r.speak(list(range(25)))
    assert rate == 22050 and len(audio) == int(25 / 12.5 * 22050 / 256) * 256
    sys.modules.pop("flow_inference", None)
