"""The prompts are the paper's (appendix 6.1, Tables 5-7), character for character."""
from __future__ import annotations

from pathlib import Path

import pytest

from audiorole_ray.eval import prompts

PAPER = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "audiorole-paper.txt"


def paper_lines() -> list[str]:
    if not PAPER.is_file():
        pytest.skip(f"the paper's text is not beside the checkout ({PAPER})")
    return PAPER.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("template", [prompts.GENERATION, prompts.CQ, prompts.CP])
def test_every_line_is_in_the_paper(template):
    lines = paper_lines()
    for line in template.split("\n"):
        assert line in lines, line


def test_each_prompt_is_whole_and_in_order():
    text = "\n".join(paper_lines())
    for template, caption in [(prompts.GENERATION, "Table 5"), (prompts.CQ, "Table 6")]:
        at = text.index(template)  # the whole prompt, lines in order, nothing between them
        assert text[at + len(template):].lstrip("\n").startswith(caption)
    assert prompts.CP in text


def test_fill_substitutes_fields_once():
    p = prompts.cq("Sheldon", "The Big Bang Theory", "Explain {role}?", "It is {TV} {transcription}")
    assert "“Sheldon” from the TV series “The Big Bang Theory”" in p
    assert "The first sentence is: “Explain {role}?\n" in p  # braces in what was said stay
    assert "is: “It is {TV} {transcription}\n" in p
    assert "{" not in prompts.generation("Buffy", "Buffy the Vampire Slayer")
    assert prompts.cp("Walter White", "Breaking Bad").startswith("I will give you two audios, one of them is the audio from “‘Walter White”")
