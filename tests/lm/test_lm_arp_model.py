"""MODEL/arp_model.json: parts added one by one, one character per folder."""
from __future__ import annotations

import json

import pytest

from audiorole_ray.arp_model import MANIFEST, read_manifest, update_part
from audiorole_ray.errors import ConfigError, InputError

TOK = {"name": "whisper-tiny-kmeans64", "frame_rate": 12.5, "vocab_size": 64}


def test_parts_accumulate(tmp_path):
    assert read_manifest(str(tmp_path)) is None
    update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="lm", info={"steps": 10})
    m = update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="decoder", info={"epochs": 15})
    assert m == read_manifest(str(tmp_path))
    assert m["character"] == "sitcom_spk00" and m["tokenizer"] == TOK and m["corpus"] == "/c"
    assert sorted(m["parts"]) == ["decoder", "lm"]
    assert m["parts"]["lm"]["steps"] == 10 and m["parts"]["lm"]["path"] == "lm"
    # retraining a part replaces only that part
    m = update_part(str(tmp_path), character="sitcom_spk00", corpus="/c", tokenizer=TOK, part="lm", info={"steps": 20})
    assert m["parts"]["lm"]["steps"] == 20 and m["parts"]["decoder"]["epochs"] == 15
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]  # no temporary file left behind


def test_other_character_or_tokenizer_is_refused(tmp_path):
    update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer=TOK, part="lm", info={})
    with pytest.raises(ConfigError, match="'a_spk00', not 'b_spk00'"):
        update_part(str(tmp_path), character="b_spk00", corpus="/c", tokenizer=TOK, part="lm", info={})
    with pytest.raises(ConfigError, match="speech tokenizer"):
        update_part(str(tmp_path), character="a_spk00", corpus="/c", tokenizer={**TOK, "name": "glm-4-voice"}, part="decoder", info={})
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(str(tmp_path))
    json.dumps(TOK)
