"""Chat fine-tuning files from the teacher's answers (the records of ``teacher_records``).

Each :class:`~langchain_intercascade.teacher_records.TeacherRecord` becomes one
JSON line: the conversation the strong model was asked, then its answer as the
assistant's turn, in OpenAI's chat format (``{"messages": [{"role": ...,
"content": ...}, ...]}``). ``"openai"`` writes that alone, as OpenAI's fine-tuning
API takes it; ``"hf"`` adds the record's columns (tenant, time, models, the
judge's decision, the weak answer, the strategy) for Hugging Face ``datasets``
(``load_dataset("json", data_files=...)``) and TRL's conversational format.
Every message is text, so both load as one table.

A check drops answers that hold no answer of the task: with a label task's
:meth:`LabelSet.extract <langchain_intercascade.labels.LabelSet.extract>` only
answers naming a label of the set are kept, with
:func:`~langchain_intercascade.answers.extract_number` only those that state a
number. A conversation with tool calls or non-text content is dropped too (the
record holds no tool definitions to train on).

Example:
    ```python
    import json
    import tempfile
    from pathlib import Path

    from langgraph.store.memory import InMemoryStore

    from langchain_intercascade import create_intercascade
    from langchain_intercascade.answers import extract_number
    from langchain_intercascade.finetuning import export_finetuning
    from langchain_intercascade.teacher_records import StoreTeacherRecorder
    from langchain_intercascade.testing import fake_models

    weak, strong, _ = fake_models()
    recorder = StoreTeacherRecorder(InMemoryStore())
    cascade = create_intercascade(weak, strong, record_to=recorder)
    cascade.invoke("Sam has 3 boxes with 4 pens in each box. How many pens?")
    cascade.invoke("Translate the word library into German.")  # no number in its answer

    path = Path(tempfile.mkdtemp()) / "train.jsonl"
    summary = export_finetuning(recorder.read(), path, extractor=extract_number)
    assert (summary.written, summary.dropped) == (1, {"no answer the check reads": 1})
    (line,) = path.read_text().splitlines()
    assert [m["role"] for m in json.loads(line)["messages"]] == ["user", "assistant"]
    ```
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict

from langchain_intercascade.answers import AnswerExtractor
from langchain_intercascade.teacher_records import TeacherRecord

FinetuningFormat = Literal["openai", "hf"]
"""``"openai"``: OpenAI's chat fine-tuning JSONL; ``"hf"``: the same with the record's columns."""

NO_ANSWER = "no answer the check reads"
"""Why an answer the extractor reads nothing from is dropped."""

NOT_TEXT = "tool calls or non-text content"
"""Why a record with tool calls, tool results or non-text content is dropped."""

_ROLES: tuple[tuple[type[BaseMessage], str], ...] = (
    (SystemMessage, "system"),
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
)


class ExportSummary(BaseModel):
    """What an export wrote, and what it left out.

    Attributes:
        written: Lines written.
        dropped: Records left out, by reason.
    """

    model_config = ConfigDict(frozen=True)

    written: int
    dropped: dict[str, int]


def _text_turn(message: BaseMessage) -> dict[str, str] | None:
    """A message as ``{"role", "content"}``, or None when it is not a text turn."""
    role = next((name for kind, name in _ROLES if isinstance(message, kind)), None)
    if role is None or (isinstance(message, AIMessage) and message.tool_calls):
        return None
    content = message.content
    if not isinstance(content, str) and any(
        not isinstance(block, str) and block.get("type") != "text" for block in content
    ):
        return None
    return {"role": role, "content": message.text}


def chat_messages(record: TeacherRecord) -> list[dict[str, str]] | None:
    """The record as OpenAI chat messages: the conversation, then the strong answer.

    Args:
        record: A teacher record.

    Returns:
        The messages, or None when the conversation has a turn that is not text
        (tool calls, tool results, images).
    """
    turns = [_text_turn(m) for m in record.messages]
    if any(turn is None for turn in turns):
        return None
    return [*(t for t in turns if t is not None), {"role": "assistant", "content": record.answer}]


def finetuning_row(
    record: TeacherRecord, form: FinetuningFormat = "openai"
) -> dict[str, Any] | None:
    """One line of a fine-tuning file.

    Args:
        record: A teacher record.
        form: ``"openai"`` (messages alone) or ``"hf"`` (messages and the record's columns).

    Returns:
        The line's object, or None when the record has no text conversation.

    Raises:
        ValueError: If ``form`` is not a known format.
    """
    if form not in get_args(FinetuningFormat):
        raise ValueError(
            f"format must be one of {', '.join(get_args(FinetuningFormat))}, got {form!r}"
        )
    messages = chat_messages(record)
    if messages is None:
        return None
    if form == "openai":
        return {"messages": messages}
    return {
        "messages": messages,
        "id": record.id,
        "tenant": record.tenant,
        "created_at": record.created_at.isoformat(),
        "weak_model": record.weak_model,
        "strong_model": record.strong_model,
        "weak_answer": record.weak_answer,
        "confidence": record.confidence,
        "judge_signal": record.judge_signal,
        "threshold": record.threshold,
        "threshold_calibrated": record.threshold_calibrated,
        "route": record.route,
        "strong_confidence": record.strong_confidence,
        "strategy": record.strategy.to_text() if record.strategy is not None else None,
        "no_strategy": record.no_strategy,
    }


def export_finetuning(
    records: Iterable[TeacherRecord],
    path: str | Path,
    *,
    form: FinetuningFormat = "openai",
    extractor: AnswerExtractor | None = None,
) -> ExportSummary:
    """Write teacher records as a chat fine-tuning JSONL file, replacing it whole.

    Args:
        records: The records, e.g. ``recorder.read(tenant=..., since=...)``.
        path: The file to write (written to a temporary file first, then renamed).
        form: ``"openai"`` or ``"hf"`` (see :data:`FinetuningFormat`).
        extractor: Keep only answers it reads an answer from (a label set's
            ``extract``, ``extract_number``); None keeps every answer.

    Returns:
        How many lines were written, and how many records were dropped and why.

    Raises:
        ValueError: If ``form`` is not a known format.
        OSError: If the file cannot be written.
    """
    target = Path(path)
    dropped: Counter[str] = Counter()
    lines = []
    for record in records:
        if extractor is not None and extractor(record.answer) is None:
            dropped[NO_ANSWER] += 1
            continue
        row = finetuning_row(record, form)
        if row is None:
            dropped[NOT_TEXT] += 1
            continue
        # allow_nan=False: no line a JSON reader (datasets' included) would refuse.
        lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    # A failed export leaves no half-written training file behind.
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.writelines(lines)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ExportSummary(written=len(lines), dropped=dict(dropped))


__all__ = [
    "NOT_TEXT",
    "NO_ANSWER",
    "ExportSummary",
    "FinetuningFormat",
    "chat_messages",
    "export_finetuning",
    "finetuning_row",
]
