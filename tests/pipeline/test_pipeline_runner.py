"""The one resumable pass: hashing, resume, stale markers, intact outputs, errors, keep()."""
from dataclasses import dataclass

import pytest

from audiorole_ray.io.storage import join, write_bytes
from audiorole_ray.pipeline.runner import fingerprint, item_hash, run_pass
from audiorole_ray.pipeline.stage import Output, Stage
from audiorole_ray.pipeline.state import MarkerStore


@dataclass
class Echo(Stage):
    """Writes one file per item and returns its text; fails on items named "bad*"."""

    name = "echo"
    marker_kind = "echoed"
    fields = ("text",)
    suffix: str = "!"

    def settings(self) -> dict:
        return {"suffix": self.suffix}

    def process_item(self, item: dict) -> Output:
        if item["id"].startswith("s/bad"):
            raise ValueError(f"cannot echo {item['id']}")
        rel = f"echo/{item['id']}.txt"
        size = write_bytes(join(MarkerStore(self.state_uri).output_uri, rel), (item["text"] + self.suffix).encode())
        return Output({"said": item["text"] + self.suffix}, audio_s=1.5, outputs={rel: size})


def items(*names):
    return [{"id": f"s/{n}", "uri": f"in/{n}", "inputs": f"v-{n}", "text": n} for n in names]


def test_pass_resume_and_what_redoes_an_item(tmp_path):
    store = MarkerStore(str(tmp_path / "_state"))
    first = run_pass(Echo(), items("a", "b", "bad"), store, local=True)
    assert {i: m.payload["said"] for i, m in first.done.items()} == {"s/a": "a!", "s/b": "b!"}
    assert first.resumed == 0 and [e.episode_id for e in first.errors] == ["s/bad"]
    assert "ValueError: cannot echo s/bad" in first.errors[0].error and first.errors[0].uri == "in/bad"
    again = run_pass(Echo(), items("a", "b", "bad"), store, local=True)
    assert again.resumed == 2 and len(again.errors) == 1  # the failed item is retried
    # other settings redo everything; other inputs redo that item; a lost output redoes its item
    assert run_pass(Echo(suffix="?"), items("a", "b"), store, local=True).resumed == 0
    changed = items("a", "b")
    changed[0]["inputs"] = "v-a2"
    assert run_pass(Echo(suffix="?"), changed, store, local=True).resumed == 1
    (tmp_path / "echo" / "s" / "b.txt").unlink()
    assert run_pass(Echo(suffix="?"), changed, store, local=True).resumed == 1


def test_only_the_current_items_markers_count(tmp_path):
    store = MarkerStore(str(tmp_path / "_state"))
    run_pass(Echo(), items("a", "b", "c"), store, local=True)
    result = run_pass(Echo(), items("a"), store, local=True)
    assert list(result.done) == ["s/a"] and store.ids("echoed") == {"s/a", "s/b", "s/c"}


def test_keep_maps_each_finished_item_once(tmp_path):
    store = MarkerStore(str(tmp_path / "_state"))
    seen = []
    run_pass(Echo(), items("a"), store, local=True, keep=lambda m: seen.append(m.id) or m.hash)
    result = run_pass(Echo(), items("a", "b"), store, local=True, keep=lambda m: seen.append(m.id) or m.hash)
    assert seen == ["s/a", "s/a", "s/b"] and set(result.done.values()) == {item_hash(Echo(), it) for it in items("a", "b")}


def test_a_torn_marker_is_redone(tmp_path):
    store = MarkerStore(str(tmp_path / "_state"))
    run_pass(Echo(), items("a"), store, local=True)
    (tmp_path / "_state" / "echoed" / "s" / "a.json").write_text('{"kind": "echoed", "id"')
    assert run_pass(Echo(), items("a"), store, local=True).resumed == 0


def test_marker_records_time_audio_and_outputs(tmp_path):
    store = MarkerStore(str(tmp_path / "_state"))
    (m,) = run_pass(Echo(), items("a"), store, local=True).done.values()
    assert m.kind == "echoed" and m.audio_s == 1.5 and m.wall_s >= 0 and m.outputs == {"echo/s/a.txt": 2}


def test_fingerprint_is_stable_and_ids_unique(tmp_path):
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1}) != fingerprint({"a": [2, 1], "b": 1})
    with pytest.raises(ValueError, match="not unique"):
        run_pass(Echo(), items("a", "a"), MarkerStore(str(tmp_path)), local=True)
