"""The output lock: release removes the lock file, and ``_state/`` when that leaves it empty (a
run that failed up front leaves no empty folder), never a ``_state/`` that holds markers."""
import pytest

from audiorole_ray.errors import ConfigError
from audiorole_ray.io.storage import check_writable
from audiorole_ray.pipeline.lock import OutputLock


def test_release_removes_the_empty_state_folder(tmp_path):
    out = tmp_path / "out"
    with OutputLock(str(out)):
        assert (out / "_state" / "lock.json").exists()
    assert out.is_dir() and not (out / "_state").exists()


def test_a_run_failing_up_front_leaves_no_state(tmp_path):
    """As a job's main: the writable check (its probe leaves no _state/), the lock, a failure."""
    out = tmp_path / "out"
    check_writable(str(out))
    assert out.is_dir() and not (out / "_state").exists()
    with pytest.raises(ConfigError), OutputLock(str(out)):
        raise ConfigError("failed before any work")
    assert out.is_dir() and not (out / "_state").exists()


def test_release_keeps_a_state_folder_with_markers(tmp_path):
    out = tmp_path / "out"
    marker = out / "_state" / "tokenized" / "sitcom" / "ep01.json"
    with OutputLock(str(out)):
        marker.parent.mkdir(parents=True)
        marker.write_text("{}")
    assert marker.exists() and not (out / "_state" / "lock.json").exists()


def test_a_nested_lock_leaves_the_state_to_the_outer_one(tmp_path):
    out = tmp_path / "out"
    with OutputLock(str(out)):
        with OutputLock(str(out)):  # the job inside the CLI: same process
            pass
        assert (out / "_state" / "lock.json").exists()
    assert not (out / "_state").exists()

