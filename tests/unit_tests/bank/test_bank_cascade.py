"""The bank inside the cascade: usefulness feedback, namespaces, concurrency."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import APPLES, APPLES_SIBLING, EASY, UNRELATED
from langchain_core.messages import BaseMessage, HumanMessage

from langchain_intercascade import Strategy, StrategyBank, create_intercascade
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

TENANT_A = {"configurable": {"strategy_namespace": "tenant-a"}}


def unsure_weak() -> ScriptedChatModel:
    return ScriptedChatModel(respond=lambda m: "unsure", logprob=-3.0)


def test_accepted_and_deferred_outcomes_are_counted(weak, strong, bank):
    create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    (record,) = bank.records()
    assert (record.times_retrieved, record.times_accepted, record.times_deferred) == (0, 0, 0)

    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES_SIBLING)
    assert out["route"] == "weak"
    record = bank.get(record.id)
    assert (record.times_retrieved, record.times_accepted, record.times_deferred) == (1, 1, 0)

    out = create_intercascade(unsure_weak(), strong, bank=bank).invoke(APPLES_SIBLING)
    assert out["route"] == "strong"
    record = bank.get(record.id)
    assert (record.times_retrieved, record.times_accepted, record.times_deferred) == (2, 1, 1)
    assert record.last_used_at is not None
    # A query that retrieved nothing counts against nothing.
    create_intercascade(weak, strong, bank=bank).invoke(EASY)
    assert bank.get(record.id).times_retrieved == 2


def test_outcomes_are_counted_on_the_async_path(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)

    async def run():
        await cascade.ainvoke(APPLES)
        return await cascade.ainvoke(APPLES_SIBLING)

    assert asyncio.run(run())["route"] == "weak"
    assert bank.records()[0].times_accepted == 1


def test_a_failing_feedback_write_never_loses_the_answer(weak, strong, bank, monkeypatch):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)

    def down(*args, **kwargs):
        raise ConnectionError("bank unreachable")

    monkeypatch.setattr(bank, "record_outcome", down)
    out = cascade.invoke(APPLES_SIBLING)
    assert out["route"] == "weak" and out["answer"] == "The total is 30."
    assert any(e.startswith("confidence_judge: ConnectionError") for e in out["errors"])


def test_namespaces_isolate_reads_writes_and_counters(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES, TENANT_A)
    assert cascade.invoke(APPLES_SIBLING)["strategies"] == []  # the default namespace
    assert bank.stats().namespaces == {"tenant-a": 1, "default": 1}
    found = cascade.invoke(APPLES_SIBLING, TENANT_A)["strategies"]
    assert [s.record.namespace for s in found] == ["tenant-a"]
    assert bank.records("tenant-a")[0].times_accepted == 1
    assert bank.records("default")[0].times_retrieved == 0


@pytest.mark.parametrize("namespace", ["", "  ", 42])
def test_a_bad_namespace_in_the_config_is_an_error_not_the_default(weak, strong, bank, namespace):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(ValueError, match="strategy_namespace"):
        cascade.invoke(APPLES, {"configurable": {"strategy_namespace": namespace}})
    assert len(bank) == 0


def test_mmr_retrieval_from_the_cascade(weak, strong, embeddings):
    bank = StrategyBank(embeddings=embeddings)
    cascade = create_intercascade(
        weak, strong, bank=bank, k=2, score_threshold=None, search_type="mmr"
    )
    cascade.invoke(APPLES)
    cascade.invoke(UNRELATED)
    out = cascade.invoke(APPLES_SIBLING)
    assert out["route"] == "weak" and len(out["strategies"]) == 2


# -- concurrency ------------------------------------------------------------------------

WIDE = BagOfWordsEmbeddings(dim=4096)  # no two topic words share a hash bucket
# 48 made-up words: problems that share no topic word under bag-of-words embeddings.
TOPICS = [
    f"{a}{b}{c}" for a in "zkmt" for b in ("ax", "on", "ud", "ri") for c in ("el", "op", "us")
]


def topic_strong(messages: list[BaseMessage]) -> str:
    text = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
    topic = next(t for t in TOPICS if t in text)
    if text.startswith("Problem:"):  # the distillation prompt: worded anew each time
        steps = [f"use {topic} as in {text.split()[5]} cases"]
        return json.dumps({"title": topic, "applies_when": topic, "steps": steps})
    return f"The {topic} answer."


def indexed(bank: StrategyBank) -> int:
    return sum(space.index.ntotal for space in bank._backend._spaces.values())  # type: ignore[attr-defined]


def test_abatch_with_max_concurrency_16_loses_no_strategy():
    bank = StrategyBank(embeddings=WIDE)
    strong = ScriptedChatModel(respond=topic_strong)
    cascade = create_intercascade(unsure_weak(), strong, bank=bank)
    # 48 distinct problems, each twice with new numbers: 48 strategies should remain.
    queries = [f"A {t} question with {n} items" for n in (3, 5) for t in TOPICS]
    outs = asyncio.run(cascade.abatch(queries, {"max_concurrency": 16}))
    assert all(o["route"] == "strong" and not o["errors"] for o in outs)
    assert len(bank) == len(TOPICS) == indexed(bank)
    assert {r.strategy.title for r in bank.records()} == set(TOPICS)
    # Each second instance was merged, or (if its twin was stored before it searched)
    # not distilled at all.
    skipped = sum(o["distill_skipped"] == "near_duplicate" for o in outs)
    assert sum(r.variants for r in bank.records()) + skipped == len(TOPICS)
    assert all(r.variants <= 1 for r in bank.records())


def test_threads_writing_and_reading_at_once_lose_nothing():
    bank = StrategyBank(embeddings=WIDE)

    def work(i: int) -> None:
        topic = TOPICS[i % len(TOPICS)]
        bank.add(Strategy(title=topic, applies_when=topic, steps=["s"]), source_query=topic)
        bank.search(topic, k=2)
        bank.record_outcome([r.record.id for r in bank.search(topic, k=1)], accepted=True)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, range(320)))
    assert len(bank) == len(TOPICS) == indexed(bank)
    assert sum(r.times_accepted for r in bank.records()) == 320
