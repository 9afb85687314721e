"""MODEL/arp_model.json: parts added one by one, one character per folder."""
from __future__ import annotations

import json

import pytest

from audiorole_ray.arp_model import MANIFEST, read_manifest, update_part
from audiorole_ray.errors import ConfigError, InputError

TOK = {"name": "whisper-tiny-kmeans64", "frame_rate": 12.5, "vocab_size": 64}


def test_parts_accumulate(tmp_path):
    assert read_manifest(str(tmp_path)) is None
    update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="lm", info={"steps": 10})
    m = update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="decoder", info={"epochs": 15})
    assert m == read_manifest(str(tmp_path))
    assert m["character"] == "sitcom_spk00" and m["tokenizer"] == TOK and m["corpus"] == "/c"
    assert sorted(m["parts"]) == ["decoder", "lm"]
    assert m["parts"]["lm"]["steps"] == 10 and m["parts"]["lm"]["path"] == "lm"
    # retraining a part replaces only that part
    m = update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="lm", info={"steps": 20})
    assert m["parts"]["lm"]["steps"] == 20 and m["parts"]["decoder"]["epochs"] == 15
    # no temporary file left behind, nor the manifest's lock (an empty _state/ is pipeline/lock.py's affair)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [MANIFEST]


def test_other_character_or_tokenizer_is_refused(tmp_path):
    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=TOK, part="lm", info={})
    with pytest.raises(ConfigError, match="'a_spk00', not 'b_spk00'"):
        update_part(str(tmp_path), character="b_spk00", corpus="/c", tokenizer=TOK, part="lm", info={})
    with pytest.raises(ConfigError, match="speech tokenizer"):
        update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer={**TOK, "name": "glm-4-voice"}, part="decoder", info={})
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(str(tmp_path))
    json.dumps(TOK)


# ----------------------------------------------------------------------------- identity, codes, the copy

CODES_A = {"name": "whisper-units", "frame_rate": 12.5, "vocab_size": 64, "codebook_hash": "a" * 64}


@pytest.mark.parametrize("change, restart, message", [
    ({"character": "b_spk00"}, False, "holds the ARP-Model of 'a_spk00', not 'b_spk00': give another --output"),
    # --restart never hands a folder to another character
    ({"character": "b_spk00"}, True, "holds the ARP-Model of 'a_spk00'"),
    ({"corpus": "/other"}, False, "lm came from corpus '/c', not '/other'"),
    ({"tokenizer": {**CODES_A, "codebook_hash": "b" * 64}}, False, "codebook_hash aaaaaaaaaaaa -> bbbbbbbbbbbb"),
    ({"tokenizer": {**CODES_A, "name": "glm4voice"}}, False, "name 'whisper-units' -> 'glm4voice'"),
    ({"tokenizer": {**CODES_A, "vocab_size": 65}}, False, "vocab_size 64 -> 65"),
], ids=["character", "character-restart", "corpus", "codebook", "tokenizer", "vocab"])
def test_a_part_that_does_not_fit_the_folder_is_refused(tmp_path, change, restart, message):
    from audiorole_ray.arp_model import check_part

    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=CODES_A, part="lm", info={})
    before = (tmp_path / MANIFEST).read_bytes()
    want = {"character": "a_spk00", "corpus": "/c", "tokenizer": CODES_A, **change}
    for part in ("decoder", "lm"):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            check_part(str(tmp_path), read_manifest(str(tmp_path)), part=part, restart=restart, **want)
        with pytest.raises(ConfigError, match="holds the ARP-Model|came from corpus|other speech codes"):
            update_part(str(tmp_path), part=part, info={}, restart=restart, **want)
    assert (tmp_path / MANIFEST).read_bytes() == before


def test_restart_replaces_the_only_part_on_new_codes(tmp_path):
    """--restart may rebuild a part on new codes when no other part was built on the old ones;
    the message says so only then."""
    from audiorole_ray.arp_model import check_part

    new = {**CODES_A, "codebook_hash": "b" * 64}
    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=CODES_A, part="lm", info={})
    with pytest.raises(ConfigError, match="or add --restart to retrain the lm"):
        check_part(str(tmp_path), read_manifest(str(tmp_path)), character="a_spk00", corpus="/c", tokenizer=new, part="lm")
    m = update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=new, part="lm", info={}, restart=True)
    assert m["tokenizer"]["codebook_hash"] == "b" * 64
    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=new, part="decoder", info={})
    with pytest.raises(ConfigError, match=r"lm was built on other speech codes .*codebook re-fitted\?\): give another --output$"):
        update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=CODES_A, part="decoder", info={}, restart=True)


def test_a_relative_corpus_path_is_the_same_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    update_part(str(tmp_path / "m"), character="a_spk00", corpus=str(tmp_path / "corpus"), tokenizer=CODES_A, part="lm", info={})
    update_part(str(tmp_path / "m"), character="a_spk00", corpus="corpus/", tokenizer=CODES_A, part="decoder", info={})


@pytest.fixture()
def codebook_corpus(tmp_path):
    from model_fakes import codebook_corpus as make

    return make(tmp_path / "corpus")


def test_the_model_carries_its_codebook(codebook_corpus, tmp_path):
    """The folder gets the corpus's tokenizer.json and codebook; the model answers with that copy
    after the corpus's codebook is re-fitted; a copy changed by hand is refused."""
    from model_fakes import TOKENIZER, fit_corpus_codebook

    from audiorole_ray.arp_model import SPEECH_DIR, SpeechTokenizer, model_codebook

    speech = SpeechTokenizer.from_corpus(str(codebook_corpus), TOKENIZER)
    model = tmp_path / "m"
    m = update_part(str(model), character="syn_spk00", corpus=str(codebook_corpus), tokenizer=speech.info, part="lm",
                    info={}, speech=speech)
    trained = speech.info["codebook_hash"]
    assert m["speech_tokenizer"] == SPEECH_DIR
    copy = json.loads((model / SPEECH_DIR / "tokenizer.json").read_text())
    assert copy["codebook_hash"] == trained and copy["codebook"] == "codebook.npz" and copy["name"] == TOKENIZER
    assert model_codebook(str(model), m).hash == trained
    assert fit_corpus_codebook(codebook_corpus, seed=1) != trained  # the corpus re-fitted after training
    assert model_codebook(str(model), read_manifest(str(model))).hash == trained
    # a decoder trained now would be on other codes: refused before anything is written
    later = SpeechTokenizer.from_corpus(str(codebook_corpus), TOKENIZER)
    with pytest.raises(ConfigError, match=r"codebook_hash .* -> .*--codebook .*speech_tokenizer/codebook\.npz"):
        update_part(str(model), character="syn_spk00", corpus=str(codebook_corpus), tokenizer=later.info, part="decoder",
                    info={}, speech=later)
    assert model_codebook(str(model), read_manifest(str(model))).hash == trained  # the copy was not overwritten
    (model / SPEECH_DIR / "codebook.npz").write_bytes((codebook_corpus / "tokens" / TOKENIZER / "codebook.npz").read_bytes())
    with pytest.raises(InputError, match=r"speech_tokenizer/codebook\.npz hashes to .* but .*arp_model\.json records"):
        model_codebook(str(model), read_manifest(str(model)))


def test_a_model_without_its_copy_uses_the_corpus_codebook_only_while_it_is_the_same(codebook_corpus, tmp_path):
    from model_fakes import TOKENIZER, fit_corpus_codebook

    from audiorole_ray.arp_model import SpeechTokenizer, model_codebook

    info = SpeechTokenizer.from_corpus(str(codebook_corpus), TOKENIZER).info
    m = update_part(str(tmp_path / "m"), character="syn_spk00", corpus=str(codebook_corpus), tokenizer=info, part="lm", info={})
    assert "speech_tokenizer" not in m  # a model made before models carried their copy
    assert model_codebook(str(tmp_path / "m"), m).hash == info["codebook_hash"]
    fit_corpus_codebook(codebook_corpus, seed=1)
    with pytest.raises(ConfigError, match="carries no codebook of its own and its corpus's .* is another one .*give --codebook"):
        model_codebook(str(tmp_path / "m"), m)


def test_a_codebook_that_is_not_the_tokens_one_is_refused(codebook_corpus):
    """tokenizer.json names the codebook the token files were made with; a codebook.npz written
    since (a re-fit still running) is not copied into a model."""
    from model_fakes import TOKENIZER

    from audiorole_ray.arp_model import SpeechTokenizer
    from audiorole_ray.tokens.codebook import fit_codebook

    import numpy as np

    fit_codebook(np.random.default_rng(5).normal(size=(256, 8)), 64, seed=5, iterations=2).save(
        str(codebook_corpus / "tokens" / TOKENIZER / "codebook.npz"))
    with pytest.raises(InputError, match="is not the codebook .* tokens were made with .*a re-fit under way"):
        SpeechTokenizer.from_corpus(str(codebook_corpus), TOKENIZER)


def test_the_responder_answers_with_the_models_codebook(codebook_corpus, tmp_path):
    """respond's speech tokenizer is built on the model's copy, not on the corpus's codebook of
    the day; --codebook still overrides."""
    from model_fakes import TOKENIZER, fit_corpus_codebook

    from audiorole_ray.arp_model import SpeechTokenizer
    from audiorole_ray.respond.engine import Responder

    speech = SpeechTokenizer.from_corpus(str(codebook_corpus), TOKENIZER)
    m = update_part(str(tmp_path / "m"), character="syn_spk00", corpus=str(codebook_corpus), tokenizer=speech.info,
                    part="lm", info={}, speech=speech)
    refit = fit_corpus_codebook(codebook_corpus, seed=1)
    r = Responder(str(tmp_path / "m"))
    r.manifest = m
    r._load_speech_tokenizer(m["tokenizer"])
    assert r.tokenizer.codebook.hash == speech.info["codebook_hash"] != refit
    r = Responder(str(tmp_path / "m"), codebook=str(codebook_corpus / "tokens" / TOKENIZER / "codebook.npz"))
    r.manifest = m
    r._load_speech_tokenizer(m["tokenizer"])
    assert r.tokenizer.codebook.hash == refit


def test_the_manifest_is_not_written_while_another_process_holds_its_lock(tmp_path):
    """The LM and decoder jobs finish independently; each read-modify-write of the manifest waits
    for the other's, so neither part is lost."""
    import socket
    import subprocess
    import sys
    import threading
    import time

    from audiorole_ray.pipeline.lock import OutputLock

    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=CODES_A, part="lm", info={})
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = OutputLock(str(tmp_path), name="arp_model.lock")
        lock_file = tmp_path / "_state" / "arp_model.lock.json"
        assert lock.uri == str(lock_file)
        lock_file.parent.mkdir(exist_ok=True)
        lock_file.write_text(json.dumps({"owner": "other", "host": socket.gethostname(), "pid": holder.pid,
                                         "started": "now", "heartbeat": time.time()}))
        done = threading.Thread(target=update_part, args=(str(tmp_path),), kwargs=dict(
            character="a_spk00", corpus="/c", tokenizer=CODES_A, part="decoder", info={}))
        done.start()
        time.sleep(1.5)
        assert done.is_alive() and sorted(read_manifest(str(tmp_path))["parts"]) == ["lm"]
        lock_file.unlink()  # the other process is done with the manifest
        done.join(timeout=10)
        assert not done.is_alive()
        assert sorted(read_manifest(str(tmp_path))["parts"]) == ["decoder", "lm"]
    finally:
        holder.kill()
        holder.wait()
