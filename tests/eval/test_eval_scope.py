"""Which items a system answers, and summaries that match what was written.

An ``arp:`` system answers only the turns of the character its ARP-Model was trained as (its
arp_model.json names it): the other characters' items are not asked (no generation, no cost),
are written as status ``out_of_scope`` and show n = 0 in the report; ``,all-characters=true``
asks for them. The end-to-end run fakes the Responder (a trained model is not needed to test
which turns it is asked for) and checks the printed counts and files against the output."""
from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from eval_cli import run_evaluate

from audiorole_ray.errors import ConfigError
from audiorole_ray.eval.items import exchange_items
from audiorole_ray.eval.systems import parse_system

OWN, OTHER = "sitcom_spk00", "heldout_spk00"
LIMIT = 5  # the first five exchanges: four of heldout_spk00, one of sitcom_spk00


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("c"), series=("sitcom", "heldout"))


def fake_model(folder, character=OWN):
    """An ARP-Model folder as far as scope goes: its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arp_model.json").write_text(json.dumps({"format": "audiorole-arp-model", "version": 1, "character": character,
                                                       "parts": {"lm": {"trained_at": "t"}}}))
    return folder


def test_system_options(tmp_path):
    model = fake_model(tmp_path / "m")
    assert parse_system(f"a=arp:{model}").options == {}
    assert parse_system(f"a=arp:{model},all-characters=true").options == {"all-characters": True}
    assert parse_system(f"a=arp:{model},all-characters=no").options == {"all-characters": False}
    odd = tmp_path / "x,y"  # a comma with no key=value after it is part of the path
    odd.mkdir()
    assert parse_system(f"r=responses:{odd}").arg == str(odd)
    with pytest.raises(ConfigError, match="unknown option 'voice'; options of arp: all-characters"):
        parse_system(f"a=arp:{model},voice=x")
    with pytest.raises(ConfigError, match="options of reference: none"):
        parse_system("r=reference,all-characters=true")
    with pytest.raises(ConfigError, match="takes true or false"):
        parse_system(f"a=arp:{model},all-characters=maybe")


def test_plan_scopes_an_arp_system_to_its_character(corpus, tmp_path):
    from audiorole_ray.eval.job import plan
    from audiorole_ray.eval.stage import EvalSettings

    model = fake_model(tmp_path / "m")

    def settings(spec):
        s = parse_system(spec)
        return EvalSettings(corpus=str(corpus), output=str(tmp_path / "e"), systems=[
            {"name": "reference", "kind": "reference", "arg": ""}, {"name": s.name, "kind": s.kind, "arg": s.arg, "options": s.options}])

    p = plan(settings(f"arp=arp:{model}"))
    assert p.scopes == {"reference": "", "arp": OWN} and {it["character"] for it in p.items} == {OWN, OTHER}
    assert plan(settings(f"arp=arp:{model},all-characters=true")).scopes["arp"] == ""
    with pytest.raises(ConfigError, match=f"answers only its turns.*--character {OWN}, or add ,all-characters=true"):
        plan(settings(f"arp=arp:{model}"), [OTHER])  # asked only for another character's turns
    assert plan(settings(f"arp=arp:{model},all-characters=true"), [OTHER]).scopes["arp"] == ""
    with pytest.raises(ConfigError, match="answers only its turns"):
        plan(settings(f"arp=arp:{fake_model(tmp_path / 'n', 'nobody_of_this_corpus')}"))


def test_out_of_scope_rows_are_not_items_of_their_cell():
    from audiorole_ray.eval.report import markdown, summarize

    rows = [{"system": "arp", "character": "a", "dialogue_id": f"a{k}", "turn_index": 1, "status": "ok", "ap": 0.5 + k / 10}
            for k in range(2)]
    rows += [{"system": "arp", "character": "b", "dialogue_id": f"b{k}", "turn_index": 1, "status": "out_of_scope", "ap": None}
             for k in range(3)]
    rows += [{"system": "reference", "character": c, "dialogue_id": f"{c}r", "turn_index": 1, "status": "ok", "ap": 0.9}
             for c in "ab"]
    rep = summarize(pd.DataFrame(rows), ["reference", "arp"], {})
    assert rep["table"]["b"]["arp"] == {"items": 0, "ok": 0, "out_of_scope": 3, "ap": {"mean": None, "n": 0}}
    assert rep["table"]["a"]["arp"]["items"] == 2 and rep["table"]["a"]["arp"]["out_of_scope"] == 0
    assert rep["average"]["arp"]["ap"] == {"mean": 0.55, "characters": 1, "n": 2}  # b's cell is not averaged
    assert "| b | arp | 0 (3 out of scope) | 0 | 0 |" in markdown(rep)


class FakeResponder:
    """Stands for respond.engine.Responder: answers with the input itself; counts what it is asked."""

    asked: list[int] = []

    def __init__(self, model_dir, device="cpu"):
        self.model_dir = model_dir

    def load(self):
        return self

    def respond(self, audio16k):
        FakeResponder.asked.append(int(audio16k.size))
        return SimpleNamespace(audio=np.asarray(audio16k, np.float32), rate=16000, text="echo", status="ok", problems=[])


@pytest.fixture(scope="module")
def job_run(corpus, tmp_path_factory):
    """One local run: reference, an arp: system of sitcom_spk00 and answers too short for a speaker
    embedding (AP fails on each of them); matplotlib 'missing'; a report.png of an earlier run."""
    import audiorole_ray.eval.report as report
    import audiorole_ray.respond.engine as engine
    from audiorole_ray.wav import wav_bytes

    tmp = tmp_path_factory.mktemp("run")
    model = fake_model(tmp / "model")
    items = exchange_items(str(corpus))[:LIMIT]
    for it in items:
        f = tmp / "short" / it["dialogue_id"] / f"{it['turn_index']}.wav"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(wav_bytes(0.1 * np.sin(np.arange(3200) / 8.0).astype(np.float32)))  # 0.2 s
    out = tmp / "eval"
    out.mkdir()
    (out / "report.png").write_bytes(b"\x89PNG stale")

    def no_matplotlib(*a, **k):
        raise ImportError("No module named 'matplotlib'")

    FakeResponder.asked = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "Responder", FakeResponder)
        mp.setattr(report, "figure", no_matplotlib)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = run_evaluate(["--corpus", str(corpus), "--output", str(out), "--system", "reference",
                               "--system", f"arp=arp:{model}", "--system", f"short=responses:{tmp / 'short'}",
                               "--limit", str(LIMIT), "--local", "--reference-clips", "8"])
    return SimpleNamespace(rc=rc, out=out, stdout=buf.getvalue(), items=items, asked=list(FakeResponder.asked),
                           table=pd.read_parquet(out / "items.parquet"))


def test_arp_answers_only_its_characters_turns(job_run):
    r = job_run
    assert r.rc == 0, r.stdout
    own = [it for it in r.items if it["character"] == OWN]
    assert 0 < len(own) < LIMIT
    assert len(r.asked) == len(own)  # the model was asked for its own character's turns only
    assert len(list((r.out / "answers" / "arp").rglob("*.wav"))) == len(own)
    arp = r.table[r.table.system == "arp"]
    assert sorted(arp[arp.character == OWN].status) == ["ok"] * len(own)
    assert (arp[arp.character == OTHER].status == "out_of_scope").all() and len(arp) == LIMIT
    rep = json.loads((r.out / "report.json").read_text())
    cell = rep["table"][OTHER]["arp"]
    assert cell["items"] == 0 and cell["out_of_scope"] == LIMIT - len(own) and cell["ap"]["n"] == 0 and cell["ap"]["mean"] is None
    assert rep["average"]["arp"]["ap"]["n"] == len(own) == rep["table"][OWN]["arp"]["ap"]["n"]
    assert rep["average"]["arp"]["ap"]["mean"] == rep["table"][OWN]["arp"]["ap"]["mean"]  # the other cell is not averaged
    n_rows, oos = len(r.table), LIMIT - len(own)
    assert f"= {n_rows} rows: {n_rows - oos} asked, {oos} out of scope (not asked); errors 0" in r.stdout
    assert "arp answers only sitcom_spk00's turns" in (r.out / "report.md").read_text()


def test_summary_counts_match_items_parquet(job_run):
    r = job_run
    ok = r.table[r.table.status == "ok"]
    failed = {c[: -len("_error")]: int(ok[c].fillna("").ne("").sum()) for c in ok.columns if c.endswith("_error")}
    assert failed["ap"] >= LIMIT  # every too-short answer failed AP ...
    assert (ok[ok.system == "short"].ap.isna()).all()
    listed = ", ".join(f"{m} {n}" for m, n in failed.items() if n)
    assert f"metric errors (of {len(ok)} answered rows): {listed}" in r.stdout  # ... and the summary says so
    assert "errors 0 (no answer)" in r.stdout and (r.table.status == "error").sum() == 0
    summary = json.loads((r.out / "summary.json").read_text())
    assert summary["metric_errors"] == failed and summary["rows"] == len(r.table)
    # only files written are named: no figure without matplotlib, and no stale one left behind
    written = next(line for line in r.stdout.splitlines() if line.startswith("written: "))
    names = written.split("/")[-1].split(", ")
    assert names == ["items.parquet", "report.json", "report.md", "summary.json"]
    assert all((r.out / n).is_file() for n in names)
    assert not (r.out / "report.png").exists() and "report.png" not in (r.out / "report.md").read_text().split("## Notes")[0]
    assert "no report.png: ImportError: No module named 'matplotlib'" in r.stdout
