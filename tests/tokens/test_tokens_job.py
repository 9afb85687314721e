"""The tokenize job: every clip of dialogues.parquet gets tokens at 12.5 per second or an error
row; codebook fitted on the training split; resume; a refit redoes the tokens; the readers; a
deleted or truncated shard fails only the clips it cannot give and keeps their earlier tokens,
and the summary and the exit code count them. The job runs in-process (``local``) here;
``test_cli_on_ray`` runs the CLI on Ray."""
import functools
import importlib.util
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

from audiorole_ray import cli
from audiorole_ray.corpus.shards import read_shard_partial
from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.tokens import job, read_tokenizer_info, read_tokens, tokens_by_key
from audiorole_ray.tokens.codebook import load_codebook
from audiorole_ray.tokens.job import KEPT, TokenizeConfig, clip_table, run

ROOT = Path(__file__).resolve().parents[2]


def check_coverage(corpus, tokenizer="whisper-units"):
    """Every clip has tokens, n_tokens within 2 of duration x 12.5, or an error row naming it;
    a clip with both is one whose row says it keeps the tokens of an earlier run."""
    clips = clip_table(str(corpus)).set_index("audio_key")
    tok = read_tokens(str(corpus), tokenizer).set_index("audio_key")
    errors = pd.read_parquet(Path(corpus) / "tokens" / tokenizer / "errors.parquet")
    failed = {e.split(":", 1)[0] for e in errors.error}
    kept = {e.split(":", 1)[0] for e in errors.error if e.endswith(KEPT)}
    assert set(tok.index) | failed == set(clips.index) and set(tok.index) & failed == kept
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
    assert "clips 8/8 tokenized, 0 failed" in r.stdout and "codebook fitted on" in r.stdout
    tok, _ = check_coverage(corpus)
    summary = json.loads((corpus / "tokens" / "whisper-units" / "summary.json").read_text())
    assert summary["shards"] == 2 and summary["shards_resumed"] == 0
    r = _cli("--corpus", str(corpus), "--workers", "2", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 resumed from an earlier run" in r.stdout, r.stdout
    assert read_tokens(str(corpus), "whisper-units").equals(tok.reset_index())


# ----------------------------------------------------------------------------- damaged shards

def written(corpus) -> dict:
    """{token file: mtime}: tells which files a run (re)wrote."""
    return {p: p.stat().st_mtime_ns for p in (Path(corpus) / "tokens" / "whisper-units" / "shards").rglob("*.parquet")}


def check_summary(corpus, s, before):
    """The summary's and tokenizer.json's counts are what the run wrote."""
    tok, errors = check_coverage(corpus)
    kept = errors.error.str.endswith(KEPT)
    assert s["errors"] == len(errors) and s["kept"] == kept.sum() and s["tokenized"] + s["errors"] == s["clips"]
    assert s["tokenized"] + s["kept"] == len(tok) and s["shards_failed"] == errors.episode_id.nunique()
    after = written(corpus)
    assert s["shards_written"] == sum(after[p] != before.get(p) for p in after)
    info = read_tokenizer_info(str(corpus), "whisper-units")
    assert all(info[k] == s[k] for k in ("clips", "tokenized", "errors", "kept"))
    return tok, errors


def run_checked(corpus, config):
    before = written(corpus)
    s = run(config, local=True)
    return (s, *check_summary(corpus, s, before))


def shard_keys(corpus, episode="ep01") -> set:
    clips = clip_table(str(corpus))
    return set(clips[clips.audio_path == f"audio/sitcom/{episode}.tar"].audio_key)


def test_deleted_shard_fails_its_clips_and_keeps_their_tokens(corpus, units_codebook, tmp_path):
    config = TokenizeConfig(corpus=str(corpus), codebook=str(units_codebook), workers=1)
    fresh, tok, _ = run_checked(corpus, config)
    assert fresh["errors"] == 0
    shard, ep01 = corpus / "audio" / "sitcom" / "ep01.tar", shard_keys(corpus)
    token_file = corpus / "tokens" / "whisper-units" / "shards" / "sitcom" / "ep01.parquet"
    audio, good = shard.read_bytes(), token_file.read_bytes()
    shard.unlink()
    for _ in range(2):  # and again while the shard is still missing
        s, now, errors = run_checked(corpus, config)
        assert s["tokenized"] == 8 - len(ep01) and s["errors"] == s["kept"] == len(ep01) and s["shards_failed"] == 1
        assert {e.split(":", 1)[0] for e in errors.error} == ep01
        assert errors.error.str.contains(f"the shard {shard} is missing", regex=False).all()
        assert token_file.read_bytes() == good and now.equals(tok)  # kept, not replaced by an empty one
    # a first run on the corpus without the shard: its clips fail, the rest is tokenized
    other = tmp_path / "other"
    shutil.copytree(corpus, other, ignore=shutil.ignore_patterns("tokens"))
    other_config = TokenizeConfig(corpus=str(other), codebook=str(units_codebook), workers=1)
    s, now, _ = run_checked(other, other_config)
    assert s["tokenized"] == 8 - len(ep01) and s["errors"] == len(ep01) and s["kept"] == 0
    assert set(now.index) == set(tok.index) - ep01
    # the shard back: both end as a fresh run on the whole corpus
    shard.write_bytes(audio)
    (other / "audio" / "sitcom" / "ep01.tar").write_bytes(audio)
    for root, cfg in ((corpus, config), (other, other_config)):
        s, now, _ = run_checked(root, cfg)
        assert s["errors"] == 0 and now.equals(tok)
        assert (root / "tokens" / "whisper-units" / "shards" / "sitcom" / "ep01.parquet").read_bytes() == good


def test_truncated_shard_tokenizes_the_clips_before_the_cut(corpus, units_codebook, tmp_path):
    config = TokenizeConfig(corpus=str(corpus), codebook=str(units_codebook), workers=1)
    _, tok, _ = run_checked(corpus, config)
    shard, ep01 = corpus / "audio" / "sitcom" / "ep01.tar", shard_keys(corpus)
    token_file = corpus / "tokens" / "whisper-units" / "shards" / "sitcom" / "ep01.parquet"
    audio, good = shard.read_bytes(), token_file.read_bytes()
    shard.write_bytes(audio[: len(audio) // 2])
    samples, damage = read_shard_partial(str(shard))
    before = {k for k, v in samples.items() if "flac" in v} & ep01
    assert damage and 0 < len(before) < len(ep01)
    s, now, errors = run_checked(corpus, config)
    assert s["tokenized"] == 8 - len(ep01 - before) and s["errors"] == s["kept"] == len(ep01 - before)
    assert {e.split(":", 1)[0] for e in errors.error} == ep01 - before
    assert errors.error.str.contains(f"{shard} is cut or damaged", regex=False).all()
    assert now.equals(tok)  # the clips before the cut tokenized again, the others kept
    assert "sitcom/ep01" not in MarkerStore(str(corpus / "tokens" / "whisper-units" / "_state")).ids("tokenized")
    # a first run on the cut corpus: the clips before the cut get tokens, the others fail
    other = tmp_path / "other"
    shutil.copytree(corpus, other, ignore=shutil.ignore_patterns("tokens"))
    s, now, _ = run_checked(other, TokenizeConfig(corpus=str(other), codebook=str(units_codebook), workers=1))
    assert s["kept"] == 0 and set(now.index) == set(tok.index) - (ep01 - before)
    assert now.equals(tok.loc[sorted(now.index)])
    # the shard restored: the shard is done again, and ends as a fresh run
    shard.write_bytes(audio)
    s, now, _ = run_checked(corpus, config)
    assert s["errors"] == 0 and s["shards_written"] == 1 and now.equals(tok) and token_file.read_bytes() == good


def test_codebook_fit_refuses_unreadable_training_clips(corpus):
    (corpus / "audio" / "sitcom" / "ep01.tar").unlink()
    with pytest.raises(InputError, match="training clips chosen to fit the codebook could not be read .*--codebook"):
        run(TokenizeConfig(corpus=str(corpus), codebook_size=16, workers=1), local=True)
    out = corpus / "tokens" / "whisper-units"
    assert not (out / "codebook.npz").exists() and not (out / "tokenizer.json").exists()


def _job_main():
    spec = importlib.util.spec_from_file_location("tokenize_corpus_job", ROOT / "jobs" / "tokenize_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_counts_failed_clips_and_leaves_no_empty_state(corpus, units_codebook, monkeypatch, capsys):
    """The CLI's main in this process, its tokenize pass run locally instead of on Ray."""
    mod, out = _job_main(), corpus / "tokens" / "whisper-units"
    monkeypatch.setattr(job, "run", functools.partial(job.run, local=True))
    argv = ["--corpus", str(corpus), "--codebook", str(units_codebook), "--workers", "1"]

    def refuse(*_, **__):
        raise ConfigError("no Ray here")

    monkeypatch.setattr(mod, "init_ray", refuse)  # fails up front, holding the lock
    assert cli.run_main(mod.main, argv) == 2 and not (out / "_state").exists()
    monkeypatch.setattr(mod, "init_ray", lambda *_, **__: None)
    (corpus / "audio" / "sitcom" / "ep01.tar").unlink()
    assert cli.run_main(mod.main, argv) == 1  # the rest is written, the failures counted and not a success
    n = len(shard_keys(corpus))
    text = capsys.readouterr().out
    assert f"clips {8 - n}/8 tokenized, {n} failed (listed in {out}/errors.parquet)" in text
    assert "shards 2: 1 written, 0 resumed from an earlier run, 1 with failed clips" in text
    (corpus / "audio" / "sitcom" / "ep02.tar").unlink()
    assert cli.run_main(mod.main, argv) == 1  # nothing tokenized
    assert "clips 0/8 tokenized, 8 failed" in capsys.readouterr().out
