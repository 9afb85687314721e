import numpy as np
import pytest
import torch

from audiorole_ray.diarize.features import fbank, num_frames

knf = pytest.importorskip("kaldi_native_fbank")


@pytest.mark.parametrize("n", [400, 16_000, 33_333])
def test_fbank_matches_kaldi(n):
    x = (np.random.default_rng(n).standard_normal(n) * 0.1).astype(np.float32)
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 80
    ref = knf.OnlineFbank(opts)
    ref.accept_waveform(16_000, x.tolist())
    ref.input_finished()
    expected = np.stack([ref.get_frame(i) for i in range(ref.num_frames_ready)])
    got = fbank(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape == (num_frames(n), 80)
    assert np.abs(got - expected).max() < 2e-3
