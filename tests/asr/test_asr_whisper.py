import json

import pytest

from audiorole_ray import registry
from audiorole_ray.errors import MissingModelError
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
        registry.create("asr", "whisper", model=str(tmp_path)).load()
    with pytest.raises(ValueError, match="unknown asr backend"):
        registry.create("asr", "nope")


def test_embedded_asr_wer_on_real_speech(sample_series):
    """Target: WER <= 20 % on the sample's real-speech utterances (one episode, for CI time)."""
    rows = [json.loads(line) for line in (SAMPLE_TRUTH / "sitcom" / "transcripts.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["source"] == "real" and r["episode_id"] == "sitcom/ep01"]
    audio = decode(str(sample_series / "sitcom" / "ep01.wav"))
    clips = [audio[int(r["start"] * 16_000) : int(r["end"] * 16_000)] for r in rows]
    hyps = registry.create("asr", "whisper").transcribe(clips, language="en")
    score = wer([r["text"] for r in rows], hyps)
    print(f"WER {score:.3f} on {len(rows)} real utterances")
    assert len(rows) >= 10 and score <= 0.20


def test_pack_clips_fills_windows_in_order():
    from audiorole_ray.asr.packing import assign_words, pack_clips, window_audio

    packs = pack_clips([10, 10, 9, 31, 2], window_s=30, gap_s=0.5)
    assert [p.clips for p in packs] == [(0, 1, 2), (3,), (4,)]  # 10+.5+10+.5+9 = 30 fits
    assert packs[0].spans == ((0, 10), (10.5, 20.5), (21.0, 30.0))
    import numpy as np

    clips = [np.ones(16_000 * d, np.float32) for d in (1, 2)]
    (p,) = pack_clips([1, 2], 30, 0.5)
    assert window_audio(clips, p, 16_000, 0.5).size == 16_000 * 3 + 8_000
    # a word goes to the span holding its midpoint, or the nearest one when it falls in a gap
    words = [(0.0, 0.4, " hi"), (0.5, 0.9, " there"), (1.3, 1.45, " bye"), (1.6, 2.0, " now")]
    assert assign_words(words, ((0, 1), (1.5, 3.5))) == ["hi there", "bye now"]
    assert assign_words([], ((0, 1),)) == [""]


def test_english_only_model_refuses_other_languages():
    import numpy as np

    asr = registry.create("asr", "whisper")
    with pytest.raises(ValueError, match="English-only.*'fr'"):
        asr.transcribe([np.zeros(16_000, np.float32)], language="fr")
