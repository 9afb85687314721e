"""End to end on Ray: the bundled sample series, bad inputs beside it, and a resumed re-run."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from audiorole_ray.dummies import write_corrupt
from audiorole_ray.metrics.score import score_series
from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig, run
from audiorole_ray.pipeline.stages import marker_uri
from audiorole_ray.sample import SAMPLE_TRUTH

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def built(ray_local, sample_series, tmp_path_factory):
    """One run over a copy of the sample with a corrupt, an empty and a truncated file added."""
    root = tmp_path_factory.mktemp("job")
    inp = root / "in"
    shutil.copytree(sample_series, inp)
    write_corrupt(inp / "sitcom" / "zz_garbage.mp3", "garbage")
    write_corrupt(inp / "sitcom" / "zz_empty.wav", "empty")
    write_corrupt(inp / "heldout" / "zz_cut.flac", "truncated", next((inp / "sitcom").glob("*.flac")))
    config = DiarizeJobConfig(input=str(inp), output=str(root / "out"), workers=2)
    return config, run(config)


def test_outputs_and_bad_inputs_recorded(built):
    config, summary = built
    out = Path(config.output)
    n_good = sum(1 for p in Path(config.input).glob("*/*") if not p.name.startswith("zz_"))
    assert summary["episodes_done"] == n_good and summary["errors"] == 3
    errors = pd.read_parquet(out / "errors.parquet")
    assert sorted(Path(u).name for u in errors.uri) == ["zz_cut.flac", "zz_empty.wav", "zz_garbage.mp3"]
    assert errors.error.str.contains("zz_").all() and (errors.stage == "diarize").all()
    episodes = pd.read_parquet(out / "episodes.parquet")
    assert set(episodes.columns) >= {"series", "episode_id", "uri", "duration_s", "sample_rate", "channels", "status"}
    assert (episodes.status == "done").sum() == n_good and (episodes.status == "error").sum() == 3
    speakers = pd.read_parquet(out / "speakers.parquet")
    assert speakers.groupby("series").is_main.sum().eq(1).all()
    main = speakers[speakers.is_main].set_index("series")
    assert (main.speaker_id == main.index + "_spk00").all()
    for eid in episodes[episodes.status == "done"].episode_id:
        rttm = (out / "rttm" / f"{eid}.rttm").read_text().splitlines()
        assert rttm and all(line.split()[7].startswith(eid.split("/")[0] + "_spk") for line in rttm)
    assert json.loads((out / "summary.json").read_text())["episodes"] == n_good + 3


@pytest.mark.parametrize("series", ["sitcom", "heldout", "realcast"])
def test_diarization_quality_targets(built, series):
    config, _ = built
    s = score_series(config.output, SAMPLE_TRUTH, series)
    print(series, s)
    assert s["der"] <= 0.15, s
    assert s["main_purity"] >= 0.95 and s["main_coverage"] >= 0.90, s


def test_rerun_resumes_and_duplicates_nothing(built):
    config, _ = built
    out = Path(config.output)
    before = {p: p.read_text() for p in sorted((out / "rttm").rglob("*.rttm"))}
    # lose one finished episode's marker, as if the job had died while writing it
    marker = Path(marker_uri(str(out / "_state"), "sitcom/ep02"))
    marker.unlink()
    again = run(config)
    assert again["episodes_skipped_resume"] == again["episodes"] - 3 - 1  # 3 bad files are retried
    assert again["episodes_done"] == len(before) and again["errors"] == 3
    after = {p: p.read_text() for p in sorted((out / "rttm").rglob("*.rttm"))}
    assert after == before
    assert len(pd.read_parquet(out / "episodes.parquet")) == again["episodes"]


def test_cli_wrong_input_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_bad_config_value_is_a_clear_error(tmp_path, sample_series):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", str(sample_series), "--output", str(tmp_path / "o"), "--link-threshold", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "threshold" in proc.stderr and "Traceback" not in proc.stderr
