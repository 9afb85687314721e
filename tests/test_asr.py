import json

import pytest

from audiorole_ray.asr import make_asr
from audiorole_ray.diarize.models import MissingModelError
from audiorole_ray.io.audio import decode
from audiorole_ray.metrics.wer import edit_distance, normalize, wer
from audiorole_ray.sample import SAMPLE_TRUTH


def test_wer_basics():
    assert normalize("Hello, World! It's") == ["hello", "world", "its"]
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert wer(["a b c d"], ["a b c d"]) == 0.0
    assert wer(["a b c d", "e f"], ["a c d", "e f g"]) == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_missing_whisper_model_is_a_clear_error(tmp_path):
    with pytest.raises(MissingModelError, match=str(tmp_path)):
        make_asr("whisper", {"model": str(tmp_path)}).load()
    with pytest.raises(ValueError, match="unknown ASR backend"):
        make_asr("nope")


def test_embedded_asr_wer_on_real_speech(sample_series):
    """Target: WER <= 20 % on the sample's real-speech utterances (one episode, for CI time)."""
    rows = [json.loads(line) for line in (SAMPLE_TRUTH / "sitcom" / "transcripts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["source"] == "real" and r["episode_id"] == "sitcom/ep01"]
    audio = decode(str(sample_series / "sitcom" / "ep01.wav"))
    clips = [audio[int(r["start"] * 16_000) : int(r["end"] * 16_000)] for r in rows]
    hyps = make_asr("whisper").transcribe(clips, language="en")
    score = wer([r["text"] for r in rows], hyps)
    print(f"WER {score:.3f} on {len(rows)} real utterances")
    assert len(rows) >= 10 and score <= 0.20
