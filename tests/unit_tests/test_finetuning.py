"""Teacher records as chat fine-tuning files: the formats and the checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from test_teacher_records import record

from langchain_intercascade.answers import extract_number
from langchain_intercascade.finetuning import (
    NO_ANSWER,
    NOT_TEXT,
    chat_messages,
    export_finetuning,
    finetuning_row,
)
from langchain_intercascade.strategies import Strategy
from langchain_intercascade.testing import SUPPORT_LABELS


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_openai_format_is_the_conversation_then_the_answer(tmp_path: Path) -> None:
    summary = export_finetuning([record()], tmp_path / "train.jsonl")
    assert (summary.written, summary.dropped) == (1, {})
    assert _lines(tmp_path / "train.jsonl") == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "3 boxes of 4 pens?"},
                {"role": "assistant", "content": "The total is 12."},
            ]
        }
    ]


def test_the_hf_format_adds_the_record_columns() -> None:
    strategy = Strategy(title="Equal groups", applies_when="groups", steps=["Multiply"])
    row = finetuning_row(record(strategy=strategy, strategy_id="abc"), "hf")
    assert row is not None
    assert row["messages"] == chat_messages(record())
    assert row["tenant"] == "acme" and row["created_at"] == "2025-06-01T12:00:00+00:00"
    assert (row["weak_model"], row["strong_model"]) == ("weak", "strong")
    assert (row["confidence"], row["threshold"], row["route"]) == (0.2, 0.8, "strong")
    assert row["weak_answer"] == "The total is 7."
    assert row["strategy"] == strategy.to_text() and row["no_strategy"] is None


def test_an_unknown_format_is_named() -> None:
    with pytest.raises(ValueError, match="'csv'"):
        finetuning_row(record(), "csv")  # type: ignore[arg-type]


def test_the_answer_check_drops_answers_it_reads_nothing_from(tmp_path: Path) -> None:
    records = [record(), record(answer="Bibliothek.")]
    summary = export_finetuning(records, tmp_path / "n.jsonl", extractor=extract_number)
    assert (summary.written, summary.dropped) == (1, {NO_ANSWER: 1})
    labelled = [record(answer="card_arrival"), record(answer="card_delivery")]
    summary = export_finetuning(labelled, tmp_path / "l.jsonl", extractor=SUPPORT_LABELS.extract)
    assert (summary.written, summary.dropped) == (1, {NO_ANSWER: 1})
    assert _lines(tmp_path / "l.jsonl")[0]["messages"][-1] == {  # type: ignore[index]
        "role": "assistant",
        "content": "card_arrival",
    }


def test_a_conversation_with_tool_calls_or_images_is_dropped(tmp_path: Path) -> None:
    call = {"name": "multiply", "args": {"a": 3, "b": 4}, "id": "c1"}
    tools = [
        HumanMessage("3 boxes of 4?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("12", tool_call_id="c1"),
    ]
    image = [
        HumanMessage(
            [
                {"type": "text", "text": "How many?"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ]
        )
    ]
    text_blocks = [SystemMessage("Be brief."), HumanMessage([{"type": "text", "text": "Hi"}])]
    records = [record(messages=tools), record(messages=image), record(messages=text_blocks)]
    summary = export_finetuning(records, tmp_path / "t.jsonl")
    assert (summary.written, summary.dropped) == (1, {NOT_TEXT: 2})
    assert _lines(tmp_path / "t.jsonl")[0]["messages"][1] == {"role": "user", "content": "Hi"}  # type: ignore[index]


def test_an_export_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("old\n")
    export_finetuning([], path)
    assert path.read_text() == ""
    assert [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]  # no temporary left
