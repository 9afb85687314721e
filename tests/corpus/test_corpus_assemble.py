"""Dialogue rows from planned, filtered utterances; the report's per-episode aggregates."""
from audiorole_ray.corpus.assemble import assemble, target_stats
from audiorole_ray.dummies import planned
from audiorole_ray.scenes import ab_pairs, trim_ab


def test_multi_and_single_turn_rows():
    rows, orphaned = assemble(planned("ABABAB"), "s", "s/e", "audio/s/e.tar")
    multi = [r for r in rows if r.kind == "multi"]
    single = [r for r in rows if r.kind == "single"]
    assert [r.role for r in multi] == list("ABABAB") and orphaned == 0
    assert len({r.dialogue_id for r in single}) == 3 and [r.turn_index for r in single] == [0, 1] * 3
    assert {r.audio_path for r in rows} == {"audio/s/e.tar"}
    # test split: no single-turn pairs; a one-exchange dialogue is not duplicated either
    rows, _ = assemble(planned("ABAB", split="test"), "s", "s/e", "x")
    assert {r.kind for r in rows} == {"multi"}
    rows, _ = assemble(planned("AB"), "s", "s/e", "x")
    assert {r.kind for r in rows} == {"multi"}


def test_a_dropped_utterance_cuts_the_dialogue_and_keeps_alternation():
    rows, orphaned = assemble(planned("ABABABAB", ["", "", "", "text_too_short", "", "", "", ""]), "s", "s/e", "x")
    pieces = {}
    for r in rows:
        if r.kind == "multi":
            pieces.setdefault(r.dialogue_id, []).append(r.role)
    # ABA x ABAB -> AB + ABAB: the A left before the cut has no response, it is orphaned
    assert sorted(map("".join, pieces.values())) == ["AB", "ABAB"] and orphaned == 1
    assert all(r.audio_key != "k3" for r in rows)


def test_trim_and_pairs_are_one_rule():
    assert "".join(trim_ab(list("BBABAA"), role=str)) == "AB"
    assert trim_ab(list("BA"), role=str) == []
    assert ab_pairs(list("ABAB")) == [("A", "B"), ("A", "B")]


def test_target_stats_count_scenes_dialogues_turns_and_pairs():
    rows = (assemble(planned("ABABAB"), "s", "s/e", "x")[0]
            + assemble(planned("AB", split="test", scene_id="s/e#0001"), "s", "s/e", "x")[0])
    st = target_stats(rows)["s_spk00"]
    assert (st.scenes, st.dialogues, st.train_turns, st.test_turns, st.single_pairs) == (2, 2, 3, 1, 3)
