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
