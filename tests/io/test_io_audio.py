import numpy as np
import pytest

from audiorole_ray.dummies import tone, write_audio, write_corrupt
from audiorole_ray.corpus.shards import read_shard, shard_bytes
from audiorole_ray.errors import DecodeError
from audiorole_ray.io.audio import decode, decode_bytes, encode_flac, load, load_segments, probe


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


def test_truncated_wav_is_an_error_like_other_containers(tmp_path):
    good = write_audio(tmp_path / "good.wav", tone(3.0))
    assert decode(str(good)).size == 48_000
    data = good.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="cut.wav: truncated: the WAV header declares"):
        decode(str(cut))


def test_segments_ending_at_the_end_of_every_sample_file(sample_series):
    for path in sorted(sample_series.glob("*/*")):
        full, _ = load(str(path))
        end = round(full.size / 16_000, 3)  # a turn end rounded to the millisecond, maybe past the audio
        for rate in (16_000, 24_000, 48_000):
            (clip,) = load_segments(str(path), [(end - 2.0, end)], rate)
            assert abs(clip.size - 2 * rate) <= 0.001 * rate, (path.name, rate)


def test_load_segments_matches_full_decode(sample_series):
    path = str(next((sample_series / "realcast").glob("ep02.*")))
    full, _ = load(path)
    segs = [(3.0, 4.5), (0.25, 1.0), (20.0, 35.0)]
    for clip, (s, e) in zip(load_segments(path, segs), segs):
        np.testing.assert_allclose(clip, full[round(s * 16_000) : round(e * 16_000)], atol=1e-6)
    assert load_segments(path, [(1.0, 2.0)], 48_000)[0].size == 48_000
    with pytest.raises(DecodeError, match="past the decoded audio"):
        load_segments(path, [(1e4, 1e4 + 1)])
    with pytest.raises(ValueError, match="bad segment"):
        load_segments(path, [(2.0, 1.0)])


def test_shard_round_trip(tmp_path):
    clip = np.sin(np.arange(24_000) / 10).astype(np.float32) * 0.5
    path = tmp_path / "s.tar"
    path.write_bytes(shard_bytes([("a-b_c", encode_flac(clip, 24_000), {"text": "hi"})]))
    back = read_shard(str(path))
    assert back["a-b_c"]["json"] == {"text": "hi"}
    audio, rate = decode_bytes(back["a-b_c"]["flac"])
    assert rate == 24_000 and audio.size == clip.size and np.abs(audio - clip).max() < 1e-3
    with pytest.raises(ValueError, match="must not contain"):
        shard_bytes([("bad.key", b"", {})])
