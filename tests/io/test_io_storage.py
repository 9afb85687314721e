import pytest

from audiorole_ray.dummies import tone, write_audio
from audiorole_ray.io.rttm import format_rttm, parse_rttm
from audiorole_ray.errors import InputError
from audiorole_ray.io.storage import check_writable, list_episodes, list_files, write_bytes
from audiorole_ray.records import Turn


def test_list_episodes_layout(tmp_path):
    for rel in ["s1/ep02.mp3", "s1/ep01.wav", "s2/pilot.flac"]:
        write_audio(tmp_path / rel, tone(0.5))
    (tmp_path / "s1" / "notes.txt").write_text("not audio")
    (tmp_path / "loose.wav").write_bytes(b"")  # not inside a series folder
    write_audio(tmp_path / "s2" / "extras" / "deep.wav", tone(0.5))  # too deep
    skipped = []
    eps = list_episodes(str(tmp_path), skipped)
    assert [e.episode_id for e in eps] == ["s1/ep01", "s1/ep02", "s2/pilot"]
    assert eps[0].series == "s1" and eps[0].stem == "ep01" and eps[0].uri.endswith("s1/ep01.wav")
    assert len(skipped) == 2 and "loose.wav: in the input root" in skipped[0] and "nested too deep" in skipped[1]


def test_fingerprint_changes_when_the_file_does(tmp_path):
    path = write_audio(tmp_path / "s" / "ep.wav", tone(0.5))
    before = list_episodes(str(tmp_path))[0].fingerprint
    assert before == list_episodes(str(tmp_path))[0].fingerprint
    write_audio(path, tone(0.7))
    assert list_episodes(str(tmp_path))[0].fingerprint != before


@pytest.mark.parametrize("setup,message", [("missing", "does not exist"), ("file", "is a file"), ("empty", "no episodes")])
def test_wrong_input_is_a_clear_error(tmp_path, setup, message):
    target = tmp_path / "in"
    if setup == "file":
        target.write_text("x")
    elif setup == "empty":
        target.mkdir()
    with pytest.raises(InputError, match=message):
        list_episodes(str(target))


def test_duplicate_episode_ids_rejected(tmp_path):
    write_audio(tmp_path / "s" / "ep1.wav", tone(0.5))
    write_audio(tmp_path / "s" / "ep1.flac", tone(0.5))
    with pytest.raises(InputError, match="s/ep1"):
        list_episodes(str(tmp_path))


def test_rttm_roundtrip():
    turns = [Turn(1.5, 2.25, "b"), Turn(0.0, 1.0, "a")]
    text = format_rttm("ep1", turns)
    assert text.splitlines()[0] == "SPEAKER ep1 1 0.000 1.000 <NA> <NA> a <NA> <NA>"
    assert parse_rttm(text) == {"ep1": sorted(turns)}
    with pytest.raises(ValueError, match="line 1"):
        parse_rttm("SPEAKER x 1 0.0")


def test_writes_are_atomic_and_listings_relative(tmp_path):
    assert write_bytes(str(tmp_path / "a" / "b.bin"), b"xyz") == 3
    assert list_files(str(tmp_path)) == {"a/b.bin": 3}
    assert list_files(str(tmp_path / "missing")) == {}
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_unwritable_output_is_found_before_any_work(tmp_path):
    import os
    import time

    (tmp_path / "file").write_text("x")
    t = time.monotonic()
    with pytest.raises(InputError, match="is not writable"):
        check_writable(str(tmp_path / "file" / "corpus"))  # a path under a regular file
    if os.geteuid() != 0:  # root writes through permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(InputError, match="is not writable"):
            check_writable(str(ro / "corpus"))
    assert time.monotonic() - t < 15
    check_writable(str(tmp_path / "fine"))
    assert list_files(str(tmp_path / "fine")) == {}  # the probe is gone
