"""The tokenize job: every clip of dialogues.parquet gets tokens at 12.5 per second or an error
row; codebook fitted on the training split; resume; a refit redoes the tokens; the readers.
The job runs in-process (``local``) here; ``test_cli_on_ray`` runs the CLI on Ray."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tokens_corpus import make_corpus

from audiorole_ray.errors import InputError
from audiorole_ray.tokens import read_tokenizer_info, read_tokens, tokens_by_key
from audiorole_ray.tokens.codebook import load_codebook
from audiorole_ray.tokens.job import TokenizeConfig, clip_table, run

ROOT = Path(__file__).resolve().parents[2]


def check_coverage(corpus, tokenizer="whisper-units"):
    """Every clip has tokens, n_tokens within 2 of duration x 12.5, or an error row naming it."""
    clips = clip_table(str(corpus)).set_index("audio_key")
    tok = read_tokens(str(corpus), tokenizer).set_index("audio_key")
    errors = pd.read_parquet(Path(corpus) / "tokens" / tokenizer / "errors.parquet")
    failed = {e.split(":", 1)[0] for e in errors.error}
    assert set(tok.index) | failed == set(clips.index) and not set(tok.index) & failed
    gap = tok.n_tokens - clips.loc[tok.index, "duration"] * 12.5
    assert (gap.abs() < 2).all(), gap
    assert (tok.n_tokens == tok.tokens.map(len)).all() and (tok.frame_rate == 12.5).all()
    return tok, errors


@pytest.fixture
def corpus(tiny_corpus, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out)
    return out


def test_job_covers_every_clip_and_resumes(corpus):
    config = TokenizeConfig(corpus=str(corpus), codebook_size=16, workers=1)
    with pytest.raises(InputError, match="no 'whisper-units' tokens"):
        read_tokens(str(corpus), "whisper-units")
    s = run(config, local=True)
    assert s["tokenized"] == s["clips"] == 8 and s["errors"] == 0 and s["codebook_fit"]["fitted"]
    tok, errors = check_coverage(corpus)
    assert errors.empty
    # the codebook: fitted on the training clips only (6 of 8), saved beside the tokens
    out = corpus / "tokens" / "whisper-units"
    book = load_codebook(str(out / "codebook.npz"))
    train = clip_table(str(corpus)).query("split == 'train'")
    assert book.meta["clips"] == len(train) == 6 and book.size == 16
    assert book.meta["frames"] == sum(-(-int(round(d * 24000)) // 1920) for d in train.duration)
    info = read_tokenizer_info(str(corpus), "whisper-units")
    assert info["vocab_size"] == 16 and info["frame_rate"] == 12.5 and info["codebook_hash"] == book.hash
    assert info["codebook"] == "codebook.npz" and info["tokenized"] == 8 and info["errors"] == 0
    assert len(set(np.concatenate(tok.tokens.values))) >= 12

    # a re-run resumes every shard and changes nothing
    again = run(config, local=True)
    assert again["shards_resumed"] == 2 and not again["codebook_fit"]["fitted"]
    assert read_tokens(str(corpus), "whisper-units").equals(tok.reset_index())

    # a refit with the same seed gives the same codebook, so the tokens stay as they are
    same = run(TokenizeConfig(corpus=str(corpus), codebook_size=16, fit_codebook=True), local=True)
    assert same["codebook_fit"]["hash"] == book.hash and same["shards_resumed"] == 2
    assert same["codebook_fit"]["encode_resumed"] == 2  # the training frames were kept

    # another seed: another codebook, and every shard is tokenized again with it
    other = run(TokenizeConfig(corpus=str(corpus), codebook_size=16, fit_codebook=True, seed=1), local=True)
    assert other["codebook_fit"]["hash"] != book.hash and other["shards_resumed"] == 0
    retok = read_tokens(str(corpus), "whisper-units")
    assert list(retok.n_tokens) == list(tok.n_tokens) and list(retok.tokens.map(list)) != list(tok.tokens.map(list))
    by_key = tokens_by_key(str(corpus), "whisper-units")
    assert set(by_key) == set(tok.index) and all(isinstance(t, int) for t in next(iter(by_key.values())))


def test_bad_clips_are_recorded_and_stale_files_removed(tmp_path, units_codebook):
    corpus = tmp_path / "corpus"
    make_corpus(corpus, corrupt="sitcom-ep02-s0000-u003", missing="sitcom-ep01-s0000-u004")
    stale = corpus / "tokens" / "whisper-units" / "shards" / "sitcom" / "gone.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an episode no longer in the corpus")
    s = run(TokenizeConfig(corpus=str(corpus), codebook=str(units_codebook)), local=True)
    assert s["tokenized"] == 6 and s["errors"] == 2 and s["outputs_removed"] == 1 and not stale.exists()
    _, errors = check_coverage(corpus)
    assert set(errors.episode_id) == {"sitcom/ep01", "sitcom/ep02"} and set(errors.stage) == {"tokenize"}
    assert errors.uri.str.endswith(".tar").all()
    info = read_tokenizer_info(str(corpus), "whisper-units")
    assert info["codebook"] == str(units_codebook) and info["errors"] == 2


def _cli(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray of its own
    env.update(OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled")
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "tokenize_corpus.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def test_cli_errors_before_ray(tmp_path):
    r = _cli("--corpus", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "not a corpus" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--corpus", str(tmp_path), "--tokenizer", "glm4voice")
    assert r.returncode == 2 and "--tokenizer-model" in r.stderr
    make_corpus(tmp_path, n_clips=4)
    r = _cli("--corpus", str(tmp_path), "--tokenizer", "glm4voice", "--tokenizer-model", str(tmp_path / "none"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _cli("--corpus", str(tmp_path), "--codebook", str(tmp_path / "none.npz"))
    assert r.returncode == 2 and "no codebook" in r.stderr
    r = _cli("--corpus", str(tmp_path), "--workers", "0")
    assert r.returncode == 2 and "--workers" in r.stderr
    assert not (tmp_path / "tokens" / "whisper-units" / "tokenizer.json").exists()


@pytest.mark.slow
def test_cli_on_ray(corpus):
    r = _cli("--corpus", str(corpus), "--codebook-size", "16", "--workers", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "clips 8/8 tokenized, errors 0" in r.stdout and "codebook fitted on" in r.stdout
    tok, _ = check_coverage(corpus)
    summary = json.loads((corpus / "tokens" / "whisper-units" / "summary.json").read_text())
    assert summary["shards"] == 2 and summary["shards_resumed"] == 0
    r = _cli("--corpus", str(corpus), "--workers", "2", timeout=600)
    assert r.returncode == 0 and "2 resumed from an earlier run" in r.stdout
    assert read_tokens(str(corpus), "whisper-units").equals(tok.reset_index())
