"""Role-play inference: parsing the interleaved answer, one answer end to end with the tiny LM
and tiny decoder, and the batch mode's resume (runner in-process)."""
import json

import numpy as np
import pandas as pd
import pytest

from audiorole_ray.lm.format import AUDIO_BLOCK, TEXT_BLOCK, ChatTokens
from audiorole_ray.respond.parse import split_response

CT = ChatTokens(prefix=(1, 2), system=3, user=4, assistant=5, begin_audio=6, end_audio=7, audio_offset=1000,
                system_text=(10,), newline=(11,), response_header=(12,), n_audio=64)
T = list(range(100, 100 + TEXT_BLOCK))
A = [1000 + i for i in range(AUDIO_BLOCK)]


def test_well_formed_answer():
    r = split_response(T + A + T[:5] + A + A[:7] + [CT.user, 100, 101], CT)
    assert r.status == "ok" and r.finished and r.problems == []
    assert r.text_ids == T + T[:5] and r.speech == list(range(26)) * 2 + list(range(7))


@pytest.mark.parametrize("ids,status,why", [
    (T + T + [CT.user], "no_speech", ""),
    (T + A[:20] + T + A + [CT.user], "malformed", "speech blocks"),
    (T[:5] + A + T + A + [CT.user], "malformed", "text blocks"),
    (T + A + [CT.begin_audio] + A + [CT.user], "malformed", "control token"),
    (T + A + A, "malformed", "cut by the token limit"),
])
def test_bad_answers_are_recorded(ids, status, why):
    r = split_response(ids, CT)
    assert r.status == status
    assert why in "; ".join(r.problems)


@pytest.fixture(scope="module")
def arp_model(sample_corpus, tmp_path_factory):
    from arp_fixtures import build_arp_model

    return build_arp_model(sample_corpus, tmp_path_factory.mktemp("arp") / "model")


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_respond_end_to_end(arp_model, sample_corpus):
    from audiorole_ray.corpus.reader import clip_audio, read_dialogues
    from audiorole_ray.resample import resample
    from audiorole_ray.respond.engine import Responder, Sampling

    d = read_dialogues(str(sample_corpus))
    a = d[(d.split == "test") & (d.role == "A")].iloc[0]
    audio, rate = clip_audio(str(sample_corpus), a.audio_path, a.audio_key)
    responder = Responder(str(arp_model), sampling=Sampling(max_new_tokens=160)).load()
    ans = responder.respond(resample(audio, rate, 16000))
    assert ans.input_tokens == pytest.approx(len(audio) / rate * 12.5, abs=2)
    assert ans.speech, ans  # the trained tiny LM answers with speech tokens
    assert ans.rate == 22050
    # the flow makes int(n / 12.5 * 22050 / 256) mel frames for n speech tokens, the vocoder 256 samples each
    assert len(ans.audio) == int(len(ans.speech) / 12.5 * 22050 / 256) * 256
    assert np.isfinite(ans.audio).all() and np.abs(ans.audio).max() > 0


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_single_mode_cli(arp_model, sample_corpus, tmp_path):
    import subprocess
    import sys
    import wave
    from pathlib import Path

    from audiorole_ray.corpus.reader import clip_audio, read_dialogues
    from audiorole_ray.wav import write_wav

    d = read_dialogues(str(sample_corpus))
    a = d[(d.split == "test") & (d.role == "A")].iloc[0]
    audio, rate = clip_audio(str(sample_corpus), a.audio_path, a.audio_key)
    write_wav(str(tmp_path / "a.wav"), audio, rate)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "jobs" / "respond.py"), "--model", str(arp_model), "--input",
                           str(tmp_path / "a.wav"), "--output", str(tmp_path / "b.wav"), "--max-new-tokens", "160", "--text"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    with wave.open(str(tmp_path / "b.wav")) as w:
        assert w.getframerate() == 22050 and w.getnframes() / 22050 == pytest.approx(summary["duration_s"], abs=1e-3)
    bad = subprocess.run([sys.executable, str(root / "jobs" / "respond.py"), "--model", str(tmp_path), "--input",
                          str(tmp_path / "a.wav"), "--output", str(tmp_path / "c.wav")], capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "arp_model.json" in bad.stderr


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_batch_mode_resumes(arp_model, sample_corpus, tmp_path):
    from audiorole_ray.corpus.reader import read_dialogues
    from audiorole_ray.respond.batch import RESPONSES
    from audiorole_ray.respond.job import run_batch

    out = tmp_path / "responses"
    options = {"device": "cpu"}
    sampling = {"max_new_tokens": 120}
    first = run_batch(str(arp_model), str(sample_corpus), str(out), options, sampling, local=True)
    d = read_dialogues(str(sample_corpus))
    a_turns = d[(d.target == "sitcom_spk00") & (d.split == "test") & (d.role == "A") & (d.kind == "multi")]
    table = pd.read_parquet(out / RESPONSES)
    assert len(table) == len(a_turns) == first["turns"] and first["resumed"] == 0
    assert set(table.audio_key) == set(a_turns.audio_key)
    assert set(table.status) <= {"ok", "malformed", "no_speech", "error"}
    spoken = table[table.response_key != ""]
    for path in spoken.response_path.unique():
        assert (out / path).is_file()
    again = run_batch(str(arp_model), str(sample_corpus), str(out), options, sampling, local=True)
    assert again["resumed"] == first["dialogues"]  # nothing redone
    pd.testing.assert_frame_equal(pd.read_parquet(out / RESPONSES), table)
    markers = sorted((out / "_state" / "responded").glob("*.json"))
    markers[0].unlink()  # as if the run died before this dialogue was answered
    third = run_batch(str(arp_model), str(sample_corpus), str(out), options, sampling, local=True)
    assert third["resumed"] == first["dialogues"] - 1
    pd.testing.assert_frame_equal(pd.read_parquet(out / RESPONSES), table)  # seeded: the same answers


@pytest.mark.slow
def test_arp_system_in_the_evaluation_pass(arp_model, sample_corpus, tmp_path):
    """ARP-Eval's ``arp:MODEL`` system answers through the same Responder; a re-run resumes, and a
    retrained model (a new manifest) is asked again, never served its old answers."""
    import shutil

    from audiorole_ray.eval.job import run
    from audiorole_ray.eval.stage import EvalSettings

    model = tmp_path / "model"
    shutil.copytree(arp_model, model)
    systems = [{"name": "arp", "kind": "arp", "arg": str(model)}]
    settings = EvalSettings(corpus=str(sample_corpus), output=str(tmp_path / "e"), systems=systems)
    first = run(settings, ["sitcom_spk00"], limit=1, local=True)
    assert first["rows"] == 1 and first["errors"] == 0, first
    items = pd.read_parquet(tmp_path / "e" / "items.parquet")
    assert items.status.tolist() == ["ok"], items.error.tolist()
    assert items.answer_s.iloc[0] > 0 and np.isfinite(items.ap.iloc[0])  # scored (an empty answer is an error)
    again = run(settings, ["sitcom_spk00"], limit=1, local=True)
    assert again["resumed"] == 1
    manifest = json.loads((model / "arp_model.json").read_text())
    manifest["parts"]["lm"]["trained_at"] = "later"  # what retraining a part does to the manifest
    (model / "arp_model.json").write_text(json.dumps(manifest))
    third = run(settings, ["sitcom_spk00"], limit=1, local=True)
    assert third["resumed"] == 0 and third["errors"] == 0
    kept = (tmp_path / "e" / "answers" / "arp").rglob("*.wav")
    assert len({p.relative_to(tmp_path / "e" / "answers" / "arp").parts[0] for p in kept}) == 2  # a folder per model version
