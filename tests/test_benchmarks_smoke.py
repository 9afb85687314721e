"""The benchmark scripts (benchmarks/) at tiny sizes: they call the project's own functions and
read its records, so a change of a signature or a field can break them without any other test
noticing. Each test runs a script, or the functions it measures with, and checks the figures it
reports. The Ray parts of bench_diarize/bench_corpus/bench_tokenize and bench_train_lm (Ray Train)
are left out: they take minutes; the jobs they time have their own end-to-end tests."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def _script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def truth_corpus(tmp_path_factory) -> Path:
    """The sitcom series of the bundled sample in the corpus layout (FLAC shards, dialogues)."""
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("corpus"))


def test_driver_memory_script_resumes_every_stage(tmp_path):
    """bench_driver_memory.py on 20 faked episodes: the real driver finds every marker current."""
    out = tmp_path / "figures.json"
    done = _script("bench_driver_memory.py", "--episodes", "20", "--per-series", "10", "--json", str(out))
    fig = json.loads(out.read_text())
    (r,) = fig["runs"]
    assert r["episodes_faked"] == 20 and r["episodes"] == 20, r
    assert r["resumed"] == {"diarize": 20, "transcribe": 20, "enhance": 20}, r
    assert 20 <= r["rows"] <= 20 * 12, r  # about ten dialogue rows per episode
    assert fig["floor_mb"] > 0 and r["peak_rss_mb"] >= fig["floor_mb"], fig
    assert "20 episodes (2 series)" in done.stdout


def test_corpus_bench_stage_figures_and_peak_memory(tmp_path):
    """bench_corpus.py's figures from a finished job's markers (faked as bench_driver_memory
    fakes them: 1 s of audio and 0.1 s of work per marker) and its memory sampler."""
    from benchmarks.bench_corpus import PeakMemory, stage_figures
    from benchmarks.bench_driver_memory import fake_corpus

    fake_corpus(tmp_path, 4, 2)
    fig = stage_figures(tmp_path / "out", audio_s=8.0)
    assert set(fig) == {"diarize", "transcribe", "enhance"}
    for f in fig.values():
        assert f["input_s"] == pytest.approx(4.0) and f["busy_s"] == pytest.approx(0.4), fig
        assert f["rtf"] == pytest.approx(0.1) and f["rtf_per_episode_s"] == pytest.approx(0.05), fig
    with PeakMemory() as mem:
        block = b"\x01" * 64_000_000  # touched pages: counted in PSS
        time.sleep(1.2)  # the sampler looks every 0.5 s
    assert mem.peak > len(block), mem.peak


def test_diarize_bench_backend_parts(tmp_path, monkeypatch):
    """bench_diarize.py's input copies and its in-process part figures, on one 63 s episode."""
    import benchmarks.bench_diarize as bench
    from audiorole_ray.sample import SAMPLE_SERIES

    one = tmp_path / "series" / "heldout"
    one.mkdir(parents=True)
    shutil.copy(SAMPLE_SERIES / "heldout" / "ep03.mp4", one)
    monkeypatch.setattr(bench, "SAMPLE_SERIES", tmp_path / "series")
    inp = bench.make_input(2, tmp_path)
    assert sorted(p.name for p in (inp / "heldout").iterdir()) == ["ep03_r0.mp4", "ep03_r1.mp4"]
    parts = bench.backend_parts(inp)  # the first copy only
    assert parts["audio_s"] == pytest.approx(63.0, abs=0.5), parts
    assert {"decode", "vad", "embed", "cluster"} <= set(parts["rtf"]) and "load" not in parts["rtf"], parts
    assert 0 < parts["rtf_total"] < 2 and parts["load_s"] > 0, parts


def test_diarize_bench_long_episode(tmp_path, monkeypatch):
    """bench_diarize.py --long-minutes: one episode made of the sample's, repeated to length."""
    import benchmarks.bench_diarize as bench
    from audiorole_ray.sample import SAMPLE_SERIES

    one = tmp_path / "series" / "heldout"
    one.mkdir(parents=True)
    shutil.copy(SAMPLE_SERIES / "heldout" / "ep03.mp4", one)  # 63 s: repeated twice for 1.5 min
    monkeypatch.setattr(bench, "SAMPLE_SERIES", tmp_path / "series")
    r = bench.long_episode(1.5)
    assert r["minutes"] == 1.5 and r["audio_mb"] == pytest.approx(90 * 16_000 * 4 / 2**20), r
    assert r["turns"] > 0 and r["speakers"] >= 2 and 0 < r["rtf"] < 2, r
    assert r["peak_mb"] >= r["before_mb"] > 0 and {"vad", "embed", "cluster"} <= set(r["parts_s"]), r


def test_tokenize_script_in_process_figures(truth_corpus, tmp_path):
    """bench_tokenize.py without job runs (--workers with no value): the corpus copy, the
    codebook fit and the in-process whisper-units figures."""
    from audiorole_ray.corpus.shards import read_shard
    from audiorole_ray.tokens.job import clip_table

    clips = clip_table(str(truth_corpus))
    in_shards = sum(len(read_shard(str(truth_corpus / p))) for p in clips.audio_path.unique())
    out = tmp_path / "figures.json"
    _script("bench_tokenize.py", "--corpus", str(truth_corpus), "--repeat", "1", "--workers", "--codebook-size", "16",
            "--fit-hours", "0.01", "--json", str(out))
    fig = json.loads(out.read_text())
    ip = fig["in_process"]
    # the job tokenizes the clips of dialogue rows; the in-process figures every clip of the shards
    assert fig["clips"] == len(clips) and ip["clips"] == in_shards >= len(clips) and fig["job"] == [], fig
    assert ip["audio_s"] >= float(clips.duration.sum()) - 1.0 and fig["audio_s"] > 0, fig
    assert fig["codebook_fit"]["frames"] >= 16, fig["codebook_fit"]
    # 12.5 tokens a second of audio (Whisper's 50 Hz frames pooled 4x), give or take each clip's edges
    assert 10 * ip["audio_s"] <= ip["tokens"] <= 14 * ip["audio_s"], ip
    assert ip["x_real_time"] > 1 and ip["encode_cpu_s"] > 0, ip


def test_eval_bench_scores_each_test_exchange(truth_corpus, tmp_path, monkeypatch, capsys):
    """bench_eval.py with one system on the sitcom test exchanges: one timed row per item."""
    from benchmarks import bench_eval
    from audiorole_ray.eval.items import exchange_items

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the script's work folder
    n = len(exchange_items(str(truth_corpus)))
    assert n > 0
    assert bench_eval.main(["--corpus", str(truth_corpus), "--systems", "copy-input"]) == 0
    text = capsys.readouterr().out
    assert f"{n} test exchanges, characters ['sitcom_spk00']" in text, text
    row = next(line for line in text.splitlines() if line.startswith("| copy-input |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == n and float(cells[3]) > 0 and float(cells[4]) > 0, row
    header = next(line for line in text.splitlines() if line.startswith("| system |"))
    parts = header.split("per item:")[1].strip(" |").split(", ")
    per_item = [float(v) for v in cells[5].split(",")]
    assert {"answer", "distillmos", "transcript"} <= set(parts) and len(per_item) == len(parts), text
    assert all(v >= 0 for v in per_item) and sum(per_item) > 0, text


def test_vocoder_bench_real_voices_and_one_resynthesis(monkeypatch, capsys):
    """bench_vocoder.py finds the longest turns of each real voice; its loop, on one 1 s clip
    through Griffin-Lim, prints a row and a mean CAM++ cosine that says the speaker is kept."""
    import benchmarks.bench_vocoder as bench

    segments = list(bench.real_segments())
    assert {v for v, *_ in segments} == bench.REAL
    assert all(Path(p).is_file() and end - start >= 3.0 for _, p, start, end in segments), segments
    first = segments[0]
    monkeypatch.setattr(bench, "real_segments", lambda: islice(iter([first]), 1))
    monkeypatch.setattr(sys, "argv", ["bench_vocoder.py", "--vocoders", "griffinlim", "--seconds", "1"])
    bench.main()
    text = capsys.readouterr().out
    assert re.search(rf"^{first[0]}\s+.*griffinlim", text, re.M), text
    m = re.search(r"mean CAM\+\+ cosine, griffinlim: ([0-9.]+) \(min [0-9.]+, 1 clips\)", text)
    assert m and 0.5 < float(m.group(1)) <= 1.0, text
