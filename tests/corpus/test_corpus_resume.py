"""The state of a run is the state of its current input: whatever happened before (episodes
added or removed, a run killed midway, an output deleted), a re-run leaves what a fresh run on
the current input leaves. The real job, runner and storage, with dummy models, in-process."""
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audiorole_ray.corpus import job as corpus_job
from audiorole_ray.corpus.job import CorpusJobConfig, run
from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.corpus.shards import read_shard
from audiorole_ray.dummies import register_dummies, write_audio
from audiorole_ray.errors import ConfigError
from audiorole_ray.pipeline import state as state_module
from audiorole_ray.pipeline.lock import OutputLock

register_dummies()


def episode(root: Path, eid: str, seconds: float = 9.0) -> None:
    rng = np.random.default_rng(abs(hash(eid)) % 2**32)
    t = np.arange(int(seconds * 16_000)) / 16_000
    audio = 0.2 * np.sin(2 * np.pi * (150 + 100 * rng.random()) * t) + 0.01 * rng.standard_normal(t.size)
    write_audio(root / f"{eid}.wav", audio.astype(np.float32))


def build(inp: Path, out: Path) -> dict:
    config = CorpusJobConfig(str(inp), str(out), diarizer="dummy", asr="dummy", enhancer=None, quality_every=0,
                             local=True, workers=1, audio_rate=16_000,
                             plan=corpus_job.PlanSettings(test_fraction=0.3))
    return run(config)


def snapshot(out: Path) -> dict:
    """Everything a user reads from the corpus; not the markers, summary or timings."""
    d = read_dialogues(str(out)).sort_values(["dialogue_id", "turn_index"]).reset_index(drop=True)
    shards = {str(p.relative_to(out)): {k: v["flac"] for k, v in read_shard(str(p)).items()}
              for p in sorted((out / "audio").rglob("*.tar"))}
    files = sorted(str(p.relative_to(out)) for folder in ("audio", "rttm", "dialogues.parquet")
                   for p in (out / folder).rglob("*") if p.is_file())
    report = json.loads((out / "report.json").read_text())
    return {
        "dialogues": d.to_dict("records"), "shards": shards, "files": files,
        "rttm": {f: (out / f).read_text() for f in files if f.startswith("rttm/")},
        **{t: pd.read_parquet(out / f"{t}.parquet").to_dict("records") for t in ("speakers", "episodes", "errors")},
        "report": report,
    }


def assert_like_fresh(inp: Path, out: Path, tmp: Path) -> None:
    fresh = tmp / f"fresh-{random.random()}"
    build(inp, fresh)
    got, want = snapshot(out), snapshot(fresh)
    for key in want:
        assert got[key] == want[key], key
    for r in got["dialogues"]:  # every row's audio is in its shard
        assert r["audio_key"] in got["shards"][r["audio_path"]]


def test_adding_a_series_that_sorts_first_loses_nothing(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    for eid in ("m/e1", "m/e2", "n/e1"):
        episode(inp, eid)
    build(inp, out)
    episode(inp, "a/e1")  # sorts first: before, it took over shard-000000
    episode(inp, "m/e0")  # a file added inside a series
    summary = build(inp, out)
    assert summary["stage_resumed"]["enhance"] == 3
    assert_like_fresh(inp, out, tmp_path)


def test_removed_episodes_no_longer_count(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    for eid in ("m/e1", "m/e2", "m/e3"):
        episode(inp, eid)
    build(inp, out)
    (inp / "m" / "e3.wav").unlink()
    summary = build(inp, out)
    assert summary["episodes"] == summary["episodes_done"] == 2 and summary["markers_ignored"] == 1
    assert not (out / "audio" / "m" / "e3.tar").exists() and not (out / "rttm" / "m" / "e3.rttm").exists()
    assert_like_fresh(inp, out, tmp_path)


@pytest.mark.parametrize("victim", ["audio/m/e1.tar", "dialogues.parquet/m/e2.parquet", "rttm/m/e1.rttm"])
def test_a_deleted_or_damaged_output_is_rebuilt(tmp_path, victim):
    inp, out = tmp_path / "in", tmp_path / "out"
    for eid in ("m/e1", "m/e2"):
        episode(inp, eid)
    build(inp, out)
    want = (out / victim).read_bytes()
    (out / victim).unlink()
    build(inp, out)
    assert (out / victim).read_bytes() == want
    (out / victim).write_bytes(want[: len(want) // 2])  # damaged: its size no longer matches
    build(inp, out)
    assert (out / victim).read_bytes() == want


def test_a_changed_file_is_redone(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    for eid in ("m/e1", "m/e2"):
        episode(inp, eid)
    build(inp, out)
    episode(inp, "m/e1", seconds=12.0)  # replaced in place
    summary = build(inp, out)
    assert summary["episodes_skipped_resume"] == 1
    assert_like_fresh(inp, out, tmp_path)


class Killed(KeyboardInterrupt):
    """Stands for SIGKILL: not an item failure, so it ends the run where it is raised."""


def _kill_at(monkeypatch, where: str, n: int) -> None:
    """Die on the n-th marker write (outputs written, marker not) or the n-th output write."""
    calls = {"k": 0}
    target = (state_module.MarkerStore, "write") if where == "marker" else (corpus_job, "write_text")
    original = getattr(*target)

    def dying(*args, **kwargs):
        calls["k"] += 1
        if calls["k"] == n:
            raise Killed(f"killed at {where} write {n}")
        return original(*args, **kwargs)

    monkeypatch.setattr(*target, dying)


@pytest.mark.parametrize("seed", range(4))
def test_any_history_ends_as_a_fresh_run_would(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    inp, out = tmp_path / "in", tmp_path / "out"
    pool = [f"{s}/e{i}" for s in ("b", "m", "a") for i in range(3)]
    present = set(rng.sample(pool, 3))
    for eid in present:
        episode(inp, eid)
    for _ in range(5):
        op = rng.choice(["add", "remove", "kill", "delete", "rerun"])
        if op == "add" and len(present) < len(pool):
            eid = rng.choice(sorted(set(pool) - present))
            episode(inp, eid)
            present.add(eid)
        elif op == "remove" and len(present) > 1:
            eid = rng.choice(sorted(present))
            (inp / f"{eid}.wav").unlink()
            present.discard(eid)
        elif op == "delete" and out.exists():
            files = sorted(p for f in ("audio", "dialogues.parquet", "rttm") for p in (out / f).rglob("*") if p.is_file())
            if files:
                rng.choice(files).unlink()
            continue
        elif op == "kill":
            with monkeypatch.context() as m:
                _kill_at(m, rng.choice(["marker", "output"]), rng.randint(1, 3 * len(present)))
                try:
                    build(inp, out)
                except Killed:
                    pass
            continue
        build(inp, out)
    build(inp, out)
    assert_like_fresh(inp, out, tmp_path)


def test_a_second_run_on_one_output_is_refused_and_a_dead_ones_lock_is_not(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    lock = OutputLock(str(out), ttl_s=60).acquire()
    code = ("from audiorole_ray.pipeline.lock import OutputLock; import sys\n"
            f"OutputLock({str(out)!r}).acquire(); print('took it')")
    refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "is in use by another run" in refused.stderr
    lock.release()
    # a run killed while holding the lock: its process is gone, the next run goes ahead
    dead = subprocess.run([sys.executable, "-c", code.replace("print('took it')", "import os; os._exit(9)")], timeout=60)
    assert dead.returncode == 9 and (out / "_state" / "lock.json").exists()
    took = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert took.returncode == 0 and "took it" in took.stdout


def test_a_lock_from_another_host_goes_stale_without_a_heartbeat(tmp_path):
    out = tmp_path / "out"
    (out / "_state").mkdir(parents=True)
    held = {"owner": "x", "host": "elsewhere", "pid": 1, "started": "t", "heartbeat": 0}
    (out / "_state" / "lock.json").write_text(json.dumps({**held, "heartbeat": __import__("time").time()}))
    with pytest.raises(ConfigError, match="pid 1 on elsewhere"):
        OutputLock(str(out)).acquire()
    (out / "_state" / "lock.json").write_text(json.dumps(held))  # its heartbeat stopped long ago
    OutputLock(str(out)).acquire().release()
    assert not (out / "_state" / "lock.json").exists()
    shutil.rmtree(out)
