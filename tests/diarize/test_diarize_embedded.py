import numpy as np
import pytest

from audiorole_ray.diarize.embedded import EmbeddedBackend, EmbeddedConfig, assign_turns, merge_short_gaps
from audiorole_ray.records import Turn
from audiorole_ray.io.audio import decode


def test_windows_cover_regions():
    b = EmbeddedBackend(window_s=1.5, step_s=0.75, min_window_s=0.4)
    wins = b.windows([(0.0, 0.3), (1.0, 2.0), (3.0, 6.2)])
    assert (0, 0.0, 0.3) not in wins  # too short to embed
    assert (1, 1.0, 2.0) in wins  # shorter than a window: one window, the region itself
    third = [(s, e) for r, s, e in wins if r == 2]
    assert third[0] == (3.0, 4.5) and third[-1][1] == pytest.approx(6.2)  # last window ends on the region
    assert all(e - s == pytest.approx(1.5) for s, e in third)


def test_assign_turns_cuts_between_window_centres():
    regions = [(0.0, 3.0), (4.0, 4.3)]
    wins = [(0, 0.0, 1.5), (0, 0.75, 2.25), (0, 1.5, 3.0)]
    turns = assign_turns(regions, wins, np.array([0, 0, 1]))
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 1.875, "S0"), (1.875, 3.0, "S1"), (4.0, 4.3, "S1")]


def test_merge_short_gaps_only_joins_one_speaker_across_short_pauses():
    turns = [Turn(0.0, 1.0, "A"), Turn(1.4, 2.0, "A"), Turn(2.2, 3.0, "B"), Turn(3.6, 4.0, "B"), Turn(4.1, 5.0, "A")]
    assert merge_short_gaps(turns, 0.5) == [Turn(0.0, 2.0, "A"), Turn(2.2, 3.0, "B"), Turn(3.6, 4.0, "B"), Turn(4.1, 5.0, "A")]
    assert merge_short_gaps(turns, 0.0) == turns


@pytest.mark.parametrize("bad", [dict(step_s=0), dict(step_s=2.0), dict(cluster_threshold=2.5), dict(runtime="tpu"), dict(merge_gap_s=-1),
                                 dict(seg_batch_size=0), dict(batch_size=0)])
def test_config_validated(bad):
    with pytest.raises(ValueError):
        EmbeddedConfig(**bad)


@pytest.fixture(scope="module")
def clip(sample_series):
    return decode(str(sample_series / "sitcom" / "ep01.wav"))[: 16_000 * 40]


def test_onnx_and_torch_embeddings_agree(clip):
    pytest.importorskip("onnx")
    onnx_b, torch_b = EmbeddedBackend(runtime="onnx"), EmbeddedBackend(runtime="torch")
    onnx_b.load()
    torch_b.load()
    wins = onnx_b.windows(onnx_b.speech_regions(clip))
    a, b = onnx_b.embed(clip, wins), torch_b.embed(clip, wins)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert len(wins) > 10 and cos.min() > 0.999


def test_diarize_real_speech(clip):
    b = EmbeddedBackend()
    r = b.diarize("sitcom/ep01", clip)
    assert r.turns and all(0 <= t.start < t.end <= len(clip) / 16_000 + 1e-6 for t in r.turns)
    assert set(r.centroids) == {t.speaker for t in r.turns} == set(r.speech_s)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-6 and len(v) == 192 for v in r.centroids.values())
    assert sum(r.speech_s.values()) == pytest.approx(sum(t.duration for t in r.turns))
    assert set(b.timings()) >= {"load", "vad", "embed", "cluster"}


def test_silence_gives_no_turns():
    r = EmbeddedBackend().diarize("x", np.zeros(16_000 * 5, np.float32))
    assert r.turns == [] and r.centroids == {}


def test_campp_batch_is_small_on_a_cpu_and_larger_on_a_gpu():
    """No model is loaded: only the choice of batch (a CPU gains nothing from 64 but memory)."""
    assert EmbeddedBackend(device="cpu").campp_batch == 16
    assert EmbeddedBackend(device="cuda").campp_batch == 64
    assert EmbeddedBackend(device="cuda", batch_size=5).campp_batch == 5
