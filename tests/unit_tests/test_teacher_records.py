"""Teacher records and their recorders: the JSONL file and the LangGraph store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.store.memory import InMemoryStore

from langchain_intercascade.teacher_records import (
    JsonlTeacherRecorder,
    StoreTeacherRecorder,
    TeacherRecord,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def record(tenant: str = "acme", *, at: datetime = T0, **fields: Any) -> TeacherRecord:
    values: dict[str, Any] = {
        "tenant": tenant,
        "created_at": at,
        "messages": [SystemMessage("Be brief."), HumanMessage("3 boxes of 4 pens?")],
        "answer": "The total is 12.",
        "weak_answer": "The total is 7.",
        "confidence": 0.2,
        "threshold": 0.8,
        "weak_model": "weak",
        "strong_model": "strong",
        **fields,
    }
    return TeacherRecord(**values)


@pytest.fixture(params=["jsonl", "store"])
def recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "jsonl":
        return JsonlTeacherRecorder(tmp_path / "teacher.jsonl")
    return StoreTeacherRecorder(InMemoryStore())


def test_records_round_trip_oldest_first(recorder: Any) -> None:
    late, early = record(at=T0 + timedelta(hours=1)), record(at=T0)
    recorder.write(late)
    recorder.write(early)
    assert recorder.read() == [early, late]
    assert isinstance(recorder.read()[0].messages[1], HumanMessage)


async def test_the_async_write_keeps_the_record(recorder: Any) -> None:
    written = record()
    await recorder.awrite(written)
    assert recorder.read() == [written]


def test_read_filters_by_tenant_and_since(recorder: Any) -> None:
    for tenant, hours in (("acme", 0), ("acme.com", 1), ("acme", 2)):
        recorder.write(record(tenant, at=T0 + timedelta(hours=hours)))
    assert [r.created_at.hour for r in recorder.read(tenant="acme")] == [12, 14]
    assert [r.tenant for r in recorder.read(tenant="acme.com")] == ["acme.com"]
    assert [r.tenant for r in recorder.read(since=T0 + timedelta(hours=1))] == ["acme.com", "acme"]
    # A naive time is UTC.
    assert len(recorder.read(since=datetime(2025, 6, 1, 14, 0))) == 1
    assert recorder.read(tenant="nobody") == []


def test_provider_metadata_is_left_out_of_the_conversation() -> None:
    earlier = AIMessage("Hi.", response_metadata={"logprobs": [0.1] * 100})
    kept = record(messages=[HumanMessage("Hello"), earlier, HumanMessage("3 boxes of 4?")])
    assert kept.messages[1].response_metadata == {} and kept.messages[1].text == "Hi."


def test_a_jsonl_line_cut_short_at_the_end_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "teacher.jsonl"
    recorder = JsonlTeacherRecorder(path)
    recorder.write(record())
    with open(path, "a", encoding="utf-8") as out:
        out.write(record().model_dump_json()[:40])  # a process stopped mid-write
    assert len(recorder.read()) == 1


def test_a_bad_jsonl_line_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "teacher.jsonl"
    path.write_text(json.dumps({"tenant": "acme"}) + "\n" + record().model_dump_json() + "\n")
    with pytest.raises(ValueError, match=r"teacher\.jsonl:1: not a teacher record"):
        JsonlTeacherRecorder(path).read()


def test_a_store_item_that_is_not_a_record_is_an_error_naming_it() -> None:
    store = InMemoryStore()
    store.put(("intercascade_teacher", "acme"), "odd", {"what": "else"})
    with pytest.raises(ValueError, match="intercascade_teacher/acme/odd is not a teacher record"):
        StoreTeacherRecorder(store).read()


def test_bad_recorder_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no folder"):
        JsonlTeacherRecorder(tmp_path / "missing" / "teacher.jsonl")
    with pytest.raises(ValueError, match="is a folder"):
        JsonlTeacherRecorder(tmp_path)
    with pytest.raises(ValueError, match="langgraph"):
        StoreTeacherRecorder(InMemoryStore(), prefix=("langgraph", "x"))
    with pytest.raises(ValueError, match="at least one label"):
        StoreTeacherRecorder(InMemoryStore(), prefix=())
    with pytest.raises(TypeError, match="BaseStore"):
        StoreTeacherRecorder({})  # type: ignore[arg-type]


def test_a_record_without_an_answer_or_a_conversation_is_refused() -> None:
    with pytest.raises(ValueError, match="answer"):
        record(answer="")
    with pytest.raises(ValueError, match="messages"):
        record(messages=[])


def test_the_store_recorder_does_not_embed_its_items() -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return [[1.0, 0.0] for _ in texts]

    store = InMemoryStore(index={"embed": embed, "dims": 2})
    StoreTeacherRecorder(store).write(record())
    assert calls == []  # a store with a semantic index pays nothing for a record
