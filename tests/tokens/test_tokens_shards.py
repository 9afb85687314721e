"""The per-shard work of the tokenize stage, without Ray: work items from dialogues.parquet,
the codebook's training selection, one shard's token file, bad and missing clips, and the
readers the trainers use."""
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tokens_corpus import make_corpus

from audiorole_ray.errors import ConfigError, InputError
from audiorole_ray.tokens import read_tokenizer_info, read_tokens, tokens_by_key
from audiorole_ray.tokens.job import TokenizeConfig, clip_table, finalize, fit_selection, shard_items
from audiorole_ray.tokens.shards import EncodeShard, TokenizeShard, read_shard_meta, shard_tokens_uri


def test_items_one_per_shard_with_each_clip_once(tiny_corpus):
    rows = pd.read_parquet(tiny_corpus / "dialogues.parquet")
    clips = clip_table(str(tiny_corpus))
    assert len(rows) > len(clips) == rows.audio_key.nunique() == 8
    items = shard_items(clips)
    assert [i["audio_path"] for i in items] == ["audio/shard-000000.tar", "audio/shard-000001.tar"]
    assert sorted(k for i in items for k in i["keys"]) == sorted(rows.audio_key.unique())
    assert all(i["keys"] == sorted(i["keys"]) for i in items)
    assert sum(i["audio_s"] for i in items) == pytest.approx(clips.duration.sum())


def test_fit_selection_is_train_only_seeded_and_capped(tiny_corpus):
    clips = clip_table(str(tiny_corpus))
    everything = fit_selection(clips, hours=10, seed=0)
    assert set(everything.split) == {"train"} and len(everything) == (clips.split == "train").sum()
    some = fit_selection(clips, hours=12 / 3600, seed=0)
    # clips are taken until 12 s are reached: the last one may cross it, none after it
    assert some.duration.iloc[:-1].sum() < 12 <= some.duration.sum() or len(some) == len(everything)
    assert list(fit_selection(clips, 12 / 3600, seed=0).audio_key) == list(some.audio_key)
    shuffled = clips.sample(frac=1, random_state=3)
    assert list(fit_selection(shuffled, 12 / 3600, seed=0).audio_key) == list(some.audio_key)  # not by file order
    assert [list(fit_selection(clips, 12 / 3600, seed=s).audio_key) for s in range(4)] != [list(some.audio_key)] * 4
    with pytest.raises(ConfigError, match="no training clips"):
        fit_selection(clips[clips.split == "test"], 1, 0)


@pytest.fixture(scope="module")
def stage(tiny_corpus, units_codebook, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    s = TokenizeShard(corpus=str(tiny_corpus), tokens_uri=str(out), options={"codebook": str(units_codebook)}, device="cpu")
    s.setup()
    return s


def test_shard_to_parquet(stage, tiny_corpus):
    item = shard_items(clip_table(str(tiny_corpus)))[0]
    payload = stage.process_item(item)
    assert payload["clips"] == len(item["keys"]) and payload["failed"] == {}
    path = shard_tokens_uri(stage.tokens_uri, item["audio_path"])
    assert path.endswith("shards/shard-000000.parquet")
    table = pq.read_table(path)
    df = table.to_pandas()
    assert list(df.columns) == ["audio_key", "audio_path", "tokens", "frame_rate", "n_tokens", "duration"]
    assert list(df.audio_key) == item["keys"]
    rows = clip_table(str(tiny_corpus)).set_index("audio_key")
    for r in df.itertuples():
        assert r.n_tokens == len(r.tokens) and r.frame_rate == 12.5
        # clips are stored at 24 kHz and resampled to 16 kHz: still 12.5 tokens per second
        assert abs(r.n_tokens - rows.loc[r.audio_key, "duration"] * 12.5) < 2
        assert r.duration == pytest.approx(rows.loc[r.audio_key, "duration"], abs=1e-3)
        assert all(0 <= t < 16 for t in r.tokens)
    assert payload["tokens"] == df.n_tokens.sum()
    meta = read_shard_meta(path)
    assert meta["settings"] == payload["settings"] and meta["failed"] == {} and meta["keys"] == item["keys"]
    # the same shard again: the same file content (deterministic)
    stage.process_item(item)
    assert pq.read_table(path).equals(table)


def test_bad_and_missing_clips_are_recorded(stage, tmp_path):
    rows = make_corpus(tmp_path, n_clips=6, corrupt="sitcom-ep01-s0000-u002", missing="sitcom-ep01-s0000-u004")
    item = [i for i in shard_items(clip_table(str(tmp_path))) if i["audio_path"].endswith("000000.tar")][0]
    assert {"sitcom-ep01-s0000-u002", "sitcom-ep01-s0000-u004"} <= set(item["keys"])
    s = TokenizeShard(corpus=str(tmp_path), tokens_uri=str(tmp_path / "tok"), options=stage.options, device="cpu")
    s.setup()
    payload = s.process_item(item)
    assert set(payload["failed"]) == {"sitcom-ep01-s0000-u002", "sitcom-ep01-s0000-u004"}
    assert "no clip" in payload["failed"]["sitcom-ep01-s0000-u004"]
    assert payload["clips"] == 1 and rows.audio_key.nunique() == 6
    meta = read_shard_meta(shard_tokens_uri(str(tmp_path / "tok"), item["audio_path"]))
    assert meta["keys"] == ["sitcom-ep01-s0000-u000"] and set(meta["failed"]) == set(payload["failed"])


def test_a_clip_the_tokenizer_rejects_fails_alone(stage, tiny_corpus, tmp_path, monkeypatch):
    s = TokenizeShard(corpus=str(tiny_corpus), tokens_uri=str(tmp_path), options=stage.options, device="cpu")
    s.setup()
    item = shard_items(clip_table(str(tiny_corpus)))[1]
    real = s._backend.tokenize

    def picky(clips):
        if any(c.size > 16_000 * 5 for c in clips):
            raise RuntimeError("too long for this model")
        return real(clips)

    monkeypatch.setattr(s._backend, "tokenize", picky)
    payload = s.process_item(item)
    rows = clip_table(str(tiny_corpus)).set_index("audio_key").loc[item["keys"]]
    too_long = set(rows.index[rows.duration > 5])
    assert too_long and set(payload["failed"]) == too_long
    assert payload["clips"] == len(item["keys"]) - len(too_long)
    assert all("too long" in why for why in payload["failed"].values())


def test_encode_shard_gives_pooled_frames(tiny_corpus):
    s = EncodeShard(corpus=str(tiny_corpus), device="cpu")
    s.setup()
    item = shard_items(clip_table(str(tiny_corpus)))[0]
    payload = s.process_item(item)
    import io

    with np.load(io.BytesIO(payload["frames"])) as z:
        assert sorted(z.files) == item["keys"]
        assert all(z[k].shape[1] == 384 and z[k].dtype == np.float32 for k in z.files)


def test_finalize_and_readers(stage, tiny_corpus, tmp_path):
    out = tmp_path / "corpus"
    import shutil

    shutil.copytree(tiny_corpus, out)
    config = TokenizeConfig(corpus=str(out))
    s = TokenizeShard(corpus=str(out), tokens_uri=config.output, options=stage.options, device="cpu")
    s.setup()
    clips = clip_table(str(out))
    items = shard_items(clips)
    with pytest.raises(InputError, match="no 'whisper-units' tokens"):
        read_tokens(str(out), "whisper-units")
    payloads = {items[0]["audio_path"]: s.process_item(items[0])}  # the second shard never ran
    summary = finalize(config, clips, items, payloads, s._settings, s._backend.describe())
    assert summary["tokenized"] == len(items[0]["keys"]) and summary["errors"] == len(items[1]["keys"])
    errors = pd.read_parquet(out / "tokens" / "whisper-units" / "errors.parquet")
    assert set(errors.audio_key) == set(items[1]["keys"]) and set(errors.stage) == {"tokenize"}
    info = read_tokenizer_info(str(out), "whisper-units")
    assert info["vocab_size"] == 16 and info["frame_rate"] == 12.5 and info["settings"] == s._settings
    assert info["codebook_hash"] == s._backend.codebook.hash
    df = read_tokens(str(out), "whisper-units")
    assert list(df.audio_key) == items[0]["keys"]
    by_key = tokens_by_key(str(out), "whisper-units", keys=items[0]["keys"][:2])
    assert list(by_key) == items[0]["keys"][:2] and all(isinstance(t, int) for t in by_key[items[0]["keys"][0]])
    # a token file of other settings (an older codebook) is never mixed in
    info["settings"] = "something-else"
    (out / "tokens" / "whisper-units" / "tokenizer.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="current"):
        read_tokens(str(out), "whisper-units")


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown tokenizer backend"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="nope")
    with pytest.raises(ConfigError, match="--tokenizer-model"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="glm4voice")
    with pytest.raises(ConfigError, match="not both"):
        TokenizeConfig(corpus=str(tmp_path), codebook="c.npz", fit_codebook=True)
    with pytest.raises(ConfigError, match="whisper-units"):
        TokenizeConfig(corpus=str(tmp_path), tokenizer="glm4voice", model="m", fit_codebook=True)
    with pytest.raises(ConfigError, match="workers"):
        TokenizeConfig(corpus=str(tmp_path), workers=0)
    with pytest.raises(InputError, match="not a corpus"):
        clip_table(str(tmp_path))
