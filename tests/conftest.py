import os

import pytest

# keep tests on one thread per process: the CI machine has 2 cores and Ray workers share them
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def sample_series():
    from audiorole_ray.sample import SAMPLE_SERIES

    if not any(SAMPLE_SERIES.glob("*/*")):
        pytest.fail(f"bundled sample series missing at {SAMPLE_SERIES}")
    return SAMPLE_SERIES


def _wait_until(proc, ready, timeout: float, interval: float, ended, late) -> None:
    """Poll ``ready()`` every ``interval`` s until true; fail with ``ended()`` if ``proc`` ends first
    or with ``late()`` once ``timeout`` s have passed (both called only on failure)."""
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, ended()
        assert time.monotonic() < deadline, late()
        time.sleep(interval)


def kill_when(proc, ready, log, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; fail if it ends first or time runs out."""
    import signal

    try:
        _wait_until(proc, ready, timeout, 0.1, lambda: f"the job ended before it could be killed:\n{log.read_text()}",
                    lambda: f"not ready after {timeout} s:\n{log.read_text()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def run_and_kill_at(cmd, ready, log, *, cwd, env, timeout: float = 600) -> None:
    """Start ``cmd`` in its own session (output to ``log``) and SIGKILL that whole session, the job
    and the local Ray it started, as a crash would, once ``ready`` (a path that exists, or a
    callable that returns true) is; fail if the job ends first or time runs out."""
    import contextlib
    import signal
    import subprocess

    done = ready.exists if hasattr(ready, "exists") else ready
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until(proc, done, timeout, 0.2,
                    lambda: f"the run ended before its first checkpoint:\n{log.read_text()[-4000:]}",
                    lambda: log.read_text()[-4000:])
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone if the job ended on its own
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.fixture(name="run_and_kill_at", scope="session")
def _run_and_kill_at():
    """``run_and_kill_at`` for tests under folders with their own conftest.py, where ``from conftest
    import`` may find that one instead of this (so do the two below)."""
    return run_and_kill_at


@pytest.fixture(name="kill_when", scope="session")
def _kill_when():
    return kill_when


@pytest.fixture(name="wait_for_cpus", scope="session")
def _wait_for_cpus():
    return wait_for_cpus


def wait_for_cpus(ray, n: int = 2, timeout: float = 60) -> None:
    """Ray ends a dead driver's actors; wait until their CPUs are back, so no late marker lands."""
    import time

    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < n:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)


@pytest.fixture()
def s3_env(monkeypatch):
    """``s3_env(endpoint)`` points S3 at ``endpoint`` for this test only (s3fs caches clients,
    with their endpoint)."""
    import s3fs

    def use(endpoint: str) -> None:
        for k, v in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()

    yield use
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture()
def closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
