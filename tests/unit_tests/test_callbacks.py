"""CascadeCostTracker: tokens and fees per route, however the cascade is run."""

from __future__ import annotations

import pytest
from conftest import APPLES, APPLES_SIBLING, EASY
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.callbacks import CascadeCostTracker, track_cascade_costs
from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.costs import ModelPrice, PriceTable, total_usage
from langchain_intercascade.graph import InterCascadeState
from langchain_intercascade.testing import ScriptedChatModel

PRICES = PriceTable(
    prices={
        "weak": ModelPrice(input_per_million=1.0, output_per_million=2.0),
        "strong": ModelPrice(input_per_million=10.0, output_per_million=20.0),
    }
)


@pytest.fixture
def cascade(weak: ScriptedChatModel, strong: ScriptedChatModel, bank: StrategyBank):
    return create_intercascade(weak, strong, bank=bank)


def test_totals_per_route_match_the_runs(cascade) -> None:
    tracker = CascadeCostTracker(PRICES)
    outs = [cascade.invoke(q, {"callbacks": [tracker]}) for q in (APPLES, APPLES_SIBLING, EASY)]
    assert {r: t.queries for r, t in tracker.routes.items()} == {"strong": 1, "weak": 2}
    strong_usage = outs[0]["usage"]
    assert tracker.routes["strong"].usage == strong_usage
    assert tracker.routes["strong"].fee == pytest.approx(PRICES.cost(strong_usage))
    assert tracker.total.queries == 3
    assert tracker.strong_call_rate == pytest.approx(1 / 3)
    total = sum(total_usage(o["usage"])["total_tokens"] for o in outs)
    rows = tracker.rows()
    assert [r["route"] for r in rows] == ["strong", "weak", "total"]
    tokens = rows[-1]
    assert total == sum(tokens[k] for k in tokens if k.endswith("_tokens"))
    assert "| total | 3 |" in tracker.report()


async def test_batched_streamed_and_async_runs_count_once(cascade) -> None:
    with track_cascade_costs(PRICES) as costs:
        await cascade.abatch([APPLES, EASY], max_concurrency=2)
        list(cascade.stream(APPLES_SIBLING, stream_mode="updates"))
    assert costs.total.queries == 3


def test_chat_model_and_enclosing_graphs_count_each_turn_once(
    weak: ScriptedChatModel, strong: ScriptedChatModel, bank: StrategyBank
) -> None:
    model = ChatInterCascade(weak=weak, strong=strong, bank=bank)
    # A parent graph with the cascade's own state: its final state looks like a turn too.
    parent = StateGraph(InterCascadeState)
    parent.add_node("cascade", create_intercascade(weak, strong, bank=bank))
    parent.add_edge(START, "cascade")
    with track_cascade_costs() as costs:
        reply = model.invoke(APPLES)
        parent.compile().invoke({"messages": [("human", APPLES_SIBLING)]})
    assert isinstance(reply, AIMessage)
    assert costs.total.queries == 2
    assert costs.routes["strong"].queries == 1


def test_nothing_counted_outside_the_block(cascade) -> None:
    with track_cascade_costs() as costs:
        pass
    cascade.invoke(EASY)
    assert costs.total.queries == 0 and costs.rows()[-1]["fee"] == 0.0


def test_abstentions_count_as_strong_calls(
    weak: ScriptedChatModel, strong: ScriptedChatModel, bank: StrategyBank
) -> None:
    cascade = create_intercascade(
        weak, strong, bank=bank, strong_threshold=0.5, strong_judge=lambda m, a: 0.1
    )
    with track_cascade_costs() as costs:
        cascade.invoke(APPLES)
        cascade.invoke(EASY)
    assert {r: t.queries for r, t in costs.routes.items()} == {"abstain": 1, "weak": 1}
    assert costs.strong_call_rate == 0.5


def test_the_tracker_forgets_model_calls_that_failed(weak, strong, bank):
    down = ScriptedChatModel(respond=lambda messages: "", fail_with=RuntimeError("down"))
    tracker = CascadeCostTracker()
    questions = [f"Sam has {n} boxes with 4 pens in each box." for n in range(2, 8)]
    for weak_model, strong_model in ((down, strong), (weak, down)):
        cascade = create_intercascade(weak_model, strong_model, bank=bank, max_retries=0)
        cascade.batch(questions, {"callbacks": [tracker]})
    assert tracker.total.queries == 12
    assert tracker._parents == {} and tracker._covered == set()


def test_the_tracker_forgets_a_chat_model_turn_that_raised(bank):
    down = ScriptedChatModel(respond=lambda messages: "", fail_with=RuntimeError("down"))
    tracker = CascadeCostTracker()
    model = ChatInterCascade(weak=down, strong=down, bank=bank, max_retries=0)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            model.invoke("Sam has 3 boxes with 4 pens in each box.", {"callbacks": [tracker]})
    assert tracker._parents == {} and tracker._covered == set()
