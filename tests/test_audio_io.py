import numpy as np
import pytest

from audiorole_ray.dummies import tone, write_audio, write_corrupt
from audiorole_ray.io.audio import DecodeError, decode, probe


@pytest.mark.parametrize(
    "name,sample_rate,channels",
    [("a.wav", 16_000, 1), ("b.flac", 44_100, 2), ("c.mp3", 22_050, 1), ("d.m4a", 44_100, 2), ("e.ogg", 16_000, 1)],
)
def test_decode_any_container_to_16k_mono(tmp_path, name, sample_rate, channels):
    path = write_audio(tmp_path / name, tone(2.0, sample_rate=sample_rate), sample_rate, channels)
    info = probe(str(path))
    assert info.sample_rate == (48_000 if name.endswith(".ogg") else sample_rate)
    assert info.channels == channels
    audio = decode(str(path))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / 16_000 - 2.0) < 0.06  # encoder padding of lossy codecs
    # a 220 Hz tone survives resampling: its spectrum peaks at 220 Hz
    spec = np.abs(np.fft.rfft(audio[4000:20000]))
    assert abs(np.argmax(spec) * 16_000 / 16_000 - 220) <= 2


@pytest.mark.parametrize("kind,reason", [("garbage", "not a readable media file"), ("empty", "empty file")])
def test_bad_files_name_the_file_and_reason(tmp_path, kind, reason):
    path = write_corrupt(tmp_path / f"{kind}.wav", kind)
    with pytest.raises(DecodeError) as err:
        decode(str(path))
    assert str(path) in str(err.value) and reason in str(err.value)


def test_truncated_file_is_an_error(tmp_path):
    good = write_audio(tmp_path / "good.flac", tone(5.0, sample_rate=44_100), 44_100, 2)
    bad = write_corrupt(tmp_path / "cut.flac", "truncated", good)
    with pytest.raises(DecodeError, match="cut.flac"):
        decode(str(bad))


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="file not found"):
        probe(str(tmp_path / "nope.wav"))
