"""Which strong answers are distilled: trusted ones, and only when the bank lacks the strategy."""

from __future__ import annotations

import math

import pytest
from conftest import APPLES, APPLES_SIBLING

from langchain_intercascade import CascadeTurn, StrategyBank, create_intercascade
from langchain_intercascade.middleware import InterCascadeMiddleware
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel


def distill_calls(strong: ScriptedChatModel) -> int:
    return sum(1 for call in strong.calls if call[-1].text.startswith("Problem:"))


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_an_untrusted_strong_answer_is_answered_but_not_distilled(
    weak, strong, bank, asynchronous
) -> None:
    cascade = create_intercascade(
        weak, strong, bank=bank, distill_threshold=0.5, strong_judge=lambda m, a: 0.2
    )
    out = await cascade.ainvoke(APPLES) if asynchronous else cascade.invoke(APPLES)
    turn = CascadeTurn.from_state(out)
    assert turn.route == "strong"  # unlike two-threshold mode, the user gets the answer
    assert turn.answer.endswith("the total is 12.")
    assert turn.strong_confidence == 0.2
    assert turn.distill_skipped == "untrusted"
    assert turn.new_strategy is None and len(bank) == 0
    assert distill_calls(strong) == 0 and "distill" not in turn.usage["strong"]


def test_a_trusted_strong_answer_is_distilled(weak, strong, bank) -> None:
    out = create_intercascade(
        weak, strong, bank=bank, distill_threshold=0.5, strong_judge=lambda m, a: 0.9
    ).invoke(APPLES)
    assert out["distill_skipped"] is None
    assert out["new_strategy"] is not None and len(bank) == 1


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_query_that_retrieved_a_near_duplicate_pays_no_distillation(
    weak, strong, asynchronous
) -> None:
    bank = StrategyBank(BagOfWordsEmbeddings(), dedup_threshold=0.9)
    cascade = create_intercascade(weak, strong, bank=bank, threshold=math.inf)
    run = cascade.ainvoke if asynchronous else cascade.invoke
    first = await run(APPLES) if asynchronous else run(APPLES)
    assert first["new_strategy"] is not None and distill_calls(strong) == 1

    again = await run(APPLES) if asynchronous else run(APPLES)
    assert again["strategies"][0].score >= 0.9
    assert again["route"] == "strong" and again["answer"]
    assert again["distill_skipped"] == "near_duplicate"
    assert distill_calls(strong) == 1 and "distill" not in again["usage"]["strong"]
    assert len(bank) == 1


def test_a_sibling_below_the_dedup_threshold_is_still_distilled(weak, strong) -> None:
    bank = StrategyBank(BagOfWordsEmbeddings(), dedup_threshold=0.99)
    cascade = create_intercascade(weak, strong, bank=bank, threshold=math.inf)
    cascade.invoke(APPLES)
    sibling = cascade.invoke(APPLES_SIBLING)
    assert sibling["strategies"] and sibling["strategies"][0].score < 0.99
    assert sibling["distill_skipped"] is None and distill_calls(strong) == 2


@pytest.mark.parametrize(
    ("bank_options", "cascade_options"),
    [({"dedup_threshold": None}, {}), ({}, {"store_source_query": False})],
    ids=["bank-without-dedup", "strategies-keyed-by-title"],
)
def test_without_query_keyed_dedup_every_strong_answer_is_distilled(
    weak, strong, bank_options, cascade_options
) -> None:
    bank = StrategyBank(BagOfWordsEmbeddings(), **bank_options)
    cascade = create_intercascade(
        weak, strong, bank=bank, threshold=math.inf, score_threshold=None, **cascade_options
    )
    cascade.invoke(APPLES)
    again = cascade.invoke(APPLES)
    assert again["strategies"] and again["distill_skipped"] is None
    assert distill_calls(strong) == 2


def test_strong_judge_needs_a_use(weak, strong) -> None:
    with pytest.raises(ValueError, match="strong_threshold or distill_threshold"):
        create_intercascade(weak, strong, strong_judge=lambda m, a: 1.0)
    with pytest.raises(ValueError, match="distill_threshold"):
        create_intercascade(weak, strong, distill_threshold=1.5)


def test_the_agent_middleware_refuses_trusted_distillation(weak, strong, bank) -> None:
    with pytest.raises(ValueError, match="distill_threshold"):
        InterCascadeMiddleware(weak, strong, bank=bank, distill_threshold=0.5)
