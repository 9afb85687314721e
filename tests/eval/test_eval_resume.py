"""Resume: the evaluation pass runs on the lead's runner (local mode here, Ray in test_eval_job)."""
from __future__ import annotations

import pandas as pd
import pytest

from audiorole_ray.eval.items import exchange_items


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiorole_ray.sample.truth_corpus import write_truth_corpus

    return write_truth_corpus(tmp_path_factory.mktemp("c"), series=("heldout",))


def test_local_pass_resumes_and_redoes_what_changed(corpus, tmp_path):
    """The pass goes through the lead's runner: a re-run resumes every item; another system or a
    replaced answer file redoes exactly those items."""
    from audiorole_ray.eval.items import ClipReader
    from audiorole_ray.eval.job import run
    from audiorole_ray.eval.stage import EvalSettings
    from audiorole_ray.wav import wav_bytes

    items = exchange_items(str(corpus), ["heldout_spk00"])[:2]
    clips = ClipReader(str(corpus))
    ans = tmp_path / "ans"
    for it in items:
        f = ans / it["dialogue_id"] / f"{it['turn_index']}.wav"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(wav_bytes(clips(it["b_audio_path"], it["b_audio_key"])))
    systems = [{"name": "reference", "kind": "reference", "arg": ""}, {"name": "m", "kind": "responses", "arg": str(ans)}]
    settings = EvalSettings(corpus=str(corpus), output=str(tmp_path / "e"), systems=systems)
    first = run(settings, ["heldout_spk00"], limit=2, local=True)
    assert first["rows"] == 4 and first["resumed"] == 0 and first["errors"] == 0
    assert settings.systems == [{"name": "reference", "kind": "reference", "arg": ""},
                                {"name": "m", "kind": "responses", "arg": str(ans)}]  # the caller's, unchanged
    again = run(settings, ["heldout_spk00"], limit=2, local=True)
    assert again["resumed"] == 4
    t1, t2 = (pd.read_parquet(tmp_path / "e" / "items.parquet") for _ in range(2))
    assert t1.equals(t2)
    f = ans / items[0]["dialogue_id"] / f"{items[0]['turn_index']}.wav"
    f.write_bytes(wav_bytes(clips(items[0]["a_audio_path"], items[0]["a_audio_key"])))  # another answer
    third = run(settings, ["heldout_spk00"], limit=2, local=True)
    assert third["resumed"] == 3
    t3 = pd.read_parquet(tmp_path / "e" / "items.parquet").set_index(["system", "dialogue_id", "turn_index"])
    key = ("m", items[0]["dialogue_id"], items[0]["turn_index"])
    assert t3.loc[key, "ap"] < t3.loc[("reference",) + key[1:], "ap"] - 0.2  # now another voice
