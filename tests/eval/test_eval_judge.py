"""The judge client: strict parsing, one retry on an unparseable answer, backoff on rate limits
and timeouts, bounded concurrency, keys from the environment and never in a message."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("openai")

from fake_openai import FakeOpenAI, hears_probe  # noqa: E402

from audiorole_ray.eval.judge import ChatClient, ScoreJudge, api_key, parse_score, redact, wav_base64  # noqa: E402

SENTINEL = "sk-SENTINEL-0123456789abcdefXYZW"


@pytest.mark.parametrize("text,want", [("2", 2), (" 1\n", 1), ("0", 0), ("3", None), ("-1", None), ("2.", None),
                                       ("Score: 2", None), ("2 because", None), ("", None), (None, None), ("１", None)])
def test_parse_is_strict(text, want):
    assert parse_score(text, 0, 2) == want


def judge(url, **kw) -> ScoreJudge:
    return ScoreJudge(ChatClient(url, "judge-model", backoff_s=0.01, max_backoff_s=0.05, **kw), 0, 2)


def test_score_sends_prompt_at_temperature_zero():
    with FakeOpenAI(["2"]) as srv:
        r = judge(srv.url).score([{"type": "text", "text": "rate this"}])
    assert (r.score, r.raw, r.error, r.attempts) == (2, ["2"], "", 1)
    body = srv.requests[0]["body"]
    assert body["temperature"] == 0 and body["model"] == "judge-model"
    assert body["messages"][0]["content"][0]["text"] == "rate this"


def test_unparseable_answer_is_asked_once_more():
    with FakeOpenAI(["The answer is good: 2", "1"]) as srv:
        r = judge(srv.url).score([{"type": "text", "text": "x"}])
    assert r.score == 1 and r.raw == ["The answer is good: 2", "1"] and len(srv.requests) == 2


def test_twice_unparseable_keeps_raw_answers_and_no_score():
    with FakeOpenAI(["great", "very great", "2"]) as srv:
        r = judge(srv.url).score([{"type": "text", "text": "x"}])
    assert r.score is None and r.raw == ["great", "very great"] and "unparseable" in r.error
    assert len(srv.requests) == 2  # not a third time


def test_rate_limits_are_retried_with_backoff():
    with FakeOpenAI([{"status": 429, "retry_after": 0}, {"status": 503}, "0"]) as srv:
        r = judge(srv.url).score([{"type": "text", "text": "x"}])
    assert r.score == 0 and r.attempts == 3


def test_retries_are_bounded():
    with FakeOpenAI([{"status": 429, "retry_after": 0}]) as srv:
        r = judge(srv.url, max_retries=2).score([{"type": "text", "text": "x"}])
    assert r.score is None and "RateLimitError" in r.error and len(srv.requests) == 3


def test_timeouts_are_retried():
    with FakeOpenAI([{"sleep": 1.5, "text": "2"}, "1"]) as srv:
        r = judge(srv.url, timeout_s=0.5).score([{"type": "text", "text": "x"}])
    assert r.score == 1 and r.attempts == 2


def test_concurrency_is_bounded():
    with FakeOpenAI([{"sleep": 0.3, "text": "1"}]) as srv:
        j = ScoreJudge(ChatClient(srv.url, "bounded-model", concurrency=2), 0, 2)
        threads = [threading.Thread(target=j.score, args=([{"type": "text", "text": "x"}],)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(srv.requests) == 6 and srv.max_in_flight == 2


def test_key_comes_from_the_environment_and_never_shows(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", SENTINEL)
    with FakeOpenAI([{"status": 401, "echo_key": True}]) as srv:
        j = judge(srv.url, api_key_env="MY_JUDGE_KEY")
        r = j.score([{"type": "text", "text": "x"}])
        assert {k.lower(): v for k, v in srv.requests[0]["headers"].items()}["authorization"] == f"Bearer {SENTINEL}"  # it was sent
    assert r.score is None and "AuthenticationError" in r.error
    assert SENTINEL not in r.error and SENTINEL[:8] not in r.error and SENTINEL[-6:] not in r.error
    assert "[redacted]" in r.error
    assert SENTINEL not in repr(j.chat.__getstate__())


def test_redact_pieces_and_masks():
    assert redact(f"key {SENTINEL} bad", SENTINEL) == "key [redacted] bad"
    assert SENTINEL[:8] not in redact(f"got {SENTINEL[:10]}***WXYZ", SENTINEL)
    assert redact("nothing here", SENTINEL) == "nothing here"


def test_no_key_for_local_servers(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert api_key() == "no-key"


def test_wav_base64_is_raw_base64_wav():
    import base64

    data = base64.b64decode(wav_base64(np.zeros(1600, np.float32), 16000))
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def test_audio_probe_accepts_a_judge_that_hears():
    from audiorole_ray.eval.probe import require_audio

    with FakeOpenAI(["0"], responder=hears_probe) as srv:
        result = require_audio(ChatClient(srv.url, "hears"))
        sent = srv.requests[0]["body"]["messages"][0]["content"]
    assert result.heard and min(result.recalls) == 1.0
    assert sent[1]["type"] == "input_audio" and sent[1]["input_audio"]["format"] == "wav"


@pytest.mark.parametrize("script,match", [(["I cannot hear anything."], "does not hear its input audio"),
                                          ([{"status": 400}], "cannot take input_audio")])
def test_audio_probe_refuses_a_deaf_or_refusing_judge(script, match):
    from audiorole_ray.errors import ConfigError
    from audiorole_ray.eval.probe import require_audio

    with FakeOpenAI(script) as srv:
        with pytest.raises(ConfigError, match=match):
            require_audio(ChatClient(srv.url, "deaf", max_retries=0))
