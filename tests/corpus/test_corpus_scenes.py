import json
import random

import pytest

from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.sample import SAMPLE_TRUTH
from audiorole_ray.scenes import ab_pairs, dialogues, is_dialogue, role_turns, split_scenes
from audiorole_ray.records import Turn


def test_split_at_pauses_over_the_limit_only():
    turns = [Turn(0, 1, "a"), Turn(4.0, 5, "b"), Turn(8.01, 9, "a"), Turn(9.5, 10, "b")]
    scenes = split_scenes("s/e", turns, max_pause_s=3.0)
    # 3.0 s exactly stays in the scene, 3.01 s cuts
    assert [[t.start for t in s.turns] for s in scenes] == [[0, 4.0], [8.01, 9.5]]
    assert [s.scene_id for s in scenes] == ["s/e#0000", "s/e#0001"]


def test_overlap_does_not_open_a_pause():
    turns = [Turn(0, 10, "a"), Turn(2, 3, "b"), Turn(11, 12, "b")]  # b's first turn is inside a's
    assert len(split_scenes("e", turns, 3.0)) == 1


def test_dialogue_needs_two_speakers_and_the_target():
    only_target = split_scenes("e", [Turn(0, 1, "t"), Turn(1.5, 2, "t")])[0]
    no_target = split_scenes("e", [Turn(0, 1, "a"), Turn(1.5, 2, "b")])[0]
    both = split_scenes("e", [Turn(0, 1, "a"), Turn(1.5, 2, "t")])[0]
    assert not is_dialogue(only_target, "t") and not is_dialogue(no_target, "t") and is_dialogue(both, "t")


def test_role_turns_merge_and_trim():
    scene = split_scenes("e", [
        Turn(0, 1, "t"),  # leading response without a stimulus: trimmed
        Turn(1.2, 2, "a"), Turn(2.1, 3, "b"),  # two non-targets: one A
        Turn(3.2, 4, "t"), Turn(4.1, 5, "t"),  # one B
        Turn(5.5, 6, "a"), Turn(6.2, 7, "t"),
        Turn(7.5, 8, "b"),  # trailing stimulus without a response: trimmed
    ])[0]
    utts = role_turns(scene, "t")
    assert [(u.role, u.start, u.end, u.speakers) for u in utts] == [
        ("A", 1.2, 3, ("a", "b")), ("B", 3.2, 5, ("t",)), ("A", 5.5, 6, ("a",)), ("B", 6.2, 7, ("t",)),
    ]
    assert [(a.start, b.start) for a, b in ab_pairs(utts)] == [(1.2, 3.2), (5.5, 6.2)]


@pytest.mark.parametrize("series", ["sitcom", "realcast"])
@pytest.mark.parametrize("max_pause", [2.0, 3.0, 4.0])
def test_invariants_on_the_sample(series, max_pause):
    main = json.loads((SAMPLE_TRUTH / series / "cast.json").read_text())["main_character"]
    n = 0
    for path in sorted((SAMPLE_TRUTH / series).glob("*.rttm")):
        turns = read_rttm(path)[path.stem]
        for scene, utts in dialogues(split_scenes(path.stem, turns, max_pause), main):
            n += 1
            latest = scene.turns[0].end
            for t in scene.turns[1:]:
                assert t.start - latest <= max_pause + 1e-9
                latest = max(latest, t.end)
            assert len({t.speaker for t in scene.turns}) >= 2 and main in {t.speaker for t in scene.turns}
            assert [u.role for u in utts] == ["A", "B"] * (len(utts) // 2)
            assert all((u.role == "B") == (u.speakers == (main,)) for u in utts)
            assert all(a.end <= b.end for a, b in zip(utts, utts[1:]))
    assert n > 0


def test_scenes_partition_turns_randomised():
    rng = random.Random(0)
    for _ in range(50):
        t, turns = 0.0, []
        for _ in range(rng.randint(1, 30)):
            t += rng.uniform(0, 6)
            d = rng.uniform(0.2, 4)
            turns.append(Turn(t, t + d, rng.choice("abt")))
            t += d
        scenes = split_scenes("e", turns, 3.0)
        assert [x for s in scenes for x in s.turns] == sorted(turns)
        for s1, s2 in zip(scenes, scenes[1:]):
            assert s2.turns[0].start - max(t.end for t in s1.turns) > 3.0
