"""Evaluation data: examples, their loaders (JSONL, GSM8K, multiple choice, labelled) and order."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from langchain_intercascade.answers import gsm8k_gold
from langchain_intercascade.labels import LabelSet

DataFormat = Literal["jsonl", "gsm8k", "multiple_choice"]


class Example(BaseModel):
    """One question of an evaluation stream.

    Attributes:
        id: A stable identifier (the line number when the data has none).
        question: The text sent to the models.
        answer: The gold answer (a number, a choice letter or a text).
        metadata: Anything else the data set carries (e.g. a worked solution).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    answer: str
    metadata: dict[str, Any] = Field(default_factory=dict)


def _read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number}: expected a JSON object per line")
                yield number, row


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            return list(enumerate(csv.DictReader(fh), 2))
    return list(_read_jsonl(path))


def load_labelled(
    path: str | Path,
    labels: LabelSet,
    *,
    text_key: str = "text",
    label_key: str = "label",
) -> list[Example]:
    """Load labelled messages from CSV (a header row) or JSONL, checked against the labels.

    Args:
        path: A ``.csv`` file, or JSONL (one object per line).
        labels: The task's labels; every gold label must be one of them.
        text_key: The column holding the message.
        label_key: The column holding its label (Banking77 calls it ``category``).

    Returns:
        The examples in file order, ``answer`` the label as listed in ``labels``.

    Raises:
        ValueError: If a row lacks a column, has an empty message, or a label
            outside the set (naming the file and line).
    """
    path = Path(path)
    examples = []
    for number, row in _rows(path):
        missing = [key for key in (text_key, label_key) if key not in row or row[key] is None]
        if missing:
            raise ValueError(f"{path}:{number}: missing column {missing[0]!r} (has {sorted(row)})")
        text, gold = str(row[text_key]), labels.canonical(str(row[label_key]))
        if not text.strip():
            raise ValueError(f"{path}:{number}: empty {text_key!r}")
        if gold is None:
            raise ValueError(f"{path}:{number}: label {row[label_key]!r} is not in the label set")
        rest = {k: v for k, v in row.items() if k not in (text_key, label_key)}
        examples.append(Example(id=str(number), question=text, answer=gold, metadata=rest))
    return examples


def _field(row: dict[str, Any], key: str, path: str | Path, number: int) -> Any:
    if key not in row:
        raise ValueError(f"{path}:{number}: missing field {key!r} (has {sorted(row)})")
    return row[key]


def load_jsonl(
    path: str | Path,
    *,
    question_key: str = "question",
    answer_key: str = "answer",
    id_key: str | None = None,
) -> list[Example]:
    """Load question/answer pairs from a JSONL file.

    Args:
        path: One JSON object per line.
        question_key: The field holding the question.
        answer_key: The field holding the gold answer (kept as text).
        id_key: The field holding an id; None numbers the lines.

    Returns:
        The examples, in file order; other fields go to ``metadata``.

    Raises:
        ValueError: If a line is not an object or lacks a field.
    """
    examples = []
    for number, row in _read_jsonl(path):
        question = _field(row, question_key, path, number)
        answer = _field(row, answer_key, path, number)
        ident = str(row[id_key]) if id_key else str(number)
        rest = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        examples.append(Example(id=ident, question=question, answer=str(answer), metadata=rest))
    return examples


def load_gsm8k(path: str | Path) -> list[Example]:
    """Load GSM8K (``question``, and ``answer`` as a worked solution ending in ``#### N``).

    Args:
        path: A GSM8K JSONL file, e.g. ``test.jsonl``.

    Returns:
        The examples; ``answer`` is the canonical number and
        ``metadata["solution"]`` the worked solution.
    """
    examples = []
    for number, row in _read_jsonl(path):
        solution = str(_field(row, "answer", path, number))
        examples.append(
            Example(
                id=f"gsm8k-{number}",
                question=_field(row, "question", path, number),
                answer=gsm8k_gold(solution),
                metadata={"solution": solution},
            )
        )
    return examples


def format_choices(question: str, choices: Sequence[str]) -> str:
    """Render a question with lettered options ("A) ...") and an answer instruction.

    Args:
        question: The question stem.
        choices: The options, in order.

    Returns:
        The text sent to the models.
    """
    options = "\n".join(f"{chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


def load_multiple_choice(
    path: str | Path,
    *,
    question_key: str = "question",
    choices_key: str = "choices",
    answer_key: str = "answer",
) -> list[Example]:
    """Load multiple-choice questions from a JSONL file.

    The gold answer may be a letter (``"C"``), a 0-based index (``2``) or the text
    of the correct option; it is stored as the letter.

    Args:
        path: One JSON object per line.
        question_key: The field holding the question stem.
        choices_key: The field holding the list of options.
        answer_key: The field holding the correct option.

    Returns:
        The examples, with the options rendered into the question.

    Raises:
        ValueError: If a gold answer matches no option.
    """
    examples = []
    for number, row in _read_jsonl(path):
        choices = [str(c) for c in _field(row, choices_key, path, number)]
        gold = _field(row, answer_key, path, number)
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(choices):
            letter = letters[gold]
        elif isinstance(gold, str) and gold.strip().upper() in letters:
            letter = gold.strip().upper()
        elif isinstance(gold, str) and gold in choices:
            letter = letters[choices.index(gold)]
        else:
            raise ValueError(f"{path}:{number}: answer {gold!r} matches none of {choices}")
        question = format_choices(_field(row, question_key, path, number), choices)
        rest = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        examples.append(Example(id=str(number), question=question, answer=letter, metadata=rest))
    return examples


def load_examples(path: str | Path, data_format: DataFormat = "jsonl") -> list[Example]:
    """Load a data set in one of the supported formats.

    Args:
        path: The JSONL file.
        data_format: ``"jsonl"`` (question/answer), ``"gsm8k"`` or ``"multiple_choice"``.

    Returns:
        The examples, in file order.
    """
    if data_format == "gsm8k":
        return load_gsm8k(path)
    if data_format == "multiple_choice":
        return load_multiple_choice(path)
    return load_jsonl(path)


def order_examples(
    examples: Sequence[Example], *, seed: int = 0, shuffle: bool = True, limit: int | None = None
) -> list[Example]:
    """Fix the stream's order: a seeded shuffle, then the first ``limit``.

    The order of the first ``n`` examples does not depend on ``limit``, so a
    larger rerun extends a smaller one (and reuses its cached calls).

    Args:
        examples: The data set.
        seed: The shuffle's seed.
        shuffle: False keeps the file order.
        limit: Keep at most this many.

    Returns:
        The stream.
    """
    ordered = list(examples)
    if shuffle:
        random.Random(seed).shuffle(ordered)
    return ordered[:limit] if limit is not None else ordered
