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


@pytest.fixture(scope="module")
def batch_responses(arp_model, sample_corpus, tmp_path_factory):
    """One batch run over the character's test turns: (RESPONSES folder, its summary)."""
    from audiorole_ray.respond.job import run_batch

    out = tmp_path_factory.mktemp("respond_batch") / "responses"
    return out, run_batch(str(arp_model), str(sample_corpus), str(out), {"device": "cpu"}, {"max_new_tokens": 120}, local=True)


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_batch_mode_resumes(arp_model, sample_corpus, batch_responses):
    from audiorole_ray.corpus.reader import read_dialogues
    from audiorole_ray.respond.batch import RESPONSES
    from audiorole_ray.respond.job import run_batch

    out, first = batch_responses
    options = {"device": "cpu"}
    sampling = {"max_new_tokens": 120}
    d = read_dialogues(str(sample_corpus))
    a_turns = d[(d.target == "sitcom_spk00") & (d.split == "test") & (d.role == "A") & (d.kind == "multi")]
    table = pd.read_parquet(out / RESPONSES)
    assert len(table) == len(a_turns) == first["turns"] and first["resumed"] == 0
    assert set(table.audio_key) == set(a_turns.audio_key)
    assert set(table.status) <= {"ok", "malformed", "no_speech", "error"}
    spoken = table[table.response_key != ""]
    for path in spoken.response_path.unique():
        assert (out / path).is_file()
    # the summary counts what was written: answers, their shards (one per answered dialogue), no input cut
    assert first["answers"] == len(spoken) > 0 and first["audio_shards"] == len(list((out / "audio").glob("*.tar")))
    assert first["inputs_cut"] == 0 and (table.n_input_tokens_cut == 0).all()
    assert sum(first["status"].values()) == len(table)
    again = run_batch(str(arp_model), str(sample_corpus), str(out), options, sampling, local=True)
    assert again["resumed"] == first["dialogues"]  # nothing redone
    pd.testing.assert_frame_equal(pd.read_parquet(out / RESPONSES), table)
    markers = sorted((out / "_state" / "responded").glob("*.json"))
    markers[0].unlink()  # as if the run died before this dialogue was answered
    third = run_batch(str(arp_model), str(sample_corpus), str(out), options, sampling, local=True)
    assert third["resumed"] == first["dialogues"] - 1
    pd.testing.assert_frame_equal(pd.read_parquet(out / RESPONSES), table)  # seeded: the same answers


def shorter_context(arp_model, folder, room: int, max_new_tokens: int):
    """A copy of the model whose manifest says its LM was trained on samples that leave ``room``
    input tokens with ``max_new_tokens``: what a model trained with a smaller --max-tokens has."""
    import shutil

    from audiorole_ray.respond.engine import Responder, Sampling

    shutil.copytree(arp_model, folder)
    around = len(Responder(str(folder)).prepare().prompt_ids([]))
    manifest = json.loads((folder / "arp_model.json").read_text())
    manifest["parts"]["lm"]["max_tokens"] = around + max_new_tokens + room
    (folder / "arp_model.json").write_text(json.dumps(manifest))
    assert Responder(str(folder), sampling=Sampling(max_new_tokens=max_new_tokens)).prepare().input_room() == room
    return folder


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_input_longer_than_the_context(arp_model, sample_corpus, tmp_path):
    """Refused with the counts; with truncate_input its last tokens are answered, the same answer
    as to that end alone, and the cut is in the status and problems."""
    from audiorole_ray.corpus.reader import clip_audio, read_dialogues
    from audiorole_ray.resample import resample
    from audiorole_ray.respond.engine import InputTooLong, Responder, Sampling
    from audiorole_ray.tokens.base import expected_tokens

    d = read_dialogues(str(sample_corpus))
    a = d[(d.split == "test") & (d.role == "A")].sort_values("duration").iloc[-1]
    audio, rate = clip_audio(str(sample_corpus), a.audio_path, a.audio_key)
    audio = resample(audio, rate, 16000)
    n = expected_tokens(len(audio))
    room = n // 2
    model = shorter_context(arp_model, tmp_path / "model", room, 40)
    strict = Responder(str(model), sampling=Sampling(max_new_tokens=40), n_timesteps=2).load()  # short answers: cheap to decode
    with pytest.raises(InputTooLong, match=f"the input is {n} speech tokens .* room for {room} input tokens"):
        strict.respond(audio)
    strict.truncate_input = True
    cut = strict.respond(audio)
    strict.truncate_input = False
    assert cut.input_tokens == room and cut.input_cut == n - room
    assert cut.problems[0].startswith(f"input cut to its last {room} of {n} speech tokens")
    end = strict.respond(audio[len(audio) - room * 1280:])  # the end alone fits
    assert end.input_tokens == room and end.input_cut == 0 and end.status != "input_cut"
    assert (cut.speech, cut.text, cut.problems[1:]) == (end.speech, end.text, end.problems)  # the end was kept, not the start
    assert cut.status == ("input_cut" if end.status == "ok" else end.status)


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_single_mode_truncate_input(arp_model, sample_corpus, tmp_path, capsys):
    """jobs/respond.py: a too-long input is refused in one line, before the model loads, and
    nothing is written; --truncate-input answers its end and the summary says so."""
    import sys
    import wave
    from pathlib import Path

    from audiorole_ray.cli import run_main
    from audiorole_ray.corpus.reader import clip_audio, read_dialogues
    from audiorole_ray.wav import write_wav

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jobs"))
    from respond import main

    d = read_dialogues(str(sample_corpus))
    a = d[(d.split == "test") & (d.role == "A")].sort_values("duration").iloc[-1]
    audio, rate = clip_audio(str(sample_corpus), a.audio_path, a.audio_key)
    write_wav(str(tmp_path / "a.wav"), audio, rate)
    model = shorter_context(arp_model, tmp_path / "model", 30, 40)
    argv = ["--model", str(model), "--input", str(tmp_path / "a.wav"), "--output", str(tmp_path / "out" / "b.wav"),
            "--max-new-tokens", "40", "--steps", "2"]
    assert run_main(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "room for 30 input tokens" in err[0] and "--truncate-input" in err[0]
    assert not (tmp_path / "out").exists()
    code = run_main(main, [*argv, "--truncate-input"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["input_tokens"] == 30 and summary["input_tokens_cut"] > 0
    assert summary["problems"][0].startswith("input cut to its last 30 of")
    if code == 0:
        assert summary["output"] == str(tmp_path / "out" / "b.wav") and summary["status"] != "ok"
        with wave.open(summary["output"]) as w:
            assert w.getnframes() / w.getframerate() == pytest.approx(summary["duration_s"], abs=1e-3)
    else:  # no speech: nothing written, and not named as written
        assert code == 1 and summary["output"] is None and not (tmp_path / "out").exists()


@pytest.mark.slow  # trains a tiny LM and decoder in-process, then generates and decodes
def test_batch_turn_longer_than_the_context(arp_model, sample_corpus, tmp_path):
    """In batch mode a too-long turn is that turn's row (status too_long), the dialogue's other
    turns are answered; with truncate_input it is answered and its row records the cut."""
    from audiorole_ray.corpus.reader import iter_shard_clips
    from audiorole_ray.resample import resample
    from audiorole_ray.respond.batch import RespondStage, model_stamp, test_items
    from audiorole_ray.tokens.base import expected_tokens

    items = test_items(str(sample_corpus), "sitcom_spk00", model_stamp(str(arp_model)))
    tokens = {}
    for it in items:
        for t in it["turns"]:
            for key, clip, rate, _ in iter_shard_clips(str(sample_corpus), t["audio_path"], {t["audio_key"]}):
                tokens[key] = expected_tokens(len(resample(clip, rate, 16000)))
    # the dialogue whose turns differ most: its shortest turn fits, its longest does not
    item = max((it for it in items if len(it["turns"]) > 1),
               key=lambda it: max(tokens[t["audio_key"]] for t in it["turns"]) - min(tokens[t["audio_key"]] for t in it["turns"]))
    room = min(tokens[t["audio_key"]] for t in item["turns"]) + 2
    model = shorter_context(arp_model, tmp_path / "model", room, 40)
    long_keys = {t["audio_key"] for t in item["turns"] if tokens[t["audio_key"]] > room}
    assert long_keys and len(long_keys) < len(item["turns"])
    for truncate in (False, True):
        stage = RespondStage(corpus=str(sample_corpus), output=str(tmp_path / f"out{truncate}"), model_dir=str(model),
                             responder_options={"device": "cpu", "truncate_input": truncate, "n_timesteps": 2},
                             sampling={"max_new_tokens": 40})
        stage.setup()
        rows = {r["audio_key"]: r for r in stage.process_item(item).payload["rows"]}
        for key, r in rows.items():
            if key in long_keys and not truncate:
                assert r["status"] == "too_long" and r["response_key"] == ""
                assert f"the input is {tokens[key]} speech tokens" in r["error"] and "--truncate-input" in r["error"]
            elif key in long_keys:
                assert r["n_input_tokens"] == room and r["n_input_tokens_cut"] == tokens[key] - room
                assert r["problems"].startswith(f"input cut to its last {room} of {tokens[key]}") and r["error"] == ""
            else:
                assert r["status"] != "too_long" and r["n_input_tokens_cut"] == 0 and r["n_input_tokens"] == tokens[key]
    assert stage.settings()["options"]["truncate_input"] is True  # a re-run with it redoes the dialogues


@pytest.mark.slow  # respond's batch output evaluated as responses:DIR
def test_responses_folder_reads_the_batch_layout(batch_responses, sample_corpus, tmp_path):
    """ARP-Eval's responses:DIR reads what respond's batch mode wrote: each exchange gets the
    answer of its A turn's row; a row without audio is that item's error; a changed row is
    scored again, the others resumed."""
    import shutil

    from audiorole_ray.eval.job import run
    from audiorole_ray.eval.stage import EvalSettings
    from audiorole_ray.respond.batch import RESPONSES

    out, _ = batch_responses
    answers = tmp_path / "responses"
    shutil.copytree(out, answers)
    rows = pd.read_parquet(answers / RESPONSES)
    settings = EvalSettings(corpus=str(sample_corpus), output=str(tmp_path / "e"), cp_standin=False,
                            systems=[{"name": "mine", "kind": "responses", "arg": str(answers)}])
    first = run(settings, ["sitcom_spk00"], limit=2, local=True)
    items = pd.read_parquet(tmp_path / "e" / "items.parquet").sort_values("turn_index")
    assert len(items) == 2 and first["resumed"] == 0
    from audiorole_ray.eval.items import exchange_items

    by_key = {(it["dialogue_id"], it["turn_index"]): it["a_audio_key"] for it in exchange_items(str(sample_corpus), ["sitcom_spk00"])}
    answered = []  # (row index, eval item) of the items whose row has an answer
    for e in items.itertuples():
        idx = rows.index[(rows.dialogue_id == e.dialogue_id) & (rows.audio_key == by_key[(e.dialogue_id, e.turn_index)])][0]
        r = rows.loc[idx]
        assert r.turn_index < e.turn_index  # respond's index is the A turn's, eval's the B turn's
        if r.response_key:
            assert e.status == "ok" and e.answer_source.endswith(f"{r.response_path}#{r.response_key}")
            assert e.answer_s == pytest.approx(r.duration_s, abs=2e-3) and e.arp_status == r.status and e.arp_text == r.text
            answered.append((idx, (e.dialogue_id, e.turn_index)))
        else:
            assert e.status == "error" and f"status {r.status}" in e.error
    assert answered, "no answered turn among the evaluated ones"
    idx, changed = answered[0]
    rows.loc[idx, ["response_path", "response_key", "status", "error"]] = ["", "", "no_speech", "the LM emitted no speech tokens"]
    rows.to_parquet(answers / RESPONSES, index=False)
    again = run(settings, ["sitcom_spk00"], limit=2, local=True)
    assert again["resumed"] == 1  # only the changed row's item is scored again
    items = pd.read_parquet(tmp_path / "e" / "items.parquet").set_index(["dialogue_id", "turn_index"])
    assert items.loc[changed, "status"] == "error"
    assert items.loc[changed, "error"].endswith("respond gave this turn no answer (status no_speech: the LM emitted no speech tokens)")


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


@pytest.mark.slow
def test_arp_system_input_longer_than_the_context_is_the_items_error(arp_model, sample_corpus, tmp_path):
    """ARP-Eval's arp: system does not cut inputs: a too-long A turn is that item's error, with
    the counts, and the pass goes on."""
    from audiorole_ray.eval.job import run
    from audiorole_ray.eval.stage import EvalSettings

    model = shorter_context(arp_model, tmp_path / "model", 1, 600)  # 600: the Responder's default max_new_tokens
    settings = EvalSettings(corpus=str(sample_corpus), output=str(tmp_path / "e"), cp_standin=False,
                            systems=[{"name": "short", "kind": "arp", "arg": str(model)}, {"name": "reference", "kind": "reference", "arg": ""}])
    summary = run(settings, ["sitcom_spk00"], limit=1, local=True)
    items = pd.read_parquet(tmp_path / "e" / "items.parquet").set_index("system")
    assert items.loc["reference", "status"] == "ok"
    assert items.loc["short", "status"] == "error" and summary["errors"] == 1
    assert "InputTooLong" in items.loc["short", "error"] and "room for 1 input tokens" in items.loc["short", "error"]
