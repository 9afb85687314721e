"""The data model: typed records that move between stages (references and times, never
waveforms), the rows of every table, and the marker payloads. Parquet schemas derive from them
(``serde.schema``)."""
from audiorole_ray.records.diarization import EpisodeDiarization, SeriesSpeaker, Turn
from audiorole_ray.records.dialogue import DialogueTurn, PlannedUtterance, Scene, Utterance
from audiorole_ray.records.episode import AudioInfo, Episode, EpisodeRow, ErrorRecord
from audiorole_ray.records.markers import Diarized, Enhanced, Marker, TargetStats, Transcribed
from audiorole_ray.records.serde import from_dict, schema, to_dict, to_table

__all__ = [
    "AudioInfo", "Diarized", "DialogueTurn", "Enhanced", "Episode", "EpisodeDiarization", "EpisodeRow", "ErrorRecord",
    "Marker", "PlannedUtterance", "Scene", "SeriesSpeaker", "TargetStats", "Transcribed", "Turn", "Utterance",
    "from_dict", "schema", "to_dict", "to_table",
]
