"""jobs/train_lm.py refuses bad input with one line and exit code 2, before Ray starts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lm_fixtures import TARGET

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "jobs"))
import train_lm  # noqa: E402
from model_fakes import (RayStarted, codebook_corpus, fake_checkpoint, fit_corpus_codebook, listing,  # noqa: E402
                         no_ray, run_until_training)

from audiorole_ray.arp_model import SpeechTokenizer, read_manifest, update_part  # noqa: E402
from audiorole_ray.train.runner import record_uri  # noqa: E402


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    no_ray(train_lm, monkeypatch)


@pytest.mark.parametrize("extra, message", [
    (["--target", "nobody_spk07"], "has no dialogues"),
    (["--plugin", "gemini"], "needs GPUs"),
    (["--plugin", "zero2", "--gpus-per-worker", "1", "--lora"], None),  # accepted: checked further on
    (["--tokenizer", "glm4voice"], "no tokens of speech tokenizer 'glm4voice'"),
    (["--model", "/nowhere/glm-4-voice-9b"], "not a local model folder"),
    (["--max-tokens", "10"], "--max-tokens must be at least 64"),
], ids=["target", "gemini-cpu", "zero2-lora", "tokenizer", "model", "max-tokens"])
def test_bad_options_exit_2(synthetic_corpus, tmp_path, capsys, extra, message):
    args = ["--corpus", str(synthetic_corpus), "--target", TARGET, "--model", "tiny", "--output", str(tmp_path / "m")]
    if "--target" in extra:
        args = args[:2] + args[4:]
    if "--model" in extra:
        args = [a for a in args if a not in ("--model", "tiny")]
    if message is None:  # the options are valid: stopped where Ray would start
        with pytest.raises(RayStarted):
            train_lm.main(args + extra)
        assert "samples 25 " in capsys.readouterr().out  # prepared, and nothing written before Ray started
        assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file()]
        return
    assert train_lm.run_main(train_lm.main, args + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "m").exists()  # refused before anything was written


def test_required_options(capsys):
    assert train_lm.run_main(train_lm.main, ["--model", "tiny"]) == 2
    assert "--corpus, --target, --output required" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the model folder and the run



def refused(argv, capsys, model) -> str:
    """Run train_lm; assert exit 2 with one line and nothing in the model folder changed."""
    before = listing(model)
    assert train_lm.run_main(train_lm.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert listing(model) == before, "a refused run must leave the model folder as it was"
    return err[0]


@pytest.fixture()
def corpus(tmp_path):
    return codebook_corpus(tmp_path / "corpus")


def lm_args(corpus, model, *extra, base="tiny"):
    return ["--corpus", str(corpus), "--target", TARGET, "--model", base, "--output", str(model), *extra]


def test_another_characters_model_is_refused_before_any_work(corpus, tmp_path, capsys):
    """Today's loss: training B into A's folder resumed A's checkpoint and rewrote A's LM."""
    model = tmp_path / "m"
    info = SpeechTokenizer.from_corpus(str(corpus), "whisper-units").info
    update_part(str(model), character="syn_spk07", corpus=str(corpus), tokenizer=info, part="lm", info={"steps": 40})
    (model / "lm").mkdir()
    (model / "lm" / "model.safetensors").write_bytes(b"A's weights")
    fake_checkpoint(model / "lm" / "_ray", "lm", 40)
    msg = refused(lm_args(corpus, model), capsys, model)
    assert f"holds the ARP-Model of 'syn_spk07', not '{TARGET}': give another --output" in msg
    assert refused(lm_args(corpus, model, "--restart"), capsys, model) == msg  # --restart does not hand it over


def test_a_refitted_codebook_is_refused_for_the_lm(corpus, tmp_path, capsys):
    """The decoder was trained on the corpus's codes; the codebook was re-fitted since."""
    model = tmp_path / "m"
    speech = SpeechTokenizer.from_corpus(str(corpus), "whisper-units")
    update_part(str(model), character=TARGET, corpus=str(corpus), tokenizer=speech.info, part="decoder", info={}, speech=speech)
    old = speech.info["codebook_hash"]
    new = fit_corpus_codebook(corpus, seed=1)
    msg = refused(lm_args(corpus, model), capsys, model)
    assert f"decoder was built on other speech codes than the corpus's speech tokenizer gives now (codebook_hash {old[:12]} -> {new[:12]}" in msg
    assert f"--codebook {model}/speech_tokenizer/codebook.npz" in msg
    assert read_manifest(str(model))["tokenizer"]["codebook_hash"] == old


def test_a_checkpoint_of_other_settings_is_refused_and_restart_starts_afresh(corpus, tmp_path, capsys, monkeypatch):
    model = tmp_path / "m"
    storage = model / "lm" / "_ray"
    run_until_training(train_lm, lm_args(corpus, model, "--lr", "0.003", "--batch-size", "1"), monkeypatch, "audiorole_ray.lm.job")
    recorded = json.loads(Path(record_uri(str(storage), "lm")).read_text())["settings"]
    assert recorded["lr"] == 0.003 and recorded["target"] == TARGET and recorded["codebook_hash"]
    assert (model / "lm" / "preview.jsonl").exists()
    fake_checkpoint(storage, "lm", 12)
    capsys.readouterr()
    msg = refused(lm_args(corpus, model, "--lr", "0.001", "--batch-size", "2", "--seed", "3"), capsys, model)
    assert msg == (f"error: {storage}/lm holds a checkpoint at step 12 made with other settings (batch_size 1 -> 2; "
                   "lr 0.003 -> 0.001; seed 0 -> 3): re-run with those to continue it, or add --restart to discard it and train afresh")
    (tmp_path / "glm").mkdir()
    (tmp_path / "glm" / "config.json").write_text("{}")  # another base model (refused before it is loaded)
    assert f"model 'tiny' -> '{tmp_path / 'glm'}'" in refused(lm_args(corpus, model, base=str(tmp_path / "glm")), capsys, model)
    for other, change in ((["--max-tokens", "512"], "max_tokens 2048 -> 512"), (["--lora"], "lora False -> True"),
                          (["--warmup-steps", "5"], "warmup_steps 0 -> 5"), (["--plugin", "zero2", "--gpus-per-worker", "1"],
                                                                             "plugin 'ddp' -> 'zero2'")):
        assert f"({change}): " in refused(lm_args(corpus, model, *other), capsys, model)
    # more epochs, other workers, another checkpoint cadence: the same run, continued
    got = run_until_training(train_lm, lm_args(corpus, model, "--epochs", "40", "--workers", "1", "--checkpoint-every", "3"),
                             monkeypatch, "audiorole_ray.lm.job")
    assert got["prepared"].config.workers == 1 and (storage / "lm").exists()
    # --restart: the old run's checkpoints go before training, the new settings are recorded
    run_until_training(train_lm, lm_args(corpus, model, "--lr", "0.001", "--restart"), monkeypatch, "audiorole_ray.lm.job")
    assert not (storage / "lm").exists()
    assert json.loads(Path(record_uri(str(storage), "lm")).read_text())["settings"]["lr"] == 0.001


def test_a_run_killed_before_its_first_checkpoint_leaves_nothing_to_refuse(corpus, tmp_path, monkeypatch):
    """Settings are recorded before training; without a checkpoint there is nothing to continue,
    so a re-run with other settings just trains."""
    model = tmp_path / "m"
    run_until_training(train_lm, lm_args(corpus, model, "--lr", "0.003"), monkeypatch, "audiorole_ray.lm.job")
    got = run_until_training(train_lm, lm_args(corpus, model, "--lr", "0.001"), monkeypatch, "audiorole_ray.lm.job")
    assert got["prepared"].config.lr == 0.001


def test_a_checkpoint_from_before_settings_were_recorded_is_continued(corpus, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m"
    fake_checkpoint(model / "lm" / "_ray", "lm", 8)
    run_until_training(train_lm, lm_args(corpus, model), monkeypatch, "audiorole_ray.lm.job")
    assert "has no record of its settings (made by an older version): continuing it" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--storage", "--output"])
def test_unreachable_object_storage_fails_fast_in_one_line(corpus, tmp_path, capsys, s3_env, closed_port, option):
    """Today: a 150-line traceback once Ray had started. Now one request, before anything."""
    import time

    s3_env(f"http://127.0.0.1:{closed_port}")
    model, uri = tmp_path / "m", f"s3://bucket/{option[2:]}"
    args = lm_args(corpus, uri if option == "--output" else model, "--storage-attempts", "2", "--storage-timeout", "5")
    if option == "--storage":
        args += ["--storage", uri]
    t = time.monotonic()
    msg = refused(args, capsys, model)
    assert time.monotonic() - t < 15
    assert msg.startswith(f"error: {option} '{uri}' cannot be reached: EndpointConnectionError") and "(2 attempt(s), " in msg
    assert not model.exists()


def test_checkpoints_on_s3_are_checked_and_restarted_there(corpus, tmp_path, capsys, monkeypatch, s3_env):
    """--storage s3://: the settings record, the checkpoint lookup and --restart's removal work
    on object storage (a moto server on loopback); a bucket that is not there is one line."""
    import boto3

    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3_env(f"http://{host}:{port}")
        client = boto3.client("s3")
        client.create_bucket(Bucket="ckpt")
        model = tmp_path / "m"
        msg = refused(lm_args(corpus, model, "--storage", "s3://nobucket/runs"), capsys, model)
        assert msg == "error: --storage 's3://nobucket/runs': there is no bucket 's3://nobucket' at this endpoint: create it, or fix the URI"
        assert not model.exists() and "nobucket" not in [b["Name"] for b in client.list_buckets()["Buckets"]]
        run_until_training(train_lm, lm_args(corpus, model, "--storage", "s3://ckpt/runs"), monkeypatch, "audiorole_ray.lm.job")
        assert json.loads(client.get_object(Bucket="ckpt", Key="runs/lm.settings.json")["Body"].read())["settings"]["lr"] == 0.003
        fake_checkpoint(tmp_path / "ckpt", "lm", 7)
        for f in (tmp_path / "ckpt").rglob("*"):
            if f.is_file():
                client.upload_file(str(f), "ckpt", f"runs/{f.relative_to(tmp_path / 'ckpt').as_posix()}")
        capsys.readouterr()
        assert "s3://ckpt/runs/lm holds a checkpoint at step 7 made with other settings (lr 0.003 -> 0.01)" in refused(
            lm_args(corpus, model, "--storage", "s3://ckpt/runs", "--lr", "0.01"), capsys, model)
        run_until_training(train_lm, lm_args(corpus, model, "--storage", "s3://ckpt/runs", "--lr", "0.01", "--restart"),
                           monkeypatch, "audiorole_ray.lm.job")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="ckpt").get("Contents", [])]
        assert keys == ["runs/lm.settings.json"], keys
    finally:
        server.stop()
