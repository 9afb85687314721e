"""The overlapped-speech dev set in the repo: complete, labelled, small, with disjoint voices
between its dev and held-out parts, and overlap shares as its README states."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from audiorole_ray.diarize.evaluate import oracle_turns, overlap_detection, overlap_time, score_turns
from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.records import Turn

DEVSET = Path(__file__).resolve().parents[2] / "benchmarks" / "devset"


def casts(part):
    return [json.loads(p.read_text()) for p in sorted((DEVSET / part / "truth").glob("*/cast.json"))]


def test_parts_have_disjoint_voices_and_every_episode_labelled():
    voices = {part: {v for c in casts(part) for v in c["speakers"]} for part in ("dev", "heldout")}
    assert voices["dev"] and voices["heldout"] and not voices["dev"] & voices["heldout"]
    for part in ("dev", "heldout"):
        for c in casts(part):
            for e in c["episodes"]:
                stem = e["episode_id"].split("/")[1]
                audio = DEVSET / part / "series" / c["series"] / e["file"]
                turns = read_rttm(DEVSET / part / "truth" / c["series"] / f"{stem}.rttm")[stem]
                assert audio.is_file() and turns and {t.speaker for t in turns} <= set(c["speakers"])
                speech = {}
                for t in turns:
                    speech[t.speaker] = speech.get(t.speaker, 0) + t.duration
                assert max(speech, key=speech.get) == c["main_character"]
                # of labelled speech: a little under the scripted 8-14 % / 20-30 % (its README)
                lo, hi = (0.06, 0.14) if c["style"] == "tv" else (0.15, 0.30)
                assert lo <= e["overlap_share"] <= hi
    assert sum(p.stat().st_size for p in DEVSET.rglob("*") if p.is_file()) < 4e6


def test_overlap_detection_scores_overlapped_time():
    ref = {"f": [Turn(0, 4, "A"), Turn(3, 6, "B")]}  # overlap 3-4
    hyp = {"f": [Turn(0, 3.5, "x"), Turn(3.5, 6, "y"), Turn(2.5, 3.5, "y")]}  # says 2.5-3.5
    assert overlap_time(ref["f"]).size == pytest.approx(1000, abs=1)
    o = overlap_detection(ref, hyp)
    assert o["osd_precision"] == pytest.approx(0.5, abs=1e-3) and o["osd_recall"] == pytest.approx(0.5, abs=1e-3)
    s = score_turns(ref, {"f": ref["f"]}, "A", hyp_main="A")
    assert s["der"] == 0 and s["main_purity"] == 1 and s["main_found"] and s["osd_recall"] == 1
    assert s["main_clean_purity"] == 1 and s["main_clean_s"] == pytest.approx(3)  # A alone 0-3 s


def test_oracle_turns_name_the_front_ends_count_from_the_reference():
    """Hand-worked: Zoe 0-2 s and 4-5 s, Bob 1.5-3 s; the front-end hears one voice at 0.5-1.5 s,
    two at 1.5-2.5 s (Bob alone after 2 s: Zoe, who just stopped, is nearest), one in the pause
    at 3.2-3.5 s (Bob, 0.2 s away, nearer than Zoe's next turn) and one at 4-5 s."""
    from audiorole_ray.diarize.segmented import time_frame

    ref = [Turn(0, 2, "Zoe"), Turn(1.5, 3, "Bob"), Turn(4, 5, "Zoe")]
    count = np.zeros(int(time_frame(5.5)), np.int8)
    for a, b, c in ((0.5, 1.5, 1), (1.5, 2.5, 2), (3.2, 3.5, 1), (4, 5, 1)):
        count[time_frame(a) : time_frame(b)] = c
    got = oracle_turns(ref, count)
    assert [t.speaker for t in got] == ["Zoe", "Bob", "Bob", "Zoe"]
    want = [(0.5, 2.5), (1.5, 2.5), (3.2, 3.5), (4, 5)]
    assert all(abs(t.start - a) < 0.01 and abs(t.end - b) < 0.01 for t, (a, b) in zip(got, want)), got
    s = score_turns({"f": ref}, {"f": got}, "Zoe")
    assert s["main_purity"] == pytest.approx(2.5 / 3, abs=0.01)  # Zoe named 3 s, 0.5 s of it after her turn
    # one voice heard where both talk: the one whose turn began first (not the first by name)
    count[:] = 0
    count[time_frame(0.5) : time_frame(3)] = 1
    assert [(t.speaker, round(t.start, 1), round(t.end, 1)) for t in oracle_turns(ref, count)] == [
        ("Zoe", 0.5, 2.0), ("Bob", 2.0, 3.0)]
    assert oracle_turns([], count) == [] and oracle_turns(ref, count[:0]) == []


def test_eval_script_scores_one_dev_episode(tmp_path, monkeypatch):
    """benchmarks/eval_diarize.py end to end on one dev episode (its RESULTS.md figures come from
    it, so it must keep working when the code it calls changes)."""
    import shutil

    monkeypatch.syspath_prepend(str(DEVSET.parent))
    import eval_diarize

    from audiorole_ray.diarize.embedded import EmbeddedBackend

    src = DEVSET / "dev"
    (tmp_path / "series" / "talkshow").mkdir(parents=True)
    (tmp_path / "truth" / "talkshow").mkdir(parents=True)
    shutil.copy(src / "series" / "talkshow" / "ep01.ogg", tmp_path / "series" / "talkshow")
    for name in ("ep01.rttm", "cast.json"):
        shutil.copy(src / "truth" / "talkshow" / name, tmp_path / "truth" / "talkshow")
    monkeypatch.setitem(eval_diarize.DATA, "one", (tmp_path / "series", tmp_path / "truth"))
    cache = tmp_path / "cache"
    cache.mkdir()
    rows = eval_diarize.evaluate(EmbeddedBackend(), "one", cache)
    r = rows["talkshow"]
    assert r["episodes"] == 1 and r["der"] < 0.2 and r["main_found"] and r["main_purity"] > 0.9, r
    assert list(cache.glob("*.pkl")), "model outputs are cached for sweeps"
    again = eval_diarize.evaluate(EmbeddedBackend(), "one", cache, ceiling=True)["talkshow"]
    assert again["der"] == r["der"] and "ceiling" not in r
    assert again["ceiling"]["main_purity"] > 0.9 and again["ceiling"]["der"] < 0.2, again["ceiling"]
    assert len(list(cache.glob("*.pkl"))) == 1, "a re-run reads the cache back"
    # another recording under the same name is analysed afresh, not read back from the cache
    shutil.copy(src / "series" / "talkshow" / "ep02.ogg", tmp_path / "series" / "talkshow" / "ep01.ogg")
    eval_diarize.evaluate(EmbeddedBackend(), "one", cache)
    assert len(list(cache.glob("*.pkl"))) == 2
    # another truth (--truth): a copy of the committed one scores the same, and agrees with it
    shutil.copytree(tmp_path / "truth", tmp_path / "alt")
    base = eval_diarize.evaluate(EmbeddedBackend(), "one", cache)["talkshow"]
    alt = eval_diarize.evaluate(EmbeddedBackend(), "one", cache, truth_root=tmp_path / "alt")["talkshow"]
    assert "labels_vs_committed" not in base and alt["main_purity"] == base["main_purity"]
    agree = alt["labels_vs_committed"]
    # equal labels: DER zero up to the summation's rounding (1e-16 on some CPUs)
    assert agree["main_purity"] == agree["main_coverage"] == 1.0 and agree["der"] < 1e-12, agree


@pytest.mark.parametrize("argv, message", [
    (["--data", "dev", "--truth", "{tmp}/none"], "no {tmp}/none/dev/truth"),
    (["--data", "dev", "sample", "--truth", "{tmp}"], "leave 'sample' out"),
    (["--data", "dev", "--truth", "{tmp}/only_meeting"], "no truth for dev series roundtable, talkshow"),
])
def test_eval_script_refuses_a_truth_it_cannot_use(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.syspath_prepend(str(DEVSET.parent))
    import eval_diarize

    (tmp_path / "only_meeting" / "dev" / "truth" / "meeting").mkdir(parents=True)
    (tmp_path / "only_meeting" / "dev" / "truth" / "meeting" / "cast.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["eval_diarize.py"] + [a.format(tmp=tmp_path) for a in argv])
    with pytest.raises(SystemExit) as e:
        eval_diarize.main()
    assert e.value.code == 2 and message.format(tmp=tmp_path) in capsys.readouterr().err
