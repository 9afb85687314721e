"""Records: schemas derived from the classes, round trips through dicts and JSON markers."""
import json

import pyarrow as pa

from audiorole_ray.dummies import planned
from audiorole_ray.records import (
    DialogueTurn, Diarized, EpisodeRow, Marker, SeriesSpeaker, Transcribed, from_dict, schema, to_dict, to_table,
)


def test_schemas_follow_the_fields():
    s = schema(DialogueTurn)
    assert s.names[:3] == ["dialogue_id", "turn_index", "role"]
    assert s.field("turn_index").type == pa.int32() and s.field("speakers").type == pa.list_(pa.string())
    assert schema(EpisodeRow).field("duration_s").nullable and schema(SeriesSpeaker).field("is_main").type == pa.bool_()


def test_round_trip_through_json():
    t = Transcribed(planned("AB"), too_short=1)
    back = from_dict(Transcribed, json.loads(json.dumps(to_dict(t))))
    assert back == t


def test_a_table_cannot_drift_from_its_record():
    rows = [EpisodeRow("s", "s/e", "u", 1.0, 16000, 1, "pcm", 0.5, "done"), {"series": "s", "episode_id": "s/f", "uri": "v"}]
    table = to_table(rows, EpisodeRow)
    assert table.schema == schema(EpisodeRow) and table.column("status").to_pylist() == ["done", None]


def test_marker_payloads_load_typed():
    m = Marker("diarized", "s/e", "h", {"info": {"duration_s": 1.0, "sample_rate": 16000, "channels": 1, "codec": "pcm"},
                                         "decoded_s": 1.0, "diarization": {"episode_id": "s/e", "turns": [
                                             {"start": 0.0, "end": 1.0, "speaker": "L0"}]}, "old_field": 1})
    d = m.load(Diarized)
    assert d.diarization.turns[0].speaker == "L0" and d.info.sample_rate == 16000
