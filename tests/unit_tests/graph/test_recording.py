"""Recording the teacher's answers (``record_to``) inside the graph, on the scripted models."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.store.memory import InMemoryStore

from langchain_intercascade import CascadeOptions, StrategyBank, create_intercascade
from langchain_intercascade.teacher_records import (
    DEFAULT_PREFIX,
    StoreTeacherRecorder,
    TeacherRecord,
)
from langchain_intercascade.testing import (
    CAPITAL_QUESTION,
    SUPPORT_LABELS,
    ScriptedChatModel,
    fake_label_models,
    fake_models,
    strong_respond,
)

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens?"
OTHER = "Translate the word library into German please."


def _tenant(name: str) -> dict[str, Any]:
    return {"configurable": {"strategy_namespace": name}}


@pytest.fixture
def recorder() -> StoreTeacherRecorder:
    return StoreTeacherRecorder(InMemoryStore())


class _Failing(StoreTeacherRecorder):
    def write(self, record: TeacherRecord) -> None:
        raise OSError("the disk is full")

    async def awrite(self, record: TeacherRecord) -> None:
        raise OSError("the disk is full")


def test_off_by_default() -> None:
    assert CascadeOptions().record_to is None
    weak, strong, embeddings = fake_models()
    store = InMemoryStore()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), store=store)
    assert cascade.invoke(FIRST)["route"] == "strong"
    # The graph's own store holds nothing of the turn unless asked to.
    assert store.search(DEFAULT_PREFIX) == []


def test_a_deferred_turn_is_recorded_with_every_field(recorder: StoreTeacherRecorder) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    before = datetime.now(timezone.utc)
    out = cascade.invoke(FIRST, _tenant("acme"))
    (record,) = recorder.read()
    assert out["route"] == "strong"
    assert before <= record.created_at <= datetime.now(timezone.utc)
    assert record.tenant == "acme"
    assert [(type(m), m.text) for m in record.messages] == [(HumanMessage, FIRST)]
    assert (
        record.answer
        == out["answer"]
        == "Multiply the groups by the items in each: the total is 12."
    )
    assert record.weak_answer == "The total is 7."
    assert (record.confidence, record.judge_signal) == (out["confidence"], out["judge_signal"])
    assert record.confidence < record.threshold == 0.8
    assert (record.threshold_calibrated, record.route) == (False, "strong")
    assert record.strong_confidence is None
    assert record.strategy == out["new_strategy"].strategy
    assert record.strategy_id == out["new_strategy"].id
    assert record.no_strategy is None
    assert (record.weak_model, record.strong_model) == ("weak-fake", "strong-fake")
    assert recorder.skipped == {} and recorder.failed == 0


def test_accepted_weak_turns_are_not_recorded(recorder: StoreTeacherRecorder) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    assert cascade.invoke(CAPITAL_QUESTION)["route"] == "weak"
    assert cascade.invoke(FIRST)["route"] == "strong"
    # The sibling problem is answered by the weak model with the strategy: not recorded.
    assert (
        cascade.invoke("Ana has 5 boxes with 6 pens in each box. How many pens?")["route"] == "weak"
    )
    assert [r.messages[-1].text for r in recorder.read()] == [FIRST]


def test_tenants_stay_apart(recorder: StoreTeacherRecorder) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    cascade.invoke(FIRST, _tenant("acme.com"))
    cascade.invoke(OTHER, _tenant("globex"))
    cascade.invoke(FIRST, _tenant("globex"))  # globex has no strategy yet: deferred too
    assert [r.messages[-1].text for r in recorder.read(tenant="acme.com")] == [FIRST]
    assert [r.messages[-1].text for r in recorder.read(tenant="globex")] == [OTHER, FIRST]
    assert len(recorder.read()) == 3
    namespaces = recorder.store.list_namespaces(prefix=DEFAULT_PREFIX)
    assert sorted(namespaces) == [(*DEFAULT_PREFIX, "acme%2Ecom"), (*DEFAULT_PREFIX, "globex")]


def test_a_record_filed_under_another_tenant_is_not_read_as_theirs(
    recorder: StoreTeacherRecorder,
) -> None:
    weak, strong, _ = fake_models()
    create_intercascade(weak, strong, record_to=recorder).invoke(FIRST, _tenant("globex"))
    (record,) = recorder.read()
    # A store that matched prefixes loosely, or a hand-made item: the record's tenant decides.
    recorder.store.put((*DEFAULT_PREFIX, "acme"), record.id, record.model_dump(mode="json"))
    assert recorder.read(tenant="acme") == []


def test_without_a_bank_or_distillation_the_record_says_why_no_strategy(
    recorder: StoreTeacherRecorder,
) -> None:
    weak, strong, embeddings = fake_models()
    create_intercascade(weak, strong, record_to=recorder).invoke(FIRST, _tenant("a"))
    create_intercascade(
        weak, strong, bank=StrategyBank(embeddings), distill=False, record_to=recorder
    ).invoke(FIRST, _tenant("b"))
    assert [(r.tenant, r.no_strategy, r.strategy) for r in recorder.read()] == [
        ("a", "no bank", None),
        ("b", "distill off", None),
    ]


def test_an_untrusted_answer_is_recorded_with_the_strong_confidence(
    recorder: StoreTeacherRecorder,
) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(
        weak,
        strong,
        bank=StrategyBank(embeddings),
        distill_threshold=0.9,
        strong_judge=lambda messages, answer: 0.5,
        threshold=math.inf,
        record_to=recorder,
    )
    cascade.invoke(CAPITAL_QUESTION)  # deferred: nothing clears an infinite threshold
    (record,) = recorder.read()
    assert (record.no_strategy, record.strong_confidence) == ("untrusted", 0.5)
    assert record.threshold is None  # math.inf, kept as JSON can hold it


def test_a_failed_distillation_is_why_there_is_no_strategy(recorder: StoreTeacherRecorder) -> None:
    weak, _, embeddings = fake_models()
    # Its distillation is no strategy at all.
    strong = ScriptedChatModel(
        respond=lambda m: "not json" if m[-1].text.startswith("Problem:") else strong_respond(m),
        model_name="strong-fake",
    )
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    out = cascade.invoke(FIRST)
    (record,) = recorder.read()
    assert out["new_strategy"] is None
    assert record.no_strategy is not None and record.no_strategy.startswith("distill_strategy: ")
    assert record.no_strategy in out["errors"]


def test_the_guard_skips_a_poisoned_answer(recorder: StoreTeacherRecorder) -> None:
    weak, _, embeddings = fake_models()
    poisoned = "The total is 12. Check your work at https://evil.example/answers first."
    strong = ScriptedChatModel(
        respond=lambda m: strong_respond(m) if m[-1].text.startswith("Problem:") else poisoned,
        model_name="strong-fake",
    )
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    out = cascade.invoke(FIRST)
    assert (out["route"], out["answer"]) == ("strong", poisoned)  # the user still gets it
    assert recorder.read() == []
    assert recorder.skipped == {"contains a link": 1}
    assert not [e for e in out["errors"] if e.startswith("record_to")]


def test_a_label_task_records_only_answers_that_name_a_label(
    recorder: StoreTeacherRecorder,
) -> None:
    weak, strong, embeddings = fake_label_models()
    off_list = ScriptedChatModel(respond=lambda m: "card_delivery", model_name="strong-labels")
    options = SUPPORT_LABELS.options(record_to=recorder)
    for teacher in (strong, off_list):
        cascade = create_intercascade(weak, teacher, bank=StrategyBank(embeddings), options=options)
        cascade.invoke("My new card has not arrived yet, when does a card arrive?")
    (record,) = recorder.read()
    assert record.answer == "card_arrival"
    # The label list, the task's system prompt, is what the strong model was asked with.
    assert isinstance(record.messages[0], SystemMessage)
    assert "card_arrival" in record.messages[0].text
    ((reason, count),) = recorder.skipped.items()
    assert reason.startswith("names no label of the task") and count == 1


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_failing_recorder_never_loses_the_answer(asynchronous: bool) -> None:
    weak, strong, embeddings = fake_models()
    failing = _Failing(InMemoryStore())
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=failing)
    out = await cascade.ainvoke(FIRST) if asynchronous else cascade.invoke(FIRST)
    assert out["route"] == "strong" and out["answer"].endswith("the total is 12.")
    assert out["new_strategy"] is not None
    assert any(e.startswith("record_to: OSError: the disk is full") for e in out["errors"])
    assert failing.failed == 1


async def test_ainvoke_records_through_the_store_async_path(recorder: StoreTeacherRecorder) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings), record_to=recorder)
    out = await cascade.ainvoke(FIRST, _tenant("acme"))
    (record,) = recorder.read(tenant="acme")
    assert record.strategy_id == out["new_strategy"].id


def test_a_background_distillation_records_its_strategy(recorder: StoreTeacherRecorder) -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(
        weak,
        strong,
        bank=StrategyBank(embeddings),
        distill_in_background=True,
        record_to=recorder,
    )
    out = cascade.invoke(FIRST)
    assert out.get("new_strategy") is None
    (update,) = cascade.wait_for_distillations(timeout=30)
    (record,) = recorder.read()
    assert record.strategy_id == update["new_strategy"].id


class _AsyncOnlyScreen:
    """A screen that may only be awaited (as ModelStrategyScreen's model call is)."""

    def __call__(self, strategy: Any) -> str | None:
        raise AssertionError("called synchronously under ainvoke")

    async def ascreen(self, strategy: Any) -> str | None:
        return "rejected by the async screen"


async def test_under_ainvoke_the_screen_is_awaited(recorder: StoreTeacherRecorder) -> None:
    weak, strong, _ = fake_models()
    cascade = create_intercascade(
        weak, strong, strategy_filter=_AsyncOnlyScreen(), record_to=recorder
    )
    out = await cascade.ainvoke(FIRST)
    assert out["route"] == "strong" and recorder.read() == []
    assert recorder.skipped == {"rejected by the async screen": 1}
