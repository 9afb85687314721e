"""A scripted OpenAI-compatible chat server on loopback, for the judge client's failure paths
(rate limits, timeouts, unparseable answers, errors that echo the key) and the endpoint checks
(``GET /models/MODEL``, a key it wants, models it does not have). The real model server of the
CQ end-to-end test is in test_eval_loopback.py."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """``script`` is a list of steps, one per request, the last repeated:
    ``"2"`` (answer text), ``{"status": 429, "retry_after": 0}``, ``{"sleep": 2, "text": "1"}``,
    ``{"status": 401, "echo_key": True}`` (an error that quotes a masked key), ``{"audio": b64}``.

    Like a real server: with ``key`` it answers 401 (quoting the masked key it got) to a request
    without ``Bearer <key>``; with ``models`` it knows only those (404 for others, on ``GET
    /models/MODEL`` and on chat); ``models_route=False`` is a server without ``GET /models/...``
    (404 there). GET requests are recorded but take no script step."""

    def __init__(self, script, audio_answer: str | None = None, responder=None, key: str | None = None,
                 models: list[str] | None = None, models_route: bool = True):
        self.script = list(script)
        self.key, self.models, self.models_route = key, models, models_route
        self.responder = responder  # body -> a step, or None for the script's next one
        self.audio_answer = audio_answer  # base64 WAV for requests that ask for audio out (not scripted)
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                with fake._lock:
                    fake.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "body": {}})
                model = self.path.split("/models/", 1)[-1] if "/models/" in self.path else None
                refusal = fake._refusal(self.headers, model)
                if refusal:
                    return fake._send(self, *refusal)
                if not fake.models_route or model is None:
                    return fake._send(self, 404, {"error": "Not Found"})
                fake._send(self, 200, {"id": model, "object": "model", "created": 0, "owned_by": "fake"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                    refusal = fake._refusal(self.headers, body.get("model"))
                    special = fake.responder(body) if fake.responder else None
                    if refusal:
                        step = {"refusal": refusal}
                    elif special is not None:
                        step = special
                    elif fake.audio_answer and "audio" in (body.get("modalities") or []):
                        step = {"text": None, "audio": fake.audio_answer, "transcript": "spoken answer"}
                    else:
                        n = sum(1 for r in fake.requests if r["method"] == "POST" and "audio" not in (r["body"].get("modalities") or []))
                        step = fake.script[min(n - 1, len(fake.script) - 1)]
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    fake._answer(self, step)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _refusal(self, headers, model: str | None) -> tuple[int, dict] | None:
        """401 (wrong key) or 404 (unknown model) as OpenAI answers them, or None."""
        got = headers.get("authorization", "").removeprefix("Bearer ")
        if self.key is not None and got != self.key:
            msg = f"Incorrect API key provided: {got[:3]}{'*' * 10}{got[-4:]}."
            return 401, {"error": {"message": msg, "type": "invalid_request_error", "code": "invalid_api_key"}}
        if self.models is not None and model is not None and model not in self.models:
            return 404, {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                                   "type": "invalid_request_error", "code": "model_not_found"}}
        return None

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None):
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, handler, step):
        if isinstance(step, str):
            step = {"text": step}
        if "refusal" in step:
            return self._send(handler, *step["refusal"])
        if "sleep" in step:
            time.sleep(step["sleep"])
        if "status" in step:
            msg = "slow down"
            if step.get("echo_key"):
                key = handler.headers.get("authorization", "").removeprefix("Bearer ")
                msg = f"Incorrect API key provided: {key[:5]}{'*' * 10}{key[-4:]}. Full: {key}"
            headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else {}
            return self._send(handler, step["status"], {"error": {"message": msg, "type": "error", "code": step["status"]}}, headers)
        message = {"role": "assistant", "content": step.get("text")}
        if "audio" in step:
            message["audio"] = {"id": "a1", "data": step["audio"], "transcript": step.get("transcript", ""), "expires_at": 0}
        self._send(handler, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
                                  "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def hears_probe(body):
    """For ``responder``: an audio judge that 'hears' the probe clips (it answers their words)."""
    parts = body["messages"][0]["content"]
    if isinstance(parts, list) and parts and parts[0].get("text", "").startswith("Transcribe the speech"):
        return "That feature is not available on this line. The echo test has been completed."
    return None
