"""The whole corpus job on S3 (a moto server on loopback): same corpus as a local run, resume
after a lost marker and after a killed run, and the secret key never written or printed.
Enhancement is off here to keep the test short: the shards are written to S3 all the same."""
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from audiorole_ray.corpus.job import CorpusJobConfig, run

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "bucket"
# 2 episodes of each of 2 series (four containers), to keep the test short, plus one bad file
EPISODES = ["heldout/ep01.mkv", "heldout/ep03.mp4", "realcast/ep02.webm", "realcast/ep03.mp3"]
BAD = "heldout/zz_garbage.mp3"
GARBAGE = b"\x00not audio at all\xff" * 64
N_GOOD = len(EPISODES)
SECRET = "audiorole-test-secret-" + secrets.token_hex(12)  # must never be written or printed


slow = pytest.mark.slow


def _clear_s3fs_cache():
    # fsspec caches filesystem instances, and an S3FileSystem keeps the endpoint its botocore
    # client was made with: drop instances bound to another test module's (stopped) server.
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def bare_s3(monkeypatch):
    """Only a moto server on 127.0.0.1 (no Ray), for the fast test below."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _clear_s3fs_cache()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield
    _clear_s3fs_cache()
    server.stop()


def test_markers_written_by_another_process_are_read(bare_s3):
    """Regression: the driver lists the markers, Ray workers (other processes) then write new
    ones and rewrite old ones, and the driver reads them all. s3fs's listing cache used to make
    those reads fail (FileNotFoundError, or 412 for a changed ETag), and the job then dropped
    the episodes as if their markers were torn."""
    import s3fs

    from audiorole_ray.io.storage import list_files, read_json

    worker = s3fs.S3FileSystem(skip_instance_cache=True)  # stands for another process
    state = f"s3://{BUCKET}/out/_state/diarized"

    def read_all():
        return [read_json(f"{state}/{rel}") for rel in sorted(list_files(state))]

    worker.pipe_file(f"{BUCKET}/out/_state/diarized/s/ep1.json", b'{"v": 1}')
    assert read_all() == [{"v": 1}]
    worker.pipe_file(f"{BUCKET}/out/_state/diarized/s/ep1.json", b'{"v": 11}')
    worker.pipe_file(f"{BUCKET}/out/_state/diarized/s/ep2.json", b'{"v": 2}')
    assert read_all() == [{"v": 11}, {"v": 2}]
    worker.rm(f"{BUCKET}/out/_state", recursive=True)
    assert list_files(state) == {}


@pytest.fixture(scope="module")
def s3(sample_series):
    """A moto S3 server on 127.0.0.1 with the input uploaded, then a local Ray (loopback only)
    started after the AWS_* variables are set, so its workers inherit them."""
    import boto3
    import ray
    import ray._private.ray_constants as ray_constants

    if ray.is_initialized():  # another module's cluster would not have the AWS_* variables
        ray.shutdown()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    env = {
        "AWS_ACCESS_KEY_ID": "AKIATESTAUDIOROLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        # Ray binds its own servers to the node IP unless told this is a single-machine cluster;
        # this keeps GCS, raylet, workers and the metrics agent on 127.0.0.1
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    for k, v in env.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(k, raising=False)
    mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # read at ray.init (module constant)
    _clear_s3fs_cache()

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    for rel in EPISODES:
        client.upload_file(str(sample_series / rel), BUCKET, f"series/{rel}")
    client.put_object(Bucket=BUCKET, Key=f"series/{BAD}", Body=GARBAGE)

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=True)
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    try:
        yield client
    finally:
        ray.shutdown()
        _clear_s3fs_cache()
        mp.undo()
        server.stop()


@contextmanager
def capture_fds():
    """Capture file descriptors 1 and 2 (this process, Ray's forwarded worker output, children)."""
    buf = io.StringIO()
    with tempfile.NamedTemporaryFile("a+", errors="replace") as tmp:  # O_APPEND: no overwrites
        sys.stdout.flush()
        sys.stderr.flush()
        saved_fds, saved_streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        # pytest (and Ray's log forwarding) write to sys.stdout/sys.stderr, not to fds 1 and 2
        sys.stdout = sys.stderr = tmp
        try:
            yield buf
        finally:
            time.sleep(1.0)  # Ray forwards worker output asynchronously
            tmp.flush()
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((1, 2), saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
            tmp.seek(0)
            buf.write(tmp.read())


PRINTED: list[str] = []  # everything the runs printed, checked for the secret at the end


CLI_PART2 = ["--enhancer", "none", "--quality-every", "0"]


def _run(input: str, output: str) -> dict:
    with capture_fds() as out:
        summary = run(CorpusJobConfig(input=input, output=output, workers=2, enhancer=None, quality_every=0))
    PRINTED.append(out.getvalue())
    return summary


def _keys(client, prefix: str) -> list[str]:
    keys, token = [], None
    while True:
        kw = {"Bucket": BUCKET, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = client.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def corpus(root: str) -> dict:
    """A corpus read back through fsspec (local path or s3://), in comparable form."""
    import fsspec
    from fsspec.core import url_to_fs

    from audiorole_ray.io.tables import read_table

    fs, base = url_to_fs(root)
    fs.invalidate_cache()  # Ray workers (other processes) wrote here since this process listed it
    base = base.rstrip("/")
    files = sorted(p[len(base) + 1 :] for p in fs.find(base))
    episodes = read_table(f"{root}/episodes.parquet").to_pandas()
    speakers = read_table(f"{root}/speakers.parquet").to_pandas()
    errors = read_table(f"{root}/errors.parquet").to_pandas()
    rttm = {f: fs.cat_file(f"{base}/{f}").decode() for f in files if f.startswith("rttm/")}
    dialogues = read_table(f"{root}/dialogues.parquet").to_pandas()
    shards = {f: fs.cat_file(f"{base}/{f}") for f in files if f.startswith("audio/")}
    markers = {}
    for f in files:
        if f.startswith("_state/diarized/"):
            with fsspec.open(f"{root}/{f}", "r") as fh:
                m = json.load(fh)
            # timings differ from run to run, and the hash with the input's storage; the
            # payload is the episode's result
            markers[f] = m["payload"]
    with fsspec.open(f"{root}/summary.json", "r") as fh:
        summary = json.load(fh)
    return {
        "files": files,
        "episodes": episodes,
        "speakers": speakers,
        "errors": errors,
        "rttm": rttm,
        "dialogues": dialogues,
        "shards": shards,
        "markers": markers,
        "summary": summary,
    }


def assert_same_corpus(a: dict, b: dict, same_input: bool):
    assert a["files"] == b["files"]
    ea, eb = (x["episodes"].sort_values("episode_id").reset_index(drop=True) for x in (a, b))
    if not same_input:
        ea, eb = ea.drop(columns="uri"), eb.drop(columns="uri")
    pd.testing.assert_frame_equal(ea, eb)
    pd.testing.assert_frame_equal(a["speakers"], b["speakers"])
    ka, kb = (x["errors"][["episode_id", "stage"]].sort_values("episode_id").reset_index(drop=True) for x in (a, b))
    pd.testing.assert_frame_equal(ka, kb)
    assert a["rttm"] == b["rttm"]
    pd.testing.assert_frame_equal(a["dialogues"], b["dialogues"])
    assert a["shards"] == b["shards"]  # byte for byte
    assert a["markers"] == b["markers"]
    drop = {"output", "wall_s", "x_real_time", "episodes_skipped_resume", "stage_wall_s", "stage_resumed", "outputs_removed"}
    assert {k: v for k, v in a["summary"].items() if k not in drop} == {
        k: v for k, v in b["summary"].items() if k not in drop
    }


def assert_no_duplicates(c: dict):
    assert c["episodes"].episode_id.is_unique and len(c["episodes"]) == N_GOOD + 1
    assert (c["episodes"].status == "done").sum() == N_GOOD
    assert c["speakers"].speaker_id.is_unique
    assert len(c["errors"]) == 1 and c["errors"].episode_id.tolist() == [BAD.rsplit(".", 1)[0]]
    assert len(c["rttm"]) == N_GOOD and len(c["markers"]) == N_GOOD
    assert not [f for f in c["files"] if f.endswith(".tmp")]
    assert len(c["dialogues"]) > 0 and c["shards"]
    assert not c["dialogues"].duplicated(["dialogue_id", "turn_index"]).any()
    turns = sum(len(t.splitlines()) for t in c["rttm"].values())
    assert turns == c["summary"]["turns"]


@pytest.fixture(scope="module")
def local_corpus(s3, sample_series, tmp_path_factory):
    """The reference: the same episodes from a local folder to a local output."""
    root = tmp_path_factory.mktemp("local")
    for rel in EPISODES:
        (root / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_series / rel, root / "in" / rel)
    (root / "in" / BAD).write_bytes(GARBAGE)
    summary = _run(str(root / "in"), str(root / "out"))
    assert summary["episodes_done"] == N_GOOD and summary["errors"] == 1
    return corpus(str(root / "out"))


@pytest.fixture(scope="module")
def s3_corpus(s3):
    output = f"s3://{BUCKET}/corpus"
    t = time.perf_counter()
    summary = _run(f"s3://{BUCKET}/series", output)
    print(f"s3 run: {time.perf_counter() - t:.1f} s")
    assert summary["episodes_done"] == N_GOOD and summary["errors"] == 1
    assert summary["episodes_skipped_resume"] == 0
    return output, corpus(output)


@slow
def test_s3_corpus_equals_local_run(s3_corpus, local_corpus):
    output, c = s3_corpus
    assert_same_corpus(c, local_corpus, same_input=False)
    assert_no_duplicates(c)
    assert c["episodes"].uri.str.startswith(f"s3://{BUCKET}/series/").all()
    err = c["errors"].iloc[0]
    assert err.uri == f"s3://{BUCKET}/series/{BAD}" and err.error.startswith(f"DecodeError: {err.uri}")
    assert c["summary"]["output"] == output


@slow
def test_s3_rerun_after_lost_marker(s3, s3_corpus):
    """One episode's marker is gone, as if the job had died while writing it: only that episode
    (and the bad file) is redone, and the corpus is the same, with nothing duplicated."""
    output, before = s3_corpus
    lost = "corpus/_state/diarized/realcast/ep02.json"
    s3.delete_object(Bucket=BUCKET, Key=lost)
    assert lost not in _keys(s3, "corpus/_state/")
    again = _run(f"s3://{BUCKET}/series", output)
    assert again["episodes_skipped_resume"] == N_GOOD - 1
    assert again["episodes_done"] == N_GOOD and again["errors"] == 1
    after = corpus(output)
    assert_same_corpus(after, before, same_input=True)
    assert_no_duplicates(after)


@slow
def test_s3_resume_after_killed_run(s3, s3_corpus, tmp_path, kill_when, wait_for_cpus):
    """The CLI, connected to the test's Ray cluster, is killed (SIGKILL) once the first episode
    is finished; a re-run finishes the rest and gives the uninterrupted run's corpus."""
    import ray

    _, uninterrupted = s3_corpus
    output = f"s3://{BUCKET}/corpus-killed"
    log = tmp_path / "cli.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", f"s3://{BUCKET}/series",
             "--output", output, "--workers", "2", "--address", ray.get_runtime_context().gcs_address, *CLI_PART2],
            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
        )
    kill_when(proc, lambda: _keys(s3, "corpus-killed/_state/diarized/"), log, timeout=150)
    assert proc.returncode == -signal.SIGKILL
    PRINTED.append(log.read_text(errors="replace"))

    wait_for_cpus(ray)
    keys = _keys(s3, "corpus-killed/")
    assert "corpus-killed/summary.json" not in keys  # it died before writing any output
    done_at_kill = len([k for k in keys if k.startswith("corpus-killed/_state/diarized/")])
    assert 1 <= done_at_kill < N_GOOD, keys  # killed midway
    print(f"killed with {done_at_kill} of {N_GOOD} episodes diarized")

    resumed = _run(f"s3://{BUCKET}/series", output)
    assert resumed["episodes_skipped_resume"] == done_at_kill
    assert resumed["episodes_done"] == N_GOOD and resumed["errors"] == 1
    after = corpus(output)
    assert_same_corpus(after, uninterrupted, same_input=True)
    assert_no_duplicates(after)


@slow
def test_secret_key_never_written_or_printed(s3, s3_corpus, local_corpus):
    """Runs above: nothing they wrote to S3 or printed holds the secret key (and the summary and
    errors table say nothing of credentials at all)."""
    import ray

    assert PRINTED
    for key in _keys(s3, "corpus"):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert SECRET.encode() not in body, key
    summary = s3.get_object(Bucket=BUCKET, Key="corpus/summary.json")["Body"].read().decode()
    errors = s3.get_object(Bucket=BUCKET, Key="corpus/errors.parquet")["Body"].read()
    assert SECRET not in summary and SECRET.encode() not in errors
    assert "AWS_SECRET" not in summary and b"AWS_SECRET" not in errors
    for text in PRINTED:
        assert SECRET not in text
    # nor any log of this Ray session (drivers, workers, raylet, GCS)
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    for path in session.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path


@contextmanager
def silent_endpoint():
    """A TCP server on loopback that accepts connections and never answers."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()
        for c in held:
            c.close()


def _cli_against(endpoint: str, tmp_path, *args) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    t = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "build_corpus.py"), "--input", f"s3://{BUCKET}/series",
                           "--output", str(tmp_path / "o"), *args], env=env, capture_output=True, text=True, timeout=300)
    return proc, time.monotonic() - t


@slow
def test_an_endpoint_that_never_answers_fails_in_under_two_minutes(tmp_path):
    with silent_endpoint() as endpoint:
        proc, took = _cli_against(endpoint, tmp_path)
    print(f"silent endpoint: exit {proc.returncode} after {took:.0f} s: {proc.stderr.strip()}")
    assert proc.returncode == 2 and took < 120
    assert proc.stderr.strip().count("\n") == 0 and "cannot list s3://bucket/series: ReadTimeoutError" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_an_unreachable_endpoint_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    proc, took = _cli_against(f"http://127.0.0.1:{port}", tmp_path, "--storage-attempts", "1")
    print(f"unreachable endpoint: exit {proc.returncode} after {took:.0f} s: {proc.stderr.strip()}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "cannot list s3://bucket/series" in proc.stderr
