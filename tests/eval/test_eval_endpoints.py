"""Endpoints of openai: systems and judges: which one is used (--api-url, else OPENAI_BASE_URL,
else the openai client's default), that the job says which, and that each is checked with one
small request before anything is written: no server, a refused key, an unknown model are one
line and exit 2 in seconds. A sentinel key must reach the right server and no output."""
from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("openai")

from eval_cli import evaluate_job, run_evaluate  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

from audiorole_ray.errors import ConfigError  # noqa: E402

SENTINEL = "sk-SENTINEL-endpoint-4b8e1f2a9c7d3e60"
MODEL = "speech-model"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("c"), series=("heldout",))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OTHER_KEY"):
        monkeypatch.delenv(var, raising=False)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def args(corpus, out, *extra) -> list[str]:
    return ["--corpus", str(corpus), "--output", str(out), "--system", "reference", *extra, "--local"]


def auth_of(request) -> str:
    return {k.lower(): v for k, v in request["headers"].items()}.get("authorization", "")


def refused(capsys, argv, out, want: str, within_s: float = 15.0) -> str:
    """Run the job; it must exit 2 with one line containing ``want``, fast, with nothing written."""
    t = time.perf_counter()
    rc = run_evaluate(argv)
    took = time.perf_counter() - t
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert cap.err.startswith("error: ") and len(cap.err.strip().splitlines()) == 1 and want in cap.err, cap.err
    assert took < within_s, took
    assert not out.exists()  # refused before the output (or its _state/) was touched
    for text in (cap.out, cap.err):
        assert SENTINEL not in text and SENTINEL[-8:] not in text
    return cap.out + cap.err


def test_api_url_order(monkeypatch):
    import openai

    from audiorole_ray.eval.judge import resolve_api_url

    default = str(openai.OpenAI(api_key="x").base_url).rstrip("/")
    assert resolve_api_url(None) == (default, "the openai client's default")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert resolve_api_url(None) == ("http://127.0.0.1:8000/v1", "OPENAI_BASE_URL")
    assert resolve_api_url("http://10.0.0.1/v1") == ("http://10.0.0.1/v1", "--api-url")  # a given option wins


@pytest.mark.parametrize("give_flag", [False, True])
def test_the_key_goes_to_the_endpoint_the_user_set(corpus, tmp_path, monkeypatch, capsys, give_flag):
    """OPENAI_BASE_URL is used when --api-url is not given (no default of ours overrides it), and
    --api-url wins when given; the job prints the endpoint and where it came from, never the key.
    The model is unknown to the server, so the probe refuses before any work."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    with FakeOpenAI(["1"], key=SENTINEL, models=["judge"]) as env_srv, FakeOpenAI(["1"], key=SENTINEL, models=["judge"]) as flag_srv:
        monkeypatch.setenv("OPENAI_BASE_URL", env_srv.url)
        used, unused = (flag_srv, env_srv) if give_flag else (env_srv, flag_srv)
        extra = ["--api-url", flag_srv.url] if give_flag else []
        out = tmp_path / "e"
        text = refused(capsys, args(corpus, out, "--system", f"gpt=openai:{MODEL}", *extra,
                                    "--judge-url", env_srv.url, "--judge-model", "judge"), out, "has no model")
        assert f"endpoint of system gpt (openai:{MODEL}): {used.url} (from {'--api-url' if give_flag else 'OPENAI_BASE_URL'})" in text
        assert f"endpoint of the text judge judge: {env_srv.url} (from --judge-url), key from $OPENAI_API_KEY" in text
        assert [r["path"] for r in used.requests] == [f"/v1/models/{MODEL}", "/v1/chat/completions"]
        assert all(auth_of(r) == f"Bearer {SENTINEL}" for r in used.requests)
        assert not unused.requests  # the key went nowhere else

    job = evaluate_job()
    settings = job.make_settings(job.parse_args(args(corpus, out, "--system", f"gpt=openai:{MODEL}", *extra)))
    assert settings.api["url"] == used.url  # what the workers' clients get


def test_no_server_is_refused_in_seconds(corpus, tmp_path, capsys):
    """Was: 7 attempts with backoff per item (about 110 s for 2 items) before every row failed."""
    out = tmp_path / "e"
    url = closed_port_url()
    text = refused(capsys, args(corpus, out, "--system", f"gpt=openai:{MODEL}", "--api-url", url), out, "cannot be reached",
                   within_s=10)
    assert f"{url} (from --api-url), key from $OPENAI_API_KEY (not set)" in text


def test_a_named_key_variable_must_be_set(corpus, tmp_path, capsys):
    with FakeOpenAI(["1"]) as srv:
        out = tmp_path / "e"
        refused(capsys, args(corpus, out, "--system", f"gpt=openai:{MODEL}", "--api-url", srv.url, "--api-key-env", "OTHER_KEY"),
                out, "--api-key-env OTHER_KEY: that environment variable is not set")
        refused(capsys, args(corpus, out, "--judge-url", srv.url, "--judge-model", "j", "--judge-key-env", "OTHER_KEY"),
                out, "--judge-key-env OTHER_KEY: that environment variable is not set")
        assert not srv.requests


def test_a_refused_key_is_one_line(corpus, tmp_path, monkeypatch, capsys):
    with FakeOpenAI(["1"], key=SENTINEL) as srv:
        out = tmp_path / "e"
        refused(capsys, args(corpus, out, "--system", f"gpt=openai:{MODEL}", "--api-url", srv.url), out,
                "wants a key and $OPENAI_API_KEY is not set")
        wrong = "sk-WRONG-key-0123456789abcdef"
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        text = refused(capsys, args(corpus, out, "--system", f"gpt=openai:{MODEL}", "--api-url", srv.url), out,
                       "refused the key in $OPENAI_API_KEY")
        assert wrong not in text and wrong[-6:] not in text  # the server's echo of it is redacted
        assert len(srv.requests) == 2  # one probe each: a refused key is not retried


def test_judges_refusals_name_the_judge(corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "e"
    refused(capsys, args(corpus, out, "--judge-url", closed_port_url(), "--judge-model", "j"), out,
            "the text judge j at")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other-0123456789abcdef")
    with FakeOpenAI(["1"], key=SENTINEL) as srv:
        text = refused(capsys, args(corpus, out, "--audio-judge-url", srv.url, "--audio-judge-model", "aj"), out,
                       "the audio judge aj at")
        assert "refused the key" in text and "input_audio" not in text  # not mistaken for a deaf judge


def test_a_server_without_the_models_route_is_asked_with_one_token(monkeypatch):
    """llama.cpp-like servers have no GET /models/MODEL: one 1-token completion tells."""
    from audiorole_ray.eval.job import preflight
    from audiorole_ray.eval.stage import EvalSettings

    def settings(url):
        return EvalSettings(corpus="c", output="o", systems=[{"name": "gpt", "kind": "openai", "arg": MODEL}],
                            api={"url": url, "key_env": "OPENAI_API_KEY"})

    with FakeOpenAI(["1"], models_route=False) as srv:
        assert preflight(settings(srv.url)) == {"system gpt": "answers"}
        assert srv.requests[-1]["body"]["max_tokens"] == 1
    with FakeOpenAI(["1"], models_route=False, models=["other"]) as srv:
        with pytest.raises(ConfigError, match="has no model 'speech-model'"):
            preflight(settings(srv.url))
    with FakeOpenAI([{"status": 400}], models_route=False) as srv:  # knows the model, refuses a text-only request
        assert preflight(settings(srv.url)) == {"system gpt": "answers (refused the text-only probe)"}
    with FakeOpenAI(["1"], models=[MODEL]) as srv:  # OpenAI: the free GET is enough
        assert preflight(settings(srv.url)) == {"system gpt": "model listed"} and len(srv.requests) == 1


def test_runs_without_an_openai_system_keep_their_item_hashes(corpus, tmp_path, monkeypatch):
    """No endpoint is resolved without an openai: system, and its items hash what they hashed before
    endpoints were resolved (the old --api-url default): an earlier output resumes, whatever
    OPENAI_BASE_URL says, instead of paying its judges again."""
    from audiorole_ray.eval.job import endpoint_lines
    from audiorole_ray.eval.stage import EvalStage

    job = evaluate_job()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    settings = job.make_settings(job.parse_args(args(corpus, tmp_path / "e")))
    assert "url" not in settings.api and endpoint_lines(settings) == []
    assert EvalStage(config=settings).settings()["api"] == {"url": "https://api.openai.com/v1", "voice": "alloy"}
