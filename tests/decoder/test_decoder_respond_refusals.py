"""jobs/respond.py refuses, in seconds and before the model's weights load, what it cannot do
right: an --output that is a folder, not a .wav, the input itself or unwritable; an input longer
than the model's context; a batch output inside its corpus or model. Each refusal is one line,
exit 2, and leaves nothing behind.

The model here is a manifest and the tiny LM's tokenizer, without weights: a job that loaded
the model before refusing would fail otherwise, and these tests with it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "jobs"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from audiorole_ray.lm.tiny import build_tokenizer

    folder = tmp_path_factory.mktemp("respond_refusals") / "model"
    build_tokenizer(64).save_pretrained(folder / "lm")
    (folder / "lm" / "config.json").write_text(json.dumps({"model_type": "glm", "max_position_embeddings": 8192}))  # no weights
    tokenizer = {"name": "whisper-units", "frame_rate": 12.5, "vocab_size": 64}
    (folder / "arp_model.json").write_text(json.dumps({
        "format": "audiorole-arp-model", "version": 1, "character": "sitcom_spk00", "corpus": str(folder / "corpus"),
        "tokenizer": tokenizer, "parts": {"lm": {"path": "lm", "max_tokens": 2048}, "decoder": {"path": "decoder"}}}))
    return folder


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """A few seconds of the sample's speech as a WAV input."""
    from audiorole_ray.io.audio import load
    from audiorole_ray.sample import SAMPLE_SERIES
    from audiorole_ray.wav import write_wav

    audio, _ = load(str(SAMPLE_SERIES / "sitcom" / "ep01.wav"))
    path = tmp_path_factory.mktemp("respond_input") / "a.wav"
    write_wav(str(path), audio[16000 * 10 : 16000 * 14], 16000)
    return path


def respond(argv: list[str], capsys) -> tuple[int, str]:
    from respond import main

    from audiorole_ray.cli import run_main

    code = run_main(main, argv)
    return code, capsys.readouterr().err


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


def one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]


def test_output_that_is_a_folder_is_refused(model, speech, tmp_path, capsys):
    out = tmp_path / "answers"
    out.mkdir()
    code, err = respond(["--model", str(model), "--input", str(speech), "--output", str(out)], capsys)
    assert code == 2
    one_line_error(err, "is a folder", str(out / "a_answer.wav"))
    assert tree(out) == {}  # no hidden temporary answer inside it


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_output_equal_to_the_input_is_refused(model, speech, tmp_path, capsys, spelling):
    before = speech.read_bytes()
    if spelling == "same":
        output = str(speech)
    elif spelling == "dotted":
        output = str(speech.parent / "sub" / ".." / speech.name)
    else:
        (tmp_path / "link.wav").symlink_to(speech)
        output = str(tmp_path / "link.wav")
    code, err = respond(["--model", str(model), "--input", str(speech), "--output", output], capsys)
    assert code == 2
    one_line_error(err, "is the input file")
    assert speech.read_bytes() == before
    assert not (speech.parent / "sub").exists()


def test_output_not_named_wav_is_refused(model, speech, tmp_path, capsys):
    code, err = respond(["--model", str(model), "--input", str(speech), "--output", str(tmp_path / "b.mp3")], capsys)
    assert code == 2
    one_line_error(err, "ending in .wav")
    assert tree(tmp_path) == {}


def test_unwritable_output_is_refused_before_the_model(model, speech, tmp_path, capsys):
    (tmp_path / "plain.txt").write_text("a file, not a folder")
    out = tmp_path / "plain.txt" / "new" / "b.wav"  # its parent cannot be made
    code, err = respond(["--model", str(model), "--input", str(speech), "--output", str(out)], capsys)
    assert code == 2
    one_line_error(err, "cannot be written", "NotADirectoryError")
    assert tree(tmp_path) == {"plain.txt": 20}


def test_too_long_input_is_refused_with_counts_and_the_fix(model, tmp_path, capsys):
    """10 minutes of speech (the sample's episode, repeated) are 7,500 tokens against a model
    trained on 2,048-token samples: refused before the weights load, and the folders the output
    would need are not left behind."""
    import time

    from audiorole_ray.io.audio import load
    from audiorole_ray.sample import SAMPLE_SERIES
    from audiorole_ray.wav import write_wav

    episode, _ = load(str(SAMPLE_SERIES / "sitcom" / "ep01.wav"))
    long = np.tile(episode, 7)[: 600 * 16000]
    write_wav(str(tmp_path / "long.wav"), long, 16000)
    out = tmp_path / "new" / "deeper" / "b.wav"
    t0 = time.perf_counter()
    code, err = respond(["--model", str(model), "--input", str(tmp_path / "long.wav"), "--output", str(out)], capsys)
    assert code == 2
    one_line_error(err, "7500 speech tokens", "context is 2048 tokens", "--truncate-input", "max_new_tokens 600")
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "new").exists()


def test_max_new_tokens_beyond_the_context_is_refused(model, speech, tmp_path, capsys):
    code, err = respond(["--model", str(model), "--input", str(speech), "--output", str(tmp_path / "b.wav"),
                         "--max-new-tokens", "2048"], capsys)
    assert code == 2
    one_line_error(err, "--max-new-tokens 2048", "2048-token context")
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("where", ["corpus", "inside-corpus", "model"])
def test_batch_output_inside_its_inputs_is_refused(model, tmp_path, capsys, where):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dialogues.parquet").write_bytes(b"not read")
    output = {"corpus": corpus, "inside-corpus": corpus / "responses", "model": model}[where]
    before_corpus, before_model = tree(corpus), tree(model)
    code, err = respond(["--model", str(model), "--corpus", str(corpus), "--output", str(output)], capsys)
    assert code == 2
    one_line_error(err, "respond never writes into its inputs")
    assert tree(corpus) == before_corpus and tree(model) == before_model


def test_batch_refused_up_front_leaves_no_output(model, tmp_path, capsys):
    """A corpus without dialogues stops the job before its output is made: no folder, no _state/."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    code, err = respond(["--model", str(model), "--corpus", str(corpus), "--output", str(tmp_path / "responses")], capsys)
    assert code == 2 and err.startswith("error: ")
    assert not (tmp_path / "responses").exists()


def test_removed_if_failed_takes_only_empty_folders(tmp_path):
    from audiorole_ray.respond.job import removed_if_failed

    made = tmp_path / "made"
    with pytest.raises(RuntimeError), removed_if_failed(str(made)):
        (made / "_state" / "responded").mkdir(parents=True)
        raise RuntimeError("failed up front")
    assert not made.exists()
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError), removed_if_failed(str(kept)):
        (kept / "_state").mkdir(parents=True)
        (kept / "audio").mkdir()
        (kept / "audio" / "d1.tar").write_bytes(b"answers")
        raise RuntimeError("failed after an answer was written")
    assert (kept / "audio" / "d1.tar").read_bytes() == b"answers"  # a written answer keeps its folders
    assert not (kept / "_state").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError), removed_if_failed(str(existing)):
        (existing / "_state").mkdir()
        raise RuntimeError("failed")
    assert existing.is_dir() and not (existing / "_state").exists()  # the user's folder stays


def test_model_without_its_lm_is_refused_in_one_line(model, speech, tmp_path, capsys):
    import shutil

    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    shutil.rmtree(broken / "lm")
    code, err = respond(["--model", str(broken), "--input", str(speech), "--output", str(tmp_path / "b.wav")], capsys)
    assert code == 2
    one_line_error(err, "holds no LM", "jobs/train_lm.py")
    assert not (tmp_path / "b.wav").exists()
