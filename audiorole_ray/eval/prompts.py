"""The paper's prompts (arXiv 2509.23435, appendix 6.1, Tables 5-7), verbatim.

They are copied character for character from the paper's text, quirks included: in Table 6 the
opening quotes before ``{gold_transcription}`` and ``{transcription}`` are never closed, and in
Table 7 ``{role}`` follows two opening quotes (“‘). Changing them would change what the judges
see, so they stay. ``{role}`` is the character's name and ``{TV}`` the series' name.
"""
from __future__ import annotations

import re

# Table 5: generation prompt of the baseline models (GPT-4o Audio and the like), sent with the
# input audio.
GENERATION = (
    "Please imitate the character of “{role}” in TV series of “{TV}” and reply to the content of "
    "this audio given to you in “{role}” ’s style.\n"
    "Directly generate your answer, don’t say any other words."
)

# Table 6: CQ, a text judge over the input's transcript and the answer's transcript.
CQ = (
    "I will give you one turn dialogue, the first sentence is said by some one else and the second "
    "sentence is said by “{role}” from the TV series “{TV}”. After carefully read, you should score "
    "the helpfulness of the second sentence to evaluate under the character of “{role}” whether it "
    "is a good answer to the first sentence.\n"
    "The first sentence is: “{gold_transcription}\n"
    "The second sentence from “{role}” is: “{transcription}\n"
    "Your helpfulness score should be from 0 (lowest) to 2 (highest).\n"
    "Directly generate your score in an int number, don’t say any other words."
)

# Table 7: CP, an audio judge over the character's reference audio and the answer.
CP = (
    "I will give you two audios, one of them is the audio from “‘{role}” in the TV series “{TV}” "
    "and the other audio is from UNKNOWN.\n"
    "Please help me determine whether the two audios maintain the same speaking style and whether "
    "their content is obviously spoken by the same character “{role}”. Please score the UNKNOWN "
    "audio’s Content Personalization degree from 0 (lowest) to 2 (highest).\n"
    "Directly generate your score in an int number, don’t say any other words."
)

# The paper does not say how the two audios were told apart. We put a one-line label part before
# each: the character's name before the reference audio, "UNKNOWN" before the answer.
CP_REFERENCE_LABEL = "{role}:"
CP_ANSWER_LABEL = "UNKNOWN:"

SCORE_RANGE = (0, 2)  # CQ and CP are both integers 0..2


def generation(role: str, tv: str) -> str:
    return _fill(GENERATION, role=role, TV=tv)


def cq(role: str, tv: str, gold_transcription: str, transcription: str) -> str:
    return _fill(CQ, role=role, TV=tv, gold_transcription=gold_transcription, transcription=transcription)


def cp(role: str, tv: str) -> str:
    return _fill(CP, role=role, TV=tv)


def _fill(template: str, **fields: str) -> str:
    """Substitute ``{name}`` fields in one pass: braces inside a transcript stay as spoken
    (``str.format`` would read them as fields)."""
    return re.sub(r"\{(\w+)\}", lambda m: fields[m.group(1)] if m.group(1) in fields else m.group(0), template)
