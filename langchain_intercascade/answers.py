"""Answer extraction and grading for evaluation.

An :data:`AnswerExtractor` reads the final answer out of a model's free-text reply
(or ``None`` when there is none); a :data:`Grader` decides whether a reply matches
a gold answer. Three kinds are built in: numbers (GSM8K-style word problems),
choice letters (multiple choice) and normalized exact text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Literal

AnswerKind = Literal["number", "choice", "text"]
AnswerExtractor = Callable[[str], "str | None"]
"""Reads the final answer from a reply; None when the reply states none."""
Grader = Callable[[str, str], bool]
"""``(reply, gold) -> correct``."""

# A number as written in prose: optional sign and currency, thousands separators,
# decimals ("$1,234.50", "-3", ".5"); trailing units and periods are left outside.
_NUM = r"-?[$€£]?\s?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?"
_NUMBER = re.compile(rf"(?<![\w.]){_NUM}(?![\d])")
_MARKERS = (
    re.compile(r"####\s*(" + _NUM + r")"),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")"),
    re.compile(
        r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*\**\s*(" + _NUM + r")",
        re.IGNORECASE,
    ),
)


def normalize_number(text: str) -> str | None:
    """Canonicalize a written number: ``"$1,200.50"`` -> ``"1200.5"``, ``"3.0"`` -> ``"3"``.

    Args:
        text: A number as written, possibly with a currency sign, thousands
            separators, a trailing period or a unit after it (``"18 dollars."``).

    Returns:
        The canonical decimal string, or None if the text holds no number.
    """
    numbers = _numbers(text)
    if not numbers:
        return None
    raw = re.sub(r"[$€£,\s]", "", numbers[0])
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    # normalize() turns "3.50" into "3.5" and "3.0" into "3"; "f" avoids "1E+2".
    canonical = format(value.normalize(), "f")
    return "0" if canonical in ("-0", "") else canonical


def _numbers(text: str) -> list[str]:
    return [m.group(0) for m in _NUMBER.finditer(text) if any(c.isdigit() for c in m.group(0))]


def extract_number(text: str) -> str | None:
    r"""Read the final numeric answer from a reply.

    Looks, in order, for GSM8K's ``#### N``, LaTeX ``\boxed{N}`` and the last
    "answer is N" / "Answer: N" phrase; without any of them, takes the last number
    in the text.

    Args:
        text: The model's reply.

    Returns:
        The canonical number (see :func:`normalize_number`), or None.
    """
    for marker in _MARKERS:
        found = [m.group(1) for m in marker.finditer(text) if any(c.isdigit() for c in m.group(1))]
        if found:
            return normalize_number(found[-1])
    numbers = _numbers(text)
    return normalize_number(numbers[-1]) if numbers else None


def extract_choice(text: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """Read a multiple-choice letter from a reply.

    Prefers an explicit "answer is (C)" / "Answer: C"; otherwise a reply that is
    just a letter (``"B"``, ``"(b)."``); otherwise the last standalone capital
    letter among ``letters`` written as ``(X)`` or ``X)``.

    Args:
        text: The model's reply.
        letters: The valid choice letters.

    Returns:
        The upper-case letter, or None.
    """
    valid = re.escape(letters)
    explicit = re.findall(
        rf"answer\s*(?:is|:)?\s*:?\s*\**\(?([{valid}])\)?(?![A-Za-z])", text, re.IGNORECASE
    )
    if explicit:
        return str(explicit[-1]).upper()
    bare = re.fullmatch(rf"\s*\(?([{valid}])\)?[.:]?\s*", text, re.IGNORECASE)
    if bare:
        return bare.group(1).upper()
    marked = re.findall(rf"\(([{valid}])\)|(?<![A-Za-z])([{valid}])\)", text)
    if marked:
        return "".join(marked[-1]).upper()
    return None


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(text: str) -> str:
    """Normalize text for exact-match grading (SQuAD style).

    Lower-cases, drops punctuation and the articles a/an/the, and collapses
    whitespace.

    Args:
        text: Any text.

    Returns:
        The normalized text.
    """
    lowered = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def extract_text(text: str) -> str | None:
    """Read a short text answer: what follows the last "answer:" or the whole reply.

    Args:
        text: The model's reply.

    Returns:
        The normalized answer, or None for an empty reply.
    """
    parts = re.split(r"answer\s*(?:is|:)\s*", text, flags=re.IGNORECASE)
    answer = normalize_text(parts[-1].strip().splitlines()[0] if parts[-1].strip() else "")
    return answer or None


def numbers_equal(left: str, right: str, *, rel_tol: float = 1e-6) -> bool:
    """Compare two numbers given as text, with a small relative tolerance.

    Args:
        left: A number as written.
        right: Another.
        rel_tol: The relative tolerance (absorbs float rounding like ``0.30000001``).

    Returns:
        Whether both parse and are equal within the tolerance.
    """
    a, b = normalize_number(left), normalize_number(right)
    if a is None or b is None:
        return False
    x, y = Decimal(a), Decimal(b)
    return x == y or abs(x - y) <= Decimal(str(rel_tol)) * max(abs(x), abs(y))


EXTRACTORS: dict[AnswerKind, AnswerExtractor] = {
    "number": extract_number,
    "choice": extract_choice,
    "text": extract_text,
}


def make_grader(kind: AnswerKind = "number", extractor: AnswerExtractor | None = None) -> Grader:
    """Build a grader for one answer kind.

    Args:
        kind: ``"number"``, ``"choice"`` or ``"text"``; sets how the gold answer
            is compared.
        extractor: Reads the answer from the reply; None uses the kind's default.

    Returns:
        A function ``(reply, gold) -> bool``.
    """
    read = extractor or EXTRACTORS[kind]

    def grade(reply: str, gold: str) -> bool:
        predicted = read(reply)
        if predicted is None:
            return False
        if kind == "number":
            return numbers_equal(predicted, gold)
        if kind == "choice":
            return predicted.strip().upper() == gold.strip().upper()
        return normalize_text(predicted) == normalize_text(gold)

    return grade


def gsm8k_gold(solution: str) -> str:
    """The gold number of a GSM8K worked solution (the text after ``####``).

    Args:
        solution: GSM8K's ``answer`` field.

    Returns:
        The canonical number.

    Raises:
        ValueError: If the solution has no ``#### N`` line.
    """
    match = re.search(r"####\s*(.+)", solution)
    number = normalize_number(match.group(1)) if match else None
    if number is None:
        raise ValueError(f"no '#### N' answer in GSM8K solution: {solution[-80:]!r}")
    return number
