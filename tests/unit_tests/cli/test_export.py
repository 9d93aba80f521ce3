"""`intercascade export`: the recorded teacher's answers as fine-tuning files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.cli import app
from langchain_intercascade.teacher_records import JsonlTeacherRecorder
from langchain_intercascade.testing import (
    SUPPORT_LABELS,
    SUPPORT_TICKETS,
    ScriptedChatModel,
    fake_label_models,
    fake_models,
)

runner = CliRunner()

PENS = "Sam has 3 boxes with 4 pens in each box. How many pens?"
WORD = "Translate the word library into German please."


def _tenant(name: str) -> dict[str, Any]:
    return {"configurable": {"strategy_namespace": name}}


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """Three deferred turns of two tenants, the first a day older than the others."""
    path = tmp_path / "teacher.jsonl"
    recorder = JsonlTeacherRecorder(path)
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    cascade.invoke(PENS, _tenant("acme"))
    cascade.invoke(WORD, _tenant("acme"))
    cascade.invoke(PENS, _tenant("globex"))
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["created_at"] = "2025-01-01T00:00:00Z"
    path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    return path


def _export(*args: str) -> str:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.output


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_openai_chat_lines(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    said = _export(str(records), str(out))
    rows = _rows(out)
    assert [list(row) for row in rows] == [["messages"]] * 3
    assert rows[0]["messages"] == [
        {"role": "user", "content": PENS},
        {
            "role": "assistant",
            "content": "Multiply the groups by the items in each: the total is 12.",
        },
    ]
    assert f"exported 3 of 3 records to {out}" in said


def test_export_filters_by_tenant_and_since(records: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    _export(str(records), str(out), "--tenant", "acme", "--format", "hf")
    assert [(r["tenant"], r["messages"][0]["content"]) for r in _rows(out)] == [
        ("acme", PENS),
        ("acme", WORD),
    ]
    today = datetime.now(timezone.utc).date().isoformat()
    _export(str(records), str(out), "--since", today, "--format", "hf")
    assert [(r["tenant"], r["messages"][0]["content"]) for r in _rows(out)] == [
        ("acme", WORD),
        ("globex", PENS),
    ]
    _export(str(records), str(out), "--since", "2024-12-31T23:00", "--tenant", "globex")
    assert len(_rows(out)) == 1


def test_export_keeps_only_numeric_answers_with_answers_number(
    records: Path, tmp_path: Path
) -> None:
    out = tmp_path / "train.jsonl"
    said = _export(str(records), str(out), "--answers", "number")
    assert [r["messages"][-1]["content"][-3:] for r in _rows(out)] == ["12.", "12."]
    assert "dropped 1 (no answer the check reads)" in said


def test_export_keeps_only_answers_naming_a_label(tmp_path: Path) -> None:
    path = tmp_path / "teacher.jsonl"
    recorder = JsonlTeacherRecorder(path)
    weak, strong, embeddings = fake_label_models()
    # The strategy filter records only labels; a recorder file may hold other answers too.
    loose = SUPPORT_LABELS.options(record_to=recorder, strategy_filter=None)
    chatty = ScriptedChatModel(respond=lambda m: "Hard to say.", model_name="strong")
    for teacher in (strong, chatty):
        create_intercascade(weak, teacher, options=loose).invoke(SUPPORT_TICKETS[0][0])
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(list(SUPPORT_LABELS.labels)))
    out = tmp_path / "train.jsonl"
    said = _export(str(path), str(out), "--labels", str(labels))
    assert [r["messages"][-1]["content"] for r in _rows(out)] == ["card_arrival"]
    assert "exported 1 of 2 records" in said


def test_an_hf_export_round_trips_through_datasets(
    records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for form in ("hf", "openai"):
        out = tmp_path / f"{form}.jsonl"
        _export(str(records), str(out), "--format", form)
        table = datasets.load_dataset(
            "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert table.num_rows == 3
        assert table[0]["messages"] == _rows(out)[0]["messages"]
        if form == "hf":
            assert table["tenant"] == ["acme", "acme", "globex"]
            assert table[1]["strategy"].startswith("Translate a single word")
            assert table.features["confidence"].dtype == "float64"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "csv"], "--format must be one of openai, hf"),
        (["--since", "yesterday"], "--since must be an ISO date"),
        (["--answers", "words"], "--answers must be one of number, choice, text"),
    ],
)
def test_bad_flags_are_named(records: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["export", str(records), str(tmp_path / "o.jsonl"), *args])
    assert result.exit_code == 2 and message in result.output


def test_missing_or_bad_sources_are_named(tmp_path: Path) -> None:
    out = str(tmp_path / "o.jsonl")
    result = runner.invoke(app, ["export", str(tmp_path / "none.jsonl"), out])
    assert result.exit_code == 2 and "no teacher records file" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tenant": "acme"}\n')
    result = runner.invoke(app, ["export", str(bad), out])
    assert result.exit_code == 2 and "bad.jsonl:1: not a teacher record" in result.output
    result = runner.invoke(app, ["export", str(bad), str(tmp_path / "no" / "o.jsonl")])
    assert result.exit_code == 2 and "no folder" in result.output
