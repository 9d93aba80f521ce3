import pytest

from langchain_intercascade.answers import (
    extract_choice,
    extract_number,
    extract_text,
    gsm8k_gold,
    make_grader,
    normalize_number,
    normalize_text,
    numbers_equal,
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("The answer is $1,234.50.", "1234.5"),
        ("So she has 18 apples.", "18"),
        ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
        ("x = 3.0", "3"),
        ("Answer: -5 dollars", "-5"),
        ("12 + 6 = 18 dollars.\nThe answer is 18.", "18"),
        ("She pays 20 in total. The answer is 20. She had 5 left at 3pm.", "20"),
        ("\\boxed{42} is what we get, not 41", "42"),
        ("It costs .5 dollars", "0.5"),
        ("1,000,000 people", "1000000"),
        ("5 * 3 = 15, then 15 / 2 = 7.5", "7.5"),
        ("The final answer is: **64**", "64"),
        ("€30 each", "30"),
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_number(reply: str, expected: str | None) -> None:
    assert extract_number(reply) == expected


def test_normalize_number_canonical_forms() -> None:
    assert normalize_number("3.50") == "3.5"
    assert normalize_number("100") == "100"  # no "1E+2"
    assert normalize_number("-0") == "0"
    assert normalize_number("18 dollars.") == "18"
    assert normalize_number("dollars") is None


def test_numbers_equal_tolerates_float_rounding_only() -> None:
    assert numbers_equal("0.30000000001", "0.3")
    assert numbers_equal("1,200", "1200.0")
    assert not numbers_equal("18", "19")
    assert not numbers_equal("18", "eighteen")


def test_gsm8k_gold() -> None:
    assert gsm8k_gold("48/2 = <<48/2=24>>24 clips\n#### 1,200") == "1200"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no final line")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("(c).", "C"),
        ("The answer is (D) because ...", "D"),
        ("Answer: b", "B"),
        ("A) is wrong; C) is right", "C"),
        ("I am not sure", None),
    ],
)
def test_extract_choice(reply: str, expected: str | None) -> None:
    assert extract_choice(reply) == expected


def test_text_grading_ignores_case_punctuation_and_articles() -> None:
    assert normalize_text("  The  Eiffel Tower! ") == "eiffel tower"
    assert extract_text("The answer is: the Eiffel tower.") == "eiffel tower"
    assert make_grader("text")("Answer: Paris", "paris")
    assert not make_grader("text")("Answer: Lyon", "paris")


def test_grader_kinds_and_custom_extractor() -> None:
    assert make_grader("number")("so 18.0 in total", "18")
    assert not make_grader("number")("I do not know", "18")
    assert make_grader("choice")("The answer is (a)", "A")
    first_number = make_grader("number", extractor=lambda t: normalize_number(t))
    assert first_number("7 apples, then 9", "7")
