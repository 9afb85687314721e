"""jobs/evaluate.py end to end on Ray: every system kind that runs here, both judges' paths
through a scripted loopback server, items.parquet and the report, and a sentinel API key that
must be sent to the server yet appear in no output, log or Ray log."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("openai")

from audiorole_ray.sample.truth_corpus import write_truth_corpus  # noqa: E402
from fake_openai import FakeOpenAI, hears_probe  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "sk-SENTINEL-evalkey-7f3a9c2b1d4e5f60"
pytestmark = pytest.mark.slow


def _answers_folder(corpus: Path, folder: Path, items: list[dict], skip: int) -> None:
    """responses:DIR layout, from the corpus's own answers; the item at ``skip`` has none."""
    from audiorole_ray.eval.items import ClipReader
    from audiorole_ray.wav import wav_bytes

    clips = ClipReader(str(corpus))
    for i, it in enumerate(items):
        if i == skip:
            continue
        path = folder / it["dialogue_id"] / f"{it['turn_index']}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes(clips(it["b_audio_path"], it["b_audio_key"])))


def test_evaluate_job_with_every_local_system_kind(tmp_path):
    from audiorole_ray.eval.items import ClipReader, exchange_items
    from audiorole_ray.wav import wav_bytes

    corpus = write_truth_corpus(tmp_path / "corpus")
    items = exchange_items(str(corpus))[:3]
    _answers_folder(corpus, tmp_path / "answers", items, skip=1)
    spoken = ClipReader(str(corpus))(items[0]["b_audio_path"], items[0]["b_audio_key"])
    out = tmp_path / "eval"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rayev", dir="/tmp"))  # short: Ray's socket paths are limited
    try:
        with FakeOpenAI(["2"], audio_answer=base64.b64encode(wav_bytes(spoken)).decode(), responder=hears_probe) as srv:
            env = {**os.environ, "OPENAI_API_KEY": SENTINEL, "RAY_TMPDIR": str(ray_tmp), "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, str(ROOT / "jobs" / "evaluate.py"), "--corpus", str(corpus), "--output", str(out),
                   "--system", "reference", "--system", "copy-input", "--system", f"mine=responses:{tmp_path / 'answers'}",
                   "--system", "gpt=openai:fake-audio-model", "--api-url", srv.url,
                   "--judge-url", srv.url, "--judge-model", "fake-judge", "--audio-judge-url", srv.url,
                   "--audio-judge-model", "fake-audio-judge", "--name", "sitcom_spk00=Allison",
                   "--limit", "3", "--workers", "2", "-v"]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            requests = list(srv.requests)
        assert proc.returncode == 0, proc.stderr[-3000:]

        # the key was used: every request carried it
        auth = {k.lower(): v for k, v in requests[0]["headers"].items()}["authorization"]
        assert auth == f"Bearer {SENTINEL}"
        # the system's endpoint was printed and checked (a free GET) before any work
        assert f"endpoint of system gpt (openai:fake-audio-model): {srv.url} (from --api-url)" in proc.stdout
        assert (requests[0]["method"], requests[0]["path"]) == ("GET", "/v1/models/fake-audio-model")
        requests = [r for r in requests if r["method"] == "POST"]
        # the openai system got the Table 5 prompt and the input audio, asked for alloy's voice
        gen = [r["body"] for r in requests if "audio" in (r["body"].get("modalities") or [])]
        assert len(gen) == 3 and gen[0]["audio"]["voice"] == "alloy"
        parts = gen[0]["messages"][0]["content"]
        assert parts[0]["text"].startswith("Please imitate the character of “Allison” in TV series of “sitcom”")
        assert parts[1]["type"] == "input_audio" and parts[1]["input_audio"]["format"] == "wav"

        # CP: the Table 7 prompt, then the character's reference and the answer, each labelled
        cp = [r["body"]["messages"][0]["content"] for r in requests if r["body"]["model"] == "fake-audio-judge"
              and r["body"]["messages"][0]["content"][0]["text"].startswith("I will give you two audios")]
        assert len(cp) == 11  # every answered item (one answer file is missing)
        assert [p["type"] for p in cp[0]] == ["text", "text", "input_audio", "text", "input_audio"]
        assert cp[0][1]["text"] == "Allison:" and cp[0][3]["text"] == "UNKNOWN:"

        table = pd.read_parquet(out / "items.parquet")
        assert len(table) == 12 and set(table["system"]) == {"reference", "copy-input", "mine", "gpt"}
        for col in ("system", "character", "dialogue_id", "distillmos", "cq", "cq_raw", "cq_error", "ap", "style_sim",
                    "intelligibility", "transcript", "status", "error"):
            assert col in table.columns, col
        missing = table[(table["system"] == "mine") & (table["dialogue_id"] == items[1]["dialogue_id"])
                        & (table["turn_index"] == items[1]["turn_index"])]
        assert missing["status"].tolist() == ["error"] and "no answer file" in missing["error"].iloc[0]
        ok = table[table["status"] == "ok"]
        assert len(ok) == 11 and ok["cq"].eq(2).all() and ok["cp"].eq(2).all() and ok["ap"].notna().all()
        # the same audio from two systems scores the same
        ref = table[table["system"] == "reference"].set_index(["dialogue_id", "turn_index"])
        mine = ok[ok["system"] == "mine"].set_index(["dialogue_id", "turn_index"])
        assert (ref.loc[mine.index, "ap"] - mine["ap"]).abs().max() < 1e-3
        assert (ref["ap"] > table[table["system"] == "copy-input"].set_index(["dialogue_id", "turn_index"])["ap"]).all()
        # the API's answers are kept for a re-run
        assert len(list((out / "answers" / "gpt").rglob("*.wav"))) == 3

        report = (out / "report.md").read_text()
        assert "| Character | reference DMOS*" in report and "**Avg.**" in report and (out / "report.png").stat().st_size > 1000
        assert "Counts" in report and "the paper's CP: `cp`" in report and "audio hearing checked by a probe" in report

        # nothing of the key anywhere: outputs, the job's output, Ray's logs
        assert list(ray_tmp.rglob("session_*/logs/*")), "Ray's logs were not written under RAY_TMPDIR"
        texts = [proc.stdout, proc.stderr]
        for root in (out, ray_tmp):
            for f in root.rglob("*"):
                if f.is_file() and not f.is_symlink():
                    try:
                        texts.append(f.read_bytes().decode("utf-8", "replace"))
                    except OSError:
                        pass
        assert len(texts) > 10
        for piece in (SENTINEL, SENTINEL[:12], SENTINEL[-8:]):
            assert not any(piece in t for t in texts), piece
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_bad_options_exit_2_before_work(tmp_path):
    corpus = write_truth_corpus(tmp_path / "corpus")
    base = [sys.executable, str(ROOT / "jobs" / "evaluate.py"), "--corpus", str(corpus), "--output", str(tmp_path / "e")]
    for extra, msg in [(["--system", "x=bogus"], "SPEC must be one of"),
                       (["--system", "reference", "--system", "reference"], "share a name"),
                       (["--system", "m=responses:/nonexistent"], "does not exist"),
                       (["--system", "reference", "--judge-url", "http://127.0.0.1:9/v1"], "both the URL and the model"),
                       (["--system", "reference", "--character", "nobody"], "no dialogues of ['nobody']"),
                       (["--system", "g=openai:m", "--api-url", "http://127.0.0.1:9/v1"], "cannot be reached")]:
        proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and msg in proc.stderr, proc.stderr
        assert not (tmp_path / "e").exists()  # refused before the output (or an empty _state/) was made
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "evaluate.py"), "--corpus", str(tmp_path), "--output",
                           str(tmp_path / "e"), "--system", "reference"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a corpus" in proc.stderr
