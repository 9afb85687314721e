"""jobs/train_lm.py refuses bad input with one line and exit code 2, before Ray starts."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lm_fixtures import TARGET

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "jobs"))
import train_lm  # noqa: E402


@pytest.mark.parametrize("extra, message", [
    (["--target", "nobody_spk07"], "has no dialogues"),
    (["--plugin", "gemini"], "needs GPUs"),
    (["--plugin", "zero2", "--gpus-per-worker", "1", "--lora"], None),  # accepted: checked further on
    (["--tokenizer", "glm4voice"], "no tokens of speech tokenizer 'glm4voice'"),
    (["--model", "/nowhere/glm-4-voice-9b"], "not a local model folder"),
    (["--max-tokens", "10"], "--max-tokens must be at least 64"),
], ids=["target", "gemini-cpu", "zero2-lora", "tokenizer", "model", "max-tokens"])
def test_bad_options_exit_2(synthetic_corpus, tmp_path, capsys, monkeypatch, extra, message):
    import ray

    if message is None:  # the options are valid: stop right before Ray would start
        monkeypatch.setattr(ray, "init", lambda *a, **k: (_ for _ in ()).throw(SystemExit(0)))
    args = ["--corpus", str(synthetic_corpus), "--target", TARGET, "--model", "tiny", "--output", str(tmp_path / "m")]
    if "--target" in extra:
        args = args[:2] + args[4:]
    if "--model" in extra:
        args = [a for a in args if a not in ("--model", "tiny")]
    if message is None:
        with pytest.raises(SystemExit):
            train_lm.main(args + extra)
        assert (tmp_path / "m" / "lm" / "preview.jsonl").exists()
        return
    assert train_lm.run_main(train_lm.main, args + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "m" / "lm" / "_ray").exists()


def test_required_options(capsys):
    assert train_lm.run_main(train_lm.main, ["--model", "tiny"]) == 2
    assert "--corpus, --target, --output required" in capsys.readouterr().err
