"""Items, references, systems and the report, without Ray."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.eval.items import reference_rows, exchange_items
from audiorole_ray.eval.report import summarize, write_report
from audiorole_ray.eval.systems import AnswerSource, parse_system


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("c"), series=("sitcom", "heldout"))


def test_items_are_the_test_exchanges(corpus):
    d = pd.read_parquet(corpus / "dialogues.parquet")
    items = exchange_items(str(corpus))
    want = d[(d.split == "test") & (d.role == "B")]
    assert len(items) == len(want) and {it["character"] for it in items} == {"sitcom_spk00", "heldout_spk00"}
    for it in items:
        rows = d[d.dialogue_id == it["dialogue_id"]].set_index("turn_index")
        assert rows.loc[it["turn_index"], "role"] == "B" and rows.loc[it["turn_index"] - 1, "role"] == "A"
        assert it["a_audio_key"] == rows.loc[it["turn_index"] - 1, "audio_key"]
        assert len(json.loads(it["context"])) == it["turn_index"] - 1  # the earlier turns
    assert [it["b_audio_path"] for it in items] == sorted(it["b_audio_path"] for it in items)
    assert len(exchange_items(str(corpus), ["heldout_spk00"])) == len(want[want.target == "heldout_spk00"])
    with pytest.raises(InputError):
        exchange_items(str(corpus), ["nobody"])


def test_reference_is_never_a_test_clip(corpus):
    d = pd.read_parquet(corpus / "dialogues.parquet")
    test_keys = set(zip(d[d.split == "test"]["audio_path"], d[d.split == "test"]["audio_key"]))
    for c in ("sitcom_spk00", "heldout_spk00"):
        refs = reference_rows(str(corpus), c, 64)
        assert len(refs) and not set(zip(refs["audio_path"], refs["audio_key"])) & test_keys
        assert (refs["speaker_id"] == c).all() and (refs["role"] == "B").all()
        assert len(reference_rows(str(corpus), c, 3)) == 3


def test_build_reference_writes_centroid_profile_and_clip(corpus, tmp_path):
    from audiorole_ray import registry
    from audiorole_ray.eval.references import build_reference, load_reference

    ref = build_reference(str(corpus), str(tmp_path), "heldout_spk00", registry.create("speaker_embedding", "campplus"),
                          registry.create("cp_standin", "style"), max_clips=4)
    assert ref == load_reference(str(tmp_path), "heldout_spk00")
    assert ref["n_clips"] == 4 and len(ref["ap"]["centroid"]) == 192 and ref["style"]["profile"]
    assert (tmp_path / "references" / "heldout_spk00.wav").stat().st_size > 1000
    assert ref["cp_clip"]["audio_key"] in ref["clips"]


@pytest.mark.parametrize("text,kind,arg", [("reference", "reference", ""), ("x=copy-input", "copy-input", ""),
                                           ("gpt=openai:gpt-4o-audio-preview", "openai", "gpt-4o-audio-preview")])
def test_parse_system(text, kind, arg):
    s = parse_system(text)
    assert (s.kind, s.arg) == (kind, arg)


@pytest.mark.parametrize("text,msg", [("a=nope", "SPEC must be"), ("bad/name=reference", "system name"),
                                      ("a=reference:x", "takes no argument"), ("a=openai:", "needs an argument"),
                                      ("a=arp:/nonexistent", "not an ARP-Model")])
def test_parse_system_errors(text, msg):
    with pytest.raises((ConfigError, InputError), match=msg):
        parse_system(text)


def test_only_generating_systems_get_an_answers_version(tmp_path):
    """run() versions a copy of the settings: openai:/arp: systems get answers_version, the others
    none (so it is not in their items' hashes), and the caller's settings stay as they were."""
    from audiorole_ray.eval.job import item_inputs, with_answers_versions
    from audiorole_ray.eval.stage import EvalSettings
    from audiorole_ray.eval.systems import answers_version

    model = tmp_path / "model"
    model.mkdir()
    (model / "arp_model.json").write_text('{"parts": {"lm": {"trained_at": "now"}}}')
    systems = [{"name": "reference", "kind": "reference", "arg": ""}, {"name": "x", "kind": "copy-input", "arg": ""},
               {"name": "m", "kind": "responses", "arg": str(tmp_path)}, {"name": "gpt", "kind": "openai", "arg": "gpt-x"},
               {"name": "arp", "kind": "arp", "arg": str(model)}]
    before = [dict(s) for s in systems]
    settings = EvalSettings(corpus="c", output="o", systems=systems)
    versioned = with_answers_versions(settings)
    assert settings.systems is systems and systems == before  # not changed
    assert [s.get("version") for s in versioned.systems] == [None, None, None, answers_version("openai", "gpt-x"),
                                                              answers_version("arp", str(model))]
    assert all(v for v in (s.get("version") for s in versioned.systems[3:]))
    item = {"a_audio_path": "a", "a_audio_key": "k", "b_audio_path": "b", "b_audio_key": "l"}
    assert item_inputs(item, versioned.systems[0], {}) == item_inputs(item, systems[0], {})
    old = item_inputs(item, versioned.systems[4], {})
    (model / "arp_model.json").write_text('{"parts": {"lm": {"trained_at": "later"}}}')  # retrained
    assert item_inputs(item, with_answers_versions(settings).systems[4], {}) != old


def test_responses_folder_layout(corpus, tmp_path):
    from audiorole_ray.eval.items import ClipReader
    from audiorole_ray.wav import wav_bytes

    it = exchange_items(str(corpus))[0]
    clips = ClipReader(str(corpus))
    want = clips(it["b_audio_path"], it["b_audio_key"])
    f = tmp_path / "ans" / it["dialogue_id"] / f"{it['turn_index']}.wav"
    f.parent.mkdir(parents=True)
    f.write_bytes(wav_bytes(want))
    src = AnswerSource(parse_system(f"m=responses:{tmp_path / 'ans'}"), str(corpus), str(tmp_path / "e"), clips)
    got, meta = src.answer(it)
    assert np.abs(got - want).max() < 1e-3 and meta["answer_source"].endswith(".wav")
    (f.parent / f"{it['turn_index']}.flac").write_bytes(b"")
    with pytest.raises(InputError, match="two answer files"):
        src.answer(it)
    with pytest.raises(InputError, match="no answer file"):
        src.answer({**it, "turn_index": 99})


def _table():
    rows = []
    for c, base in (("a", 0.8), ("b", 0.6)):
        for s, off in (("reference", 0.0), ("copy-input", -0.4)):
            for k in range(3 if c == "a" else 1):
                rows.append({"system": s, "character": c, "dialogue_id": f"{c}{k}", "turn_index": 1, "status": "ok",
                             "distillmos": 3.0 + k, "ap": base + off, "style_sim": 0.5, "intelligibility": 0.9,
                             "cq": None if k else 2})
    rows.append({"system": "reference", "character": "a", "dialogue_id": "bad", "turn_index": 1, "status": "error"})
    return pd.DataFrame(rows)


def test_summary_means_counts_and_averages():
    rep = summarize(_table(), ["reference", "copy-input"], {"cq": {"label": "CQ"}})
    a = rep["table"]["a"]["reference"]
    assert a["items"] == 4 and a["ok"] == 3 and a["ap"] == {"mean": 0.8, "n": 3} and a["cq"] == {"mean": 2.0, "n": 1}
    assert a["distillmos"]["mean"] == 4.0
    assert rep["average"]["copy-input"]["ap"] == {"mean": 0.3, "characters": 2, "n": 4}  # mean of means
    assert rep["metrics"] == ["distillmos", "cq", "intelligibility", "ap", "style_sim"]
    assert rep["aspects"]["AQ"]["paper_metric"] is None and rep["aspects"]["AQ"]["standins"] == ["distillmos"]
    assert rep["aspects"]["CP"]["paper_metric"] is None and rep["aspects"]["CP"]["standins"] == ["style_sim"]


def test_report_files(tmp_path):
    rep = write_report(str(tmp_path), _table(), ["reference", "copy-input"], {"cq": {"label": "CQ judge"}}, ["a note"])
    md = (tmp_path / "report.md").read_text()
    assert "| a | " in md and "**Avg.**" in md and "a note" in md and "Counts" in md
    assert json.loads((tmp_path / "report.json").read_text())["average"] == rep["average"]
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"



def test_each_metric_fails_on_its_own(corpus, tmp_path):
    """A 0.2 s answer is too short for a speaker embedding and prosody, not for Distill-MOS or
    Whisper; a judge that errors leaves CQ empty with its reason and nothing else."""
    pytest.importorskip("openai")
    from fake_openai import FakeOpenAI

    from audiorole_ray import registry
    from audiorole_ray.eval.references import build_reference
    from audiorole_ray.eval.stage import EvalSettings, ItemScorer
    from audiorole_ray.wav import wav_bytes

    it = exchange_items(str(corpus), ["heldout_spk00"])[0]
    f = tmp_path / "ans" / it["dialogue_id"] / f"{it['turn_index']}.wav"
    f.parent.mkdir(parents=True)
    f.write_bytes(wav_bytes(0.1 * np.sin(np.arange(3200) / 8.0).astype(np.float32)))
    out = str(tmp_path / "e")
    build_reference(str(corpus), out, "heldout_spk00", registry.create("speaker_embedding", "campplus"),
                    registry.create("cp_standin", "style"), max_clips=4)
    with FakeOpenAI([{"status": 400}]) as srv:
        scorer = ItemScorer(EvalSettings(corpus=str(corpus), output=out, systems=[{"name": "m", "kind": "responses", "arg": str(tmp_path / "ans")}],
                                         text_judge={"url": srv.url, "model": "j"}))
        row = scorer.process_item({**it, "system": "m"})
    assert row["answer_s"] == 0.2
    assert row["ap"] is None and "too short" in row["ap_error"]
    assert row["style_sim"] is None and "too short" in row["style_sim_error"]
    assert 1.0 <= row["distillmos"] <= 5.0 and row["distillmos_error"] == ""
    assert "intelligibility" in row and row["transcript_error"] == ""
    assert row["cq"] is None and "BadRequestError" in row["cq_error"] and row["cq_raw"] == "[]"
