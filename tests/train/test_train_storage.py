"""The training jobs' storage checks: a probe that leaves nothing behind, a remote checked with
one request before Ray (a bucket that is not there is refused, never created), a run's
checkpoints removed for --restart with the snapshot first."""
from __future__ import annotations

import json

import pytest

from audiorole_ray.errors import InputError
from audiorole_ray.io.storage import check_reachable, check_writable, remove_tree
from audiorole_ray.train.runner import SNAPSHOT, check_continue, latest_state, record_uri, start_run


def test_the_write_probe_leaves_no_state_folder(tmp_path):
    check_writable(str(tmp_path / "new"))
    assert [p.name for p in (tmp_path / "new").iterdir()] == []  # the folder is made, its probe's _state/ is not kept
    (tmp_path / "kept" / "_state").mkdir(parents=True)
    check_writable(str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "_state").is_dir()  # one that was there stays


def test_local_paths_are_left_to_the_checks_that_use_them(tmp_path):
    check_reachable({"--corpus": str(tmp_path / "nowhere"), "--storage": "", "--output": f"file://{tmp_path}"})


def test_a_missing_bucket_is_refused_and_not_created(monkeypatch):
    import boto3
    import s3fs

    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for k, v in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()
        client = boto3.client("s3")
        client.create_bucket(Bucket="have")
        check_reachable({"--output": "s3://have/model/not/yet"})
        with pytest.raises(InputError, match="there is no bucket 's3://typo' at this endpoint"):
            check_reachable({"--output": "s3://typo/model"})
        with pytest.raises(InputError, match="output 's3://typo/model' is not writable"):
            check_writable("s3://typo/model")
        assert "typo" not in [b["Name"] for b in client.list_buckets()["Buckets"]]  # (moto keeps one state per process)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_restart_removes_the_run_and_records_the_new_settings(tmp_path, capsys):
    run = tmp_path / "lm"
    (run / "checkpoint_a").mkdir(parents=True)
    (run / "checkpoint_a" / "state.json").write_text(json.dumps({"step": 5, "epoch": 0}))
    (run / SNAPSHOT).write_text(json.dumps({"latest_checkpoint_result": {"checkpoint_dir_name": "checkpoint_a"}}))
    (tmp_path / "other").mkdir()  # another run in the same storage is not touched
    assert check_continue(str(tmp_path), "lm", {"lr": 1.0}, restart=True)["step"] == 5
    start_run(str(tmp_path), "lm", {"lr": 1.0}, restart=True)
    assert "--restart: removing the checkpoints of" in capsys.readouterr().out
    assert latest_state(str(tmp_path), "lm") is None and not run.exists() and (tmp_path / "other").is_dir()
    assert json.loads((tmp_path / "lm.settings.json").read_text())["settings"] == {"lr": 1.0}
    assert record_uri(str(tmp_path), "lm") == str(tmp_path / "lm.settings.json")
    remove_tree(str(tmp_path / "absent"))  # nothing to remove is fine


@pytest.mark.parametrize("job, argv", [
    ("tokenize_corpus", ["--corpus", "s3://bucket/corpus"]),
    ("respond", ["--model", "s3://bucket/model", "--input", "s3://bucket/a.wav", "--output", "b.wav"]),
    ("respond", ["--model", "s3://bucket/model", "--corpus", "s3://bucket/corpus", "--output", "s3://bucket/answers"]),
    ("evaluate", ["--corpus", "s3://bucket/corpus", "--system", "reference", "--output", "s3://bucket/eval"]),
])
def test_every_model_job_checks_object_storage_first(job, argv, s3_env, closed_port, capsys, tmp_path, monkeypatch):
    """Unreachable object storage is one line and exit 2 within the storage timeouts, before any
    model loads or anything is written, in every job that reads or writes it."""
    import importlib.util
    import time
    from pathlib import Path

    from audiorole_ray.cli import run_main

    monkeypatch.chdir(tmp_path)
    s3_env(f"http://127.0.0.1:{closed_port}")
    path = Path(__file__).resolve().parents[2] / "jobs" / f"{job}.py"
    spec = importlib.util.spec_from_file_location(f"job_{job}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = time.monotonic()
    assert run_main(mod.main, [*argv, "--storage-attempts", "1", "--storage-timeout", "3"]) == 2
    assert time.monotonic() - t < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be reached: EndpointConnectionError" in err, err
    assert list(tmp_path.iterdir()) == []
