"""jobs/train_decoder.py refuses, before Ray starts and without changing the model folder, what
would destroy or mismatch a model: another character's folder, an LM on other speech codes,
a checkpoint of other settings (unless --restart), object storage it cannot reach."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "jobs"), str(REPO / "tests" / "lm")]
import train_decoder  # noqa: E402
from lm_fixtures import TARGET  # noqa: E402
from model_fakes import codebook_corpus, fake_checkpoint, fit_corpus_codebook, listing, no_ray, run_until_training  # noqa: E402

from audiorole_ray.arp_model import SpeechTokenizer, read_manifest, update_part  # noqa: E402
from audiorole_ray.train.runner import record_uri  # noqa: E402

JOB = "audiorole_ray.decoder.job"


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    no_ray(train_decoder, monkeypatch)


@pytest.fixture()
def corpus(tmp_path):
    return codebook_corpus(tmp_path / "corpus")


def args_for(corpus, model, *extra):
    return ["--corpus", str(corpus), "--target", TARGET, "--output", str(model), *extra]


def refused(argv, capsys, model) -> str:
    before = listing(model)
    assert train_decoder.run_main(train_decoder.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert listing(model) == before, "a refused run must leave the model folder as it was"
    return err[0]


def test_another_characters_model_is_refused(corpus, tmp_path, capsys):
    model = tmp_path / "m"
    speech = SpeechTokenizer.from_corpus(str(corpus), "whisper-units")
    update_part(str(model), character="syn_spk07", corpus=str(corpus), tokenizer=speech.info, part="decoder", info={}, speech=speech)
    fake_checkpoint(model / "decoder" / "_ray", "decoder", 30)
    msg = refused(args_for(corpus, model), capsys, model)
    assert f"holds the ARP-Model of 'syn_spk07', not '{TARGET}': give another --output" in msg


def test_an_lm_on_other_codes_is_refused_and_its_hash_kept(corpus, tmp_path, capsys):
    """Today train_decoder overwrote the manifest's codebook hash, leaving an LM and a decoder on
    different codes."""
    model = tmp_path / "m"
    speech = SpeechTokenizer.from_corpus(str(corpus), "whisper-units")
    update_part(str(model), character=TARGET, corpus=str(corpus), tokenizer=speech.info, part="lm", info={}, speech=speech)
    new = fit_corpus_codebook(corpus, seed=1)  # tokenize_corpus.py --fit-codebook, after the LM was trained
    msg = refused(args_for(corpus, model), capsys, model)
    assert "lm was built on other speech codes" in msg and f"-> {new[:12]}" in msg
    assert "--restart" not in msg  # restarting the decoder would not make it fit the LM
    assert read_manifest(str(model))["tokenizer"]["codebook_hash"] == speech.info["codebook_hash"]


def test_a_checkpoint_of_other_settings_is_refused_and_restart_starts_afresh(corpus, tmp_path, capsys, monkeypatch):
    model = tmp_path / "m"
    storage = model / "decoder" / "_ray"
    run_until_training(train_decoder, args_for(corpus, model), monkeypatch, JOB)
    recorded = json.loads(Path(record_uri(str(storage), "decoder")).read_text())["settings"]
    assert recorded["preset"] == "tiny" and recorded["batch_size"] == 2 and recorded["val_fraction"] == 0.1
    fake_checkpoint(storage, "decoder", 9)
    capsys.readouterr()
    for other, change in ((["--lr", "0.01"], "lr 0.002 -> 0.01"), (["--batch-size", "4"], "batch_size 2 -> 4"),
                          (["--seed", "1"], "seed 0 -> 1"), (["--val-fraction", "0.2"], "val_fraction 0.1 -> 0.2"),
                          (["--preset", "glm4voice"], "preset 'tiny' -> 'glm4voice'")):
        msg = refused(args_for(corpus, model, *other), capsys, model)
        assert "decoder holds a checkpoint at step 9 made with other settings (" in msg and change in msg, msg
        assert msg.endswith("or add --restart to discard it and train afresh")
    got = run_until_training(train_decoder, args_for(corpus, model, "--epochs", "30", "--workers", "1", "--checkpoint-every", "2"),
                             monkeypatch, JOB)
    assert got["prepared"].config.epochs == 30 and (storage / "decoder").exists()
    run_until_training(train_decoder, args_for(corpus, model, "--lr", "0.01", "--restart"), monkeypatch, JOB)
    assert not (storage / "decoder").exists()
    assert json.loads(Path(record_uri(str(storage), "decoder")).read_text())["settings"]["lr"] == 0.01


def test_unreachable_storage_fails_fast_in_one_line(corpus, tmp_path, capsys, monkeypatch):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch.setenv(k, v)
    t = time.monotonic()
    msg = refused(args_for(corpus, tmp_path / "m", "--storage", "s3://bucket/ckpt", "--storage-attempts", "1"), capsys, tmp_path / "m")
    assert time.monotonic() - t < 15
    assert msg.startswith("error: --storage 's3://bucket/ckpt' cannot be reached: EndpointConnectionError")
    assert not (tmp_path / "m").exists()


def test_a_character_with_test_clips_only_is_refused(corpus, tmp_path, capsys):
    """Today the decoder trained on the character's test clips and reported a validation loss of
    0.0000: with no training-split clip there is nothing honest to train on."""
    import pandas as pd

    for part in (corpus / "dialogues.parquet").rglob("*.parquet"):
        d = pd.read_parquet(part)
        d.loc[d.speaker_id == TARGET, "split"] = "test"
        d.to_parquet(part, index=False)
    model = tmp_path / "m"
    msg = refused(args_for(corpus, model), capsys, model)
    assert "clips of the character are in the corpus's test split" in msg and "--test-fraction" in msg
    assert not model.exists()
