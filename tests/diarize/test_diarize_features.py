import numpy as np
import pytest
import torch

from audiorole_ray.diarize.features import fbank, num_frames


@pytest.mark.parametrize("n", [400, 16_000, 33_333])
def test_fbank_matches_kaldi(n):
    knf = pytest.importorskip("kaldi_native_fbank")
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


@pytest.mark.parametrize("block", [1, 7, 100])
def test_fbank_in_blocks_equals_all_at_once(block):
    """Long episodes are done a block of frames at a time (memory); the frames must not change,
    block edges included (tiny float differences aside from the matmul's blocking)."""
    x = torch.from_numpy((np.random.default_rng(5).standard_normal(48_123) * 0.1).astype(np.float32))
    whole = fbank(x, block_frames=10**9)
    parts = fbank(x, block_frames=block)
    assert parts.shape == whole.shape == (num_frames(48_123), 80)
    assert torch.allclose(parts, whole, atol=1e-4, rtol=0)
