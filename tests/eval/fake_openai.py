"""A scripted OpenAI-compatible chat server on loopback, for the judge client's failure paths
(rate limits, timeouts, unparseable answers, errors that echo the key). The real model server
of the CQ end-to-end test is in test_eval_loopback.py."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """``script`` is a list of steps, one per request, the last repeated:
    ``"2"`` (answer text), ``{"status": 429, "retry_after": 0}``, ``{"sleep": 2, "text": "1"}``,
    ``{"status": 401, "echo_key": True}`` (an error that quotes a masked key), ``{"audio": b64}``."""

    def __init__(self, script, audio_answer: str | None = None, responder=None):
        self.script = list(script)
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

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    special = fake.responder(body) if fake.responder else None
                    if special is not None:
                        step = special
                    elif fake.audio_answer and "audio" in (body.get("modalities") or []):
                        step = {"text": None, "audio": fake.audio_answer, "transcript": "spoken answer"}
                    else:
                        n = sum(1 for r in fake.requests if "audio" not in (r["body"].get("modalities") or []))
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
