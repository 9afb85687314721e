"""The bundled sample series (see README.md here): the job's default input, and test ground truth."""
from pathlib import Path

HERE = Path(__file__).parent
SAMPLE_SERIES = HERE / "series"
SAMPLE_TRUTH = HERE / "truth"
