"""Planning an episode's dialogues: roles, filters at plan time, clean clips, splits."""
import json

import pytest

from audiorole_ray.corpus.plan import (
    MIN_SCENES_FOR_TEST, PlanSettings, clean_span, dialogue_scenes, ensure_test_scenes, overlap_seconds, plan_episode,
    safe, scene_split,
)
from audiorole_ray.dummies import turns
from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.records import Utterance
from audiorole_ray.sample import SAMPLE_TRUTH

T = "s_spk00"


def test_plan_marks_short_utterances_and_truncates_long_ones():
    plan = plan_episode("s/ep1", turns((0, 0.99, "s_spk01"), (1.5, 3.5, T), (4, 44, "s_spk01"), (45, 47, T)), [T])
    utts = plan.utterances
    assert [u.role for u in utts] == ["A", "B", "A", "B"]
    assert [u.drop for u in utts] == ["too_short", "", "", ""]
    assert utts[2].truncated and utts[2].end == pytest.approx(34.0)
    assert plan.too_short == 1 and plan.truncated == 1
    assert all("." not in u.key and "/" not in u.key for u in utts)
    assert len({u.key for u in utts}) == len(utts)


def test_plan_on_sample_truth_keeps_scene_invariants():
    (truth,) = read_rttm(SAMPLE_TRUTH / "sitcom" / "ep01.rttm").values()
    target = json.loads((SAMPLE_TRUTH / "sitcom" / "cast.json").read_text())["main_character"]
    plan = plan_episode("sitcom/ep01", truth, [target], PlanSettings(max_pause_s=3.0))
    assert plan.utterances
    by_scene = {}
    for u in plan.utterances:
        by_scene.setdefault(u.scene_id, []).append(u)
    for utts in by_scene.values():
        roles = [u.role for u in utts]
        assert roles[0] == "A" and roles[-1] == "B"
        assert all(a != b for a, b in zip(roles, roles[1:]))  # A/B alternate
        assert all(b.start - a.end <= 3.0 + 1e-9 for a, b in zip(utts, utts[1:]))
        assert all((u.speaker_id == target) == (u.role == "B") for u in utts)
        assert len({u.split for u in utts}) == 1


def test_split_is_by_scene_stable_and_near_the_fraction():
    ids = [f"s/ep{i}#{j:04d}" for i in range(40) for j in range(50)]
    s = PlanSettings(test_fraction=0.1)
    splits = [scene_split(i, s) for i in ids]
    assert splits == [scene_split(i, s) for i in ids]
    assert 0.08 < splits.count("test") / len(ids) < 0.12
    assert splits != [scene_split(i, PlanSettings(seed=1)) for i in ids]
    assert {scene_split(i, PlanSettings(test_fraction=0.0)) for i in ids} == {"train"}


def test_every_target_with_enough_scenes_gets_a_test_scene():
    s = PlanSettings(test_fraction=0.1)
    train_only = [f"s/ep{i}#0000" for i in range(200) if scene_split(f"s/ep{i}#0000", s) == "train"]
    has_test = [f"t/ep{i}#0000" for i in range(30)]
    scenes = {"few": train_only[:MIN_SCENES_FOR_TEST - 1], "many": train_only[:MIN_SCENES_FOR_TEST], "ok": has_test}
    forced = ensure_test_scenes(scenes, s)
    assert len(forced) == 1 and forced <= set(scenes["many"])  # only the target that had none, and enough
    assert forced == ensure_test_scenes(scenes, s)  # chosen from the seed, not at random
    assert ensure_test_scenes(scenes, PlanSettings(test_fraction=0.0)) == set()
    (scene,) = forced
    assert scene_split(scene, s, forced) == "test"


def test_overlap_seconds():
    ts = tuple(turns((0, 4, "a"), (3, 6, "b"), (5, 7, "a")))
    assert overlap_seconds(ts, 0, 7) == pytest.approx(2.0)
    assert overlap_seconds(ts, 3.5, 5.5) == pytest.approx(1.0)
    assert overlap_seconds(ts[:1], 0, 4) == 0.0
    assert overlap_seconds(tuple(turns((0, 4, "a"), (1, 2, "a"))), 0, 4) == 0.0  # one speaker, twice


def test_clean_span_trims_the_other_role_out():
    ts = tuple(turns((0, 5, "x"), (4, 9, T), (8.5, 12, "y")))
    b = Utterance("B", 4, 9, (T,))
    assert clean_span(ts, b, T) == (5, 8.5)  # the longest part with no one else speaking
    a = Utterance("A", 0, 5, ("x",))
    assert clean_span(ts, a, T) == (0, 4)
    assert clean_span(tuple(turns((0, 5, "x"), (5, 9, T))), Utterance("B", 5, 9, (T,)), T) == (5, 9)
    assert clean_span(tuple(turns((0, 9, "x"), (4, 6, T))), Utterance("B", 4, 6, (T,)), T) is None
    # the diarizer's possible overlap (nobody named) cuts a response, not a stimulus
    assert clean_span(ts, b, T, [[5.5, 6.0], [20, 21]]) == (6.0, 8.5)
    assert clean_span(ts, a, T, [[1.0, 2.0]]) == (0, 4)


def test_possible_overlap_keeps_target_clips_out_and_is_counted():
    ep = turns((0, 3, "s_spk01"), (3.5, 9, T), (10, 12, "s_spk01"), (12.5, 15, T))
    plain = plan_episode("s/ep1", ep, [T])
    cut = plan_episode("s/ep1", ep, [T], possible_overlap=[[3.4, 3.9], [13.0, 14.6]])
    spans = {u.index: (u.start, u.end, u.drop) for u in cut.utterances if u.role == "B"}
    assert {u.index: (u.start, u.end, u.drop) for u in plain.utterances if u.role == "B"} == {1: (3.5, 9.0, ""), 3: (12.5, 15.0, "")}
    # 3.5-9: trimmed to 3.9-9; 12.5-15: its clean parts (0.5 s and 0.4 s) are under the minimum
    assert spans[1] == (3.9, 9.0, "") and spans[3][2] == "overlap"
    assert cut.overlap_trimmed == plain.overlap_trimmed + 1
    assert (plain.possible_overlap_cut, cut.possible_overlap_cut) == (0, 2)


def test_overlapped_target_speech_is_trimmed_or_dropped_and_counted():
    ep = turns((0, 3, "s_spk01"), (2.5, 6, T), (7, 9, "s_spk01"), (7.5, 8.2, T), (10, 12, "s_spk02"), (12.5, 15, T))
    plan = plan_episode("s/ep1", ep, [T])
    by_role = [(u.role, u.start, u.end, u.drop) for u in plan.utterances]
    # B at 2.5-6 overlaps A's end: trimmed to 3-6; A at 0-3 trimmed to 0-2.5; the backchannel
    # inside the second A is too short once cleaned: dropped as overlap
    assert ("B", 3.0, 6.0, "") in by_role and ("A", 0.0, 2.5, "") in by_role
    assert any(d == "overlap" for *_, d in by_role)
    assert plan.overlap_trimmed >= 2
    kept = [u for u in plan.utterances if not u.drop]
    assert all(u.overlap_s == 0 for u in kept if u.role == "B")


def test_dialogue_scenes_lists_scenes_with_a_kept_pair():
    plan = plan_episode("s/ep1", turns((0, 2, "x"), (2.5, 5, T), (20, 20.5, "x"), (21, 23, T)), [T])
    assert dialogue_scenes(plan) == {T: ["s/ep1#0000"]}  # the second scene's A is too short
    assert safe("ep.01 x/y") == "ep_01_x_y"
