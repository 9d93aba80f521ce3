"""parse_strategy: the distilled strategy survives the ways small models write it."""

from __future__ import annotations

import pytest

from langchain_intercascade.strategies import parse_strategy

JSON_REPLY = """Here is the strategy:
```json
{"title": "Change after a purchase", "applies_when": "Someone pays more than the cost",
 "steps": ["total cost = items * price", "change = paid - total cost"],
 "pitfalls": ["Multiply before subtracting"]}
```"""


def test_json_embedded_in_prose() -> None:
    strategy = parse_strategy(JSON_REPLY)
    assert strategy.title == "Change after a purchase"
    assert strategy.steps == ["total cost = items * price", "change = paid - total cost"]
    assert strategy.pitfalls == ["Multiply before subtracting"]


def test_labelled_sections() -> None:
    strategy = parse_strategy(
        "**Title:** Change after a purchase\n"
        "Applies when: someone pays more than the cost\n"
        "Steps:\n1. total cost = items * price\n2. change = paid - total cost\n"
        "Pitfalls:\n- multiply first\n"
    )
    assert strategy.applies_when == "someone pays more than the cost"
    assert strategy.steps == ["total cost = items * price", "change = paid - total cost"]
    assert strategy.pitfalls == ["multiply first"]


def test_steps_written_as_objects_are_flattened() -> None:
    # Qwen2.5-Coder-1.5B's habit when asked for "steps" (seen in the benchmark).
    strategy = parse_strategy(
        '{"title": "Signatures", "applies_when": "Two people collect signatures",'
        ' "steps": [{"step": 1, "formula": "total = a + b", "result": 79},'
        ' {"formula": "left = goal - total"}], "pitfalls": "Add before subtracting"}'
    )
    assert strategy.steps == ["total = a + b = 79", "left = goal - total"]
    assert strategy.pitfalls == ["Add before subtracting"]


def test_json_cut_off_by_the_token_cap_keeps_the_complete_items() -> None:
    strategy = parse_strategy(
        '{"title": "Signatures", "applies_when": "Two people collect signatures",'
        ' "steps": ["total = a + b", "left = goal - total", "answer = le'
    )
    assert strategy.title == "Signatures"
    # The last step was cut mid-word and is dropped.
    assert strategy.steps == ["total = a + b", "left = goal - total"]


def test_json_cut_before_any_step_is_rejected() -> None:
    with pytest.raises(ValueError, match="could not parse a strategy"):
        parse_strategy('{"title": "Signatures copied from the whole problem text that goes on')


def test_prose_without_a_strategy_is_rejected() -> None:
    with pytest.raises(ValueError, match="could not parse a strategy"):
        parse_strategy("I cannot help with that.")


def test_latex_inside_json_strings_is_kept_as_text() -> None:
    # Qwen2.5-Coder-1.5B writes LaTeX with single backslashes inside JSON strings: 17 of
    # its 155 distillations in the benchmark were lost to "Invalid \escape" before this.
    strategy = parse_strategy(
        '```json\n{"title": "Letters written", "applies_when": "Someone rewrites an alphabet",'
        ' "steps": ["letters = \\(3 \\times 48 = 144\\)", "answer = \\frac{1}{2}\\nnext"],'
        ' "pitfalls": []}\n```'
    )
    assert strategy.steps == ["letters = \\(3 \\times 48 = 144\\)", "answer = \\frac{1}{2}\nnext"]


def test_text_after_the_json_object_is_ignored() -> None:
    # Seen from Qwen2.5-Coder-1.5B: one "}" too many after a complete object.
    strategy = parse_strategy(
        '```json\n{"title": "Change", "applies_when": "Someone pays",'
        ' "steps": ["change = paid - cost"], "pitfalls": []}\n}\n```\nHope this helps {:)}'
    )
    assert (strategy.title, strategy.steps) == ("Change", ["change = paid - cost"])
