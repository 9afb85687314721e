"""The tokenize stages without Ray: work items from dialogues.parquet, the codebook's training
selection, one shard's token file, bad and missing clips, a clip the model rejects."""
import io
import json
import shutil
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from tokens_corpus import make_corpus

from audiorole_ray.errors import ConfigError
from audiorole_ray.tokens.job import TokenizeConfig, clip_table, fit_selection, shard_items
from audiorole_ray.tokens.shards import SETTINGS_KEY
from audiorole_ray.tokens.stage import EncodeStage, TokenizeStage, shard_id


def test_items_one_per_shard_with_each_clip_once(tiny_corpus):
    rows = clip_table(str(tiny_corpus))
    assert len(rows) == 8 and rows.audio_key.is_unique
    items = shard_items(str(tiny_corpus), rows)
    assert [i["id"] for i in items] == ["sitcom/ep01", "sitcom/ep02"]
    assert [i["uri"] for i in items] == [str(tiny_corpus / "audio" / "sitcom" / f"{e}.tar") for e in ("ep01", "ep02")]
    keys = [json.loads(i["keys"]) for i in items]
    assert sorted(k for ks in keys for k in ks) == sorted(rows.audio_key) and all(ks == sorted(ks) for ks in keys)
    assert sum(i["audio_s"] for i in items) == pytest.approx(rows.duration.sum())
    # another choice of clips in a shard is another input: the runner redoes that shard only
    fewer = shard_items(str(tiny_corpus), rows.iloc[1:])
    assert fewer[0]["inputs"] != items[0]["inputs"] and fewer[1]["inputs"] == items[1]["inputs"]
    assert shard_id("audio/sitcom/ep01.tar") == "sitcom/ep01" and shard_id("audio/shard-000003.tar") == "shard-000003"


def test_fit_selection_is_train_only_seeded_and_capped(tiny_corpus):
    clips = clip_table(str(tiny_corpus))
    everything = fit_selection(clips, hours=10, seed=0)
    assert set(everything.split) == {"train"} and len(everything) == (clips.split == "train").sum()
    some = fit_selection(clips, hours=12 / 3600, seed=0)
    # clips are taken until 12 s are reached: the last one crosses it, none comes after it
    assert some.duration.iloc[:-1].sum() < 12 <= some.duration.sum() and len(some) < len(everything)
    shuffled = clips.sample(frac=1, random_state=3)
    assert list(fit_selection(shuffled, 12 / 3600, seed=0).audio_key) == list(some.audio_key)  # not by file order
    others = {tuple(fit_selection(clips, 12 / 3600, seed=s).audio_key) for s in range(5)}
    assert len(others) > 1
    with pytest.raises(ConfigError, match="no training clips"):
        fit_selection(clips[clips.split == "test"], 1, 0)


def _stage(corpus, out, codebook, **kw):
    s = TokenizeStage(corpus=str(corpus), options={"codebook": str(codebook)}, device="cpu", state_uri=str(out / "_state"), **kw)
    s.setup()
    return s


def _item(corpus, n=0):
    return shard_items(str(corpus), clip_table(str(corpus)))[n]


def test_shard_to_parquet(tiny_corpus, units_codebook, tmp_path):
    stage = _stage(tiny_corpus, tmp_path, units_codebook)
    item = _item(tiny_corpus)
    out = stage.process_item(item)
    assert out.outputs == {"shards/sitcom/ep01.parquet": (tmp_path / "shards/sitcom/ep01.parquet").stat().st_size}
    table = pq.read_table(tmp_path / "shards/sitcom/ep01.parquet")
    df = table.to_pandas()
    assert list(df.columns) == ["audio_key", "audio_path", "tokens", "frame_rate", "n_tokens", "duration"]
    assert list(df.audio_key) == json.loads(item["keys"])
    rows = clip_table(str(tiny_corpus)).set_index("audio_key")
    for r in df.itertuples():
        assert r.n_tokens == len(r.tokens) and r.frame_rate == 12.5 and r.audio_path == "audio/sitcom/ep01.tar"
        # clips are stored at 24 kHz and resampled to 16 kHz: still 12.5 tokens per second
        assert abs(r.n_tokens - rows.loc[r.audio_key, "duration"] * 12.5) < 2
        assert r.duration == pytest.approx(rows.loc[r.audio_key, "duration"], abs=1e-3)
        assert all(0 <= t < 16 for t in r.tokens)
    cpu = out.payload.pop("cpu_s")
    assert out.payload == {"clips": 4, "tokens": int(df.n_tokens.sum()), "failed": {}, "kept": []} and cpu > 0
    assert out.complete
    assert out.audio_s == pytest.approx(rows.loc[df.audio_key, "duration"].sum(), abs=1e-2)
    assert table.schema.metadata[SETTINGS_KEY]
    # the same shard again: the same file
    stage.process_item(item)
    assert pq.read_table(tmp_path / "shards/sitcom/ep01.parquet").equals(table)


def test_bad_and_missing_clips_are_recorded(units_codebook, tmp_path):
    corpus = tmp_path / "corpus"
    make_corpus(corpus, n_clips=6, corrupt="sitcom-ep01-s0000-u002", missing="sitcom-ep01-s0000-u004")
    item = _item(corpus)
    assert {"sitcom-ep01-s0000-u002", "sitcom-ep01-s0000-u004"} <= set(json.loads(item["keys"]))
    out = _stage(corpus, tmp_path / "tok", units_codebook).process_item(item)
    failed = out.payload["failed"]
    assert set(failed) == {"sitcom-ep01-s0000-u002", "sitcom-ep01-s0000-u004"}
    assert "no clip" in failed["sitcom-ep01-s0000-u004"] and "no clip" not in failed["sitcom-ep01-s0000-u002"]
    df = pq.read_table(tmp_path / "tok/shards/sitcom/ep01.parquet").to_pandas()
    assert list(df.audio_key) == ["sitcom-ep01-s0000-u000"] and out.payload["clips"] == 1
    assert not out.complete  # no marker: the next run tries the shard again


def test_unreadable_shard_lists_every_clip(units_codebook, tmp_path):
    corpus = tmp_path / "corpus"
    make_corpus(corpus, n_clips=4)
    (corpus / "audio" / "sitcom" / "ep02.tar").write_bytes(b"\0" * 100)  # not a tar
    item = _item(corpus, 1)
    out = _stage(corpus, tmp_path / "tok", units_codebook).process_item(item)
    assert set(out.payload["failed"]) == set(json.loads(item["keys"])) and out.payload["clips"] == 0
    assert all("ep02.tar is cut or damaged" in why for why in out.payload["failed"].values()) and not out.complete


@pytest.mark.parametrize("where", ["header", "data"])
def test_cut_shard_keeps_the_clips_before_the_cut(tiny_corpus, units_codebook, tmp_path, where):
    """Cut on a member's header boundary (tarfile would end quietly there) or inside its data:
    the clips before it are tokenized, it and the ones after fail naming the shard."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("tokens"))
    shard = corpus / "audio" / "sitcom" / "ep02.tar"
    with tarfile.open(shard) as tar:
        third = [m for m in tar.getmembers() if m.name.endswith(".flac")][2]
    shard.write_bytes(shard.read_bytes()[: third.offset if where == "header" else third.offset_data + 100])
    item = _item(corpus, 1)
    keys = json.loads(item["keys"])
    out = _stage(corpus, tmp_path / "tok", units_codebook).process_item(item)
    cut = third.name.split(".")[0]
    assert set(out.payload["failed"]) == {k for k in keys if k >= cut} and out.payload["clips"] == 2 and not out.complete
    assert all(f"{shard} is cut or damaged" in why for why in out.payload["failed"].values())
    df = pq.read_table(tmp_path / "tok/shards/sitcom/ep02.parquet").to_pandas()
    assert list(df.audio_key) == [k for k in keys if k < cut]


def test_a_clip_the_tokenizer_rejects_fails_alone(tiny_corpus, units_codebook, tmp_path, monkeypatch):
    stage = _stage(tiny_corpus, tmp_path, units_codebook)
    real = stage._backend.tokenize

    def picky(clips):
        if any(c.size > 16_000 * 5 for c in clips):
            raise RuntimeError("too long for this model")
        return real(clips)

    monkeypatch.setattr(stage._backend, "tokenize", picky)
    item = _item(tiny_corpus, 1)
    out = stage.process_item(item)
    rows = clip_table(str(tiny_corpus)).set_index("audio_key").loc[json.loads(item["keys"])]
    too_long = set(rows.index[rows.duration > 5])
    assert too_long and set(out.payload["failed"]) == too_long
    assert out.payload["clips"] == len(rows) - len(too_long)
    assert all("too long" in why for why in out.payload["failed"].values())


def test_worker_refuses_another_codebook(tiny_corpus, units_codebook, tmp_path):
    with pytest.raises(RuntimeError, match="codebook"):
        _stage(tiny_corpus, tmp_path, units_codebook, backend_settings={"codebook_hash": "0" * 64})


def test_encode_stage_writes_pooled_frames(tiny_corpus, tmp_path):
    stage = EncodeStage(corpus=str(tiny_corpus), device="cpu", state_uri=str(tmp_path / "_state"))
    stage.setup()
    item = _item(tiny_corpus)
    out = stage.process_item(item)
    assert list(out.outputs) == ["fit-frames/sitcom/ep01.npz"]
    with np.load(io.BytesIO((tmp_path / "fit-frames/sitcom/ep01.npz").read_bytes())) as z:
        assert sorted(z.files) == json.loads(item["keys"])
        assert all(z[k].shape[1] == 384 and z[k].dtype == np.float32 for k in z.files)
        assert out.payload["frames"] == sum(len(z[k]) for k in z.files)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown tokenizer backend"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="nope")
    with pytest.raises(ConfigError, match="--tokenizer-model"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="glm4voice")
    with pytest.raises(ConfigError, match="not both"):
        TokenizeConfig(corpus=str(tmp_path), codebook="c.npz", fit_codebook=True)
    with pytest.raises(ConfigError, match="whisper-units"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="glm4voice", model="m", fit_codebook=True)
    with pytest.raises(ConfigError, match="--glm4voice-repo"):
        TokenizeConfig(corpus=str(tmp_path), repo="r")
    for bad in ({"workers": 0}, {"fit_hours": 0}, {"codebook_size": 1}, {"gpus_per_worker": -1}):
        with pytest.raises(ConfigError):
            TokenizeConfig(corpus=str(tmp_path), **bad)
