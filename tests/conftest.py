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


def kill_when(proc, ready, log, timeout: float) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; fail if it ends first or time runs out."""
    import signal
    import time

    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"the job ended before it could be killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready after {timeout} s:\n{log.read_text()}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def wait_for_cpus(ray, n: int = 2, timeout: float = 60) -> None:
    """Ray ends a dead driver's actors; wait until their CPUs are back, so no late marker lands."""
    import time

    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < n:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
