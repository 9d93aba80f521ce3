"""Strong-call budgets (budgets.py; the strong step in graph/strong_answer.py).

Every test runs the cascade with scripted models, on a store the test holds; the
clock is the test's own, so windows roll over without sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import ValidationError

from langchain_intercascade import (
    CascadeOptions,
    ChatInterCascade,
    StrategyBank,
    create_intercascade,
    track_cascade_costs,
)
from langchain_intercascade.budgets import (
    BudgetLedger,
    StrongCallBudget,
    StrongCallBudgetExceeded,
)
from langchain_intercascade.costs import ModelPrice
from langchain_intercascade.testing import ScriptedChatModel, fake_models, strong_respond

QUESTION = "Sam has 3 boxes with 4 pens in each box."
PRICE = ModelPrice(input_per_million=2_000.0, output_per_million=8_000.0)
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def question(n: int) -> str:
    # The same words each time (the same tokens), another number.
    return f"Sam has {n} boxes with 4 pens in each box."


def config(tenant: str) -> dict[str, Any]:
    return {"configurable": {"strategy_namespace": tenant}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def cascade(store: Any, clock: Clock, bank: StrategyBank | None = None, **limits: Any) -> Any:
    weak, strong, _ = fake_models()
    budget = StrongCallBudget(store=store, clock=clock, **limits)
    return create_intercascade(weak, strong, bank=bank, budget=budget), strong


# -- calls ---------------------------------------------------------------------


def test_under_budget_the_strong_model_answers_over_it_the_weak_one(store, clock):
    graph, strong = cascade(store, clock, calls=2, window="hour")
    routes = [graph.invoke(question(n))["route"] for n in range(3)]
    assert routes == ["strong", "strong", "weak_budget"]
    assert len(strong.calls) == 2  # the third turn never reached the strong model
    refused = graph.invoke(QUESTION)
    assert refused["answer"] == "The total is 7."  # the weak answer
    assert refused["usage"].keys() == {"weak"} and refused["errors"] == []
    use = refused["budget"]
    assert (use.tenant, use.window, use.calls, use.calls_limit) == ("default", "hour", 2, 2)
    assert use.window_start.isoformat() == "2026-01-01T00:00:00+00:00"


def test_a_turn_refused_by_the_budget_is_not_distilled(store, clock):
    _, _, embeddings = fake_models()
    bank = StrategyBank(embeddings)
    graph, strong = cascade(store, clock, bank=bank, calls=0)
    out = graph.invoke(QUESTION)
    assert out["route"] == "weak_budget" and out["new_strategy"] is None
    assert len(bank) == 0 and strong.calls == []


def test_an_accepted_turn_reserves_nothing(store, clock):
    graph, _ = cascade(store, clock, calls=0)
    out = graph.invoke("What is the capital of France?")  # the weak model is sure
    assert out["route"] == "weak" and out["budget"] is None


def test_raise_mode_names_the_tenant_the_window_and_the_limit(store, clock):
    graph, strong = cascade(store, clock, calls=1, window="day", over="raise")
    graph.invoke(question(1), config("acme"))
    with pytest.raises(StrongCallBudgetExceeded) as refused:
        graph.invoke(question(2), config("acme"))
    message = str(refused.value)
    assert "'acme'" in message and "1 of 1 calls this day" in message
    assert "since 2026-01-01 00:00 UTC" in message
    assert refused.value.use.tenant == "acme" and len(strong.calls) == 1


def test_raise_mode_async(store, clock):
    graph, _ = cascade(store, clock, calls=0, over="raise")
    with pytest.raises(StrongCallBudgetExceeded, match="0 of 0 calls"):
        asyncio.run(graph.ainvoke(QUESTION))


def test_over_budget_without_a_weak_answer_raises_even_in_weak_mode(store, clock):
    down = ScriptedChatModel(respond=lambda messages: "", fail_with=RuntimeError("weak down"))
    _, strong, _ = fake_models()
    budget = StrongCallBudget(calls=0, store=store, clock=clock)
    with pytest.raises(StrongCallBudgetExceeded):
        create_intercascade(down, strong, budget=budget).invoke(QUESTION)


def test_tenants_have_budgets_apart(store, clock):
    graph, _ = cascade(store, clock, calls=1)
    assert graph.invoke(question(1), config("a"))["route"] == "strong"
    assert graph.invoke(question(2), config("a"))["route"] == "weak_budget"
    assert graph.invoke(question(3), config("b"))["route"] == "strong"
    assert graph.invoke(question(4), config("a.b"))["route"] == "strong"  # not "a"'s
    ledger = BudgetLedger(store, StrongCallBudget(calls=1, clock=clock))
    assert [(u.tenant, u.calls) for u in ledger.tenants()] == [("a", 1), ("a.b", 1), ("b", 1)]


def test_replicas_on_one_store_share_the_budget(store, clock):
    first, _ = cascade(store, clock, calls=1)
    second, strong = cascade(store, clock, calls=1)
    assert first.invoke(question(1))["route"] == "strong"
    assert second.invoke(question(2))["route"] == "weak_budget" and strong.calls == []


# -- windows -------------------------------------------------------------------


@pytest.mark.parametrize(("window", "span"), [("hour", 3600), ("day", 86400)])
def test_the_window_rolls_over(store, clock, window, span):
    graph, _ = cascade(store, clock, calls=1, window=window)
    clock.now = T0 + span - 1  # the window's last second
    assert graph.invoke(question(1))["route"] == "strong"
    assert graph.invoke(question(2))["route"] == "weak_budget"
    clock.now = T0 + span  # the next window
    out = graph.invoke(question(3))
    assert out["route"] == "strong" and out["budget"].calls == 1
    assert out["budget"].window_start.timestamp() == T0 + span


# -- money ---------------------------------------------------------------------


def cost_of_one_call(store: Any, clock: Clock) -> float:
    budget = StrongCallBudget(money=1e9, price=PRICE, store=InMemoryStore(), clock=clock)
    weak, strong, _ = fake_models()
    usage = create_intercascade(weak, strong, budget=budget).invoke(question(0))["usage"]
    return budget.cost(usage)


def test_a_money_limit_prices_strong_tokens_with_the_model_price(store, clock):
    call = cost_of_one_call(store, clock)
    # 23 strong tokens: 11 in, 12 out, at the test's prices.
    assert call == pytest.approx(11 * 2_000 / 1e6 + 12 * 8_000 / 1e6)
    graph, strong = cascade(store, clock, money=2.5 * call, price=PRICE, window="hour")
    outs = [graph.invoke(question(n)) for n in range(4)]
    assert [o["route"] for o in outs] == ["strong", "strong", "weak_budget", "weak_budget"]
    assert outs[2]["budget"].spent == pytest.approx(2 * call)
    assert outs[2]["budget"].money_limit == pytest.approx(2.5 * call)
    clock.now += 3600
    assert graph.invoke(question(5))["route"] == "strong"


def test_the_weak_tokens_cost_the_budget_nothing(store, clock):
    graph, _ = cascade(store, clock, money=1.0, price=PRICE)
    graph.invoke(question(1))
    ledger = BudgetLedger(store, StrongCallBudget(money=1.0, price=PRICE, clock=clock))
    assert ledger.use("default").spent == pytest.approx(cost_of_one_call(store, clock))


def test_distillation_is_charged_to_the_budget(store, clock):
    _, _, embeddings = fake_models()
    graph, _ = cascade(store, clock, bank=StrategyBank(embeddings), money=1.0, price=PRICE)
    out = graph.invoke(QUESTION)
    assert set(out["usage"]["strong"]) == {"answer", "distill"}
    ledger = BudgetLedger(store, StrongCallBudget(money=1.0, price=PRICE, clock=clock))
    assert ledger.use("default").spent == pytest.approx(ledger.budget.cost(out["usage"]))


def test_distillation_in_the_background_is_charged_too(store, clock):
    _, _, embeddings = fake_models()
    weak, strong, _ = fake_models()
    budget = StrongCallBudget(money=1.0, price=PRICE, store=store, clock=clock)
    graph = create_intercascade(
        weak, strong, bank=StrategyBank(embeddings), budget=budget, distill_in_background=True
    )
    out = graph.invoke(QUESTION)
    (done,) = graph.wait_for_distillations()
    spent = BudgetLedger(store, budget).use("default").spent
    assert spent == pytest.approx(budget.cost(out["usage"]) + budget.cost(done["usage"]))


# -- concurrency ---------------------------------------------------------------


def slow_cascade(store: Any, clock: Clock, **limits: Any) -> tuple[Any, list[int]]:
    """A cascade whose strong model takes a while, and a count of its calls in flight."""
    weak, _, _ = fake_models()
    lock, in_flight, most = threading.Lock(), [0], [0]

    def respond(messages: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.02)  # calls overlap: the budget is read while others are in flight
        with lock:
            in_flight[0] -= 1
        return strong_respond(messages)

    strong = ScriptedChatModel(respond=respond)
    budget = StrongCallBudget(store=store, clock=clock, **limits)
    return create_intercascade(weak, strong, budget=budget), most


@pytest.mark.parametrize("entry", ["batch", "abatch"])
def test_concurrent_turns_never_exceed_a_calls_limit(store, clock, entry):
    graph, most = slow_cascade(store, clock, calls=10)
    questions = [question(n) for n in range(40)]
    run_config = {"max_concurrency": 16}
    if entry == "batch":  # threads
        outs = graph.batch(questions, run_config)
    else:
        outs = asyncio.run(graph.abatch(questions, run_config))
    routes = [o["route"] for o in outs]
    assert routes.count("strong") == 10 and routes.count("weak_budget") == 30
    assert most[0] > 1  # the strong calls did run concurrently


def test_concurrent_turns_exceed_a_money_limit_by_at_most_the_calls_in_flight(store, clock):
    call = cost_of_one_call(store, clock)
    limit = 5 * call
    graph, most = slow_cascade(store, clock, money=limit, price=PRICE)
    outs = graph.batch([question(n) for n in range(40)], {"max_concurrency": 8})
    spent = BudgetLedger(store, StrongCallBudget(money=limit, price=PRICE, clock=clock))
    spent_now = spent.use("default").spent
    strong_turns = sum(o["route"] == "strong" for o in outs)
    assert spent_now == pytest.approx(strong_turns * call)
    assert spent_now <= limit + most[0] * call
    assert any(o["route"] == "weak_budget" for o in outs)


def test_concurrent_reservations_on_the_ledger_keep_to_the_limit(store, clock):
    ledger = BudgetLedger(store, StrongCallBudget(calls=25, clock=clock))
    admitted: list[bool] = []

    def reserve() -> None:
        for _ in range(10):
            admitted.append(ledger.reserve("t").admitted)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 25 and ledger.use("t").calls == 25


# -- failures ------------------------------------------------------------------


class DownStore(InMemoryStore):
    """A store that fails every operation."""

    def batch(self, ops: Any) -> Any:
        raise ConnectionError("store down")


def test_a_ledger_that_cannot_be_read_admits_no_strong_call(clock):
    graph, strong = cascade(DownStore(), clock, calls=5)
    out = graph.invoke(QUESTION)
    assert out["route"] == "weak_budget" and out["answer"] == "The total is 7."
    assert out["errors"] == ["budget: ConnectionError: store down"] and strong.calls == []


def test_a_ledger_that_cannot_be_read_raises_in_raise_mode(clock):
    graph, _ = cascade(DownStore(), clock, calls=5, over="raise")
    with pytest.raises(ConnectionError, match="store down"):
        graph.invoke(QUESTION)


class ReadFails(InMemoryStore):
    """A store whose searches fail (a deadlock, a dropped connection) while writes go through."""

    failing = True

    def batch(self, ops: Any) -> Any:
        ops = list(ops)
        if self.failing and any(type(op).__name__ == "SearchOp" for op in ops):
            raise ConnectionError("deadlock detected")
        return super().batch(ops)


def test_a_reservation_whose_read_fails_is_withdrawn(clock):
    store = ReadFails()
    graph, strong = cascade(store, clock, calls=5)
    out = graph.invoke(QUESTION)
    assert out["route"] == "weak_budget" and strong.calls == []
    store.failing = False
    use = BudgetLedger(store, StrongCallBudget(calls=5, clock=clock)).use("default")
    assert (use.calls, use.in_flight) == (0, 0)  # nothing left counted in flight


class TtlSpy(InMemoryStore):
    """A store with TTLs that records whether each search refreshes them."""

    supports_ttl = True

    def __init__(self) -> None:
        super().__init__()
        self.refreshes: list[bool | None] = []

    def batch(self, ops: Any) -> Any:
        ops = list(ops)
        self.refreshes += [op.refresh_ttl for op in ops if type(op).__name__ == "SearchOp"]
        return super().batch(ops)


def test_reading_the_budget_refreshes_no_ttl(clock):
    # A refreshing read updates every row it reads: on Postgres two processes' reads deadlock.
    store = TtlSpy()
    ledger = BudgetLedger(store, StrongCallBudget(calls=5, clock=clock))
    ledger.settle(ledger.reserve("t"), {})
    assert ledger.use("t").calls == 1
    assert store.refreshes and not any(store.refreshes)


class SettleFails(InMemoryStore):
    """A store whose second write fails: the reservation is kept, the settlement is not."""

    puts = 0

    def batch(self, ops: Any) -> Any:
        ops = list(ops)
        if any(type(op).__name__ == "PutOp" for op in ops):
            self.puts += 1
            if self.puts == 2:
                raise ConnectionError("store down")
        return super().batch(ops)


def test_a_failed_settlement_keeps_the_answer_and_the_call_counted(clock):
    store = SettleFails()
    graph, _ = cascade(store, clock, calls=5)
    out = graph.invoke(QUESTION)
    assert out["route"] == "strong" and out["errors"] == ["budget: ConnectionError: store down"]
    use = BudgetLedger(store, StrongCallBudget(calls=5, clock=clock)).use("default")
    assert (use.calls, use.in_flight) == (1, 1)  # counted, as if still in flight


def test_a_failed_strong_call_counts(store, clock):
    weak, _, _ = fake_models()
    down = ScriptedChatModel(respond=lambda messages: "", fail_with=RuntimeError("model down"))
    budget = StrongCallBudget(calls=1, store=store, clock=clock)
    graph = create_intercascade(weak, down, budget=budget)
    assert graph.invoke(question(1))["route"] == "weak_fallback"
    assert graph.invoke(question(2))["route"] == "weak_budget"


def test_a_budget_without_a_store_says_where_to_put_one(clock):
    weak, strong, _ = fake_models()
    graph = create_intercascade(weak, strong, budget=StrongCallBudget(calls=1, clock=clock))
    with pytest.raises(ValueError, match=r"StrongCallBudget\(store=\.\.\.\)"):
        graph.invoke(QUESTION)


def test_the_graphs_store_keeps_the_budget(store, clock):
    weak, strong, _ = fake_models()
    budget = StrongCallBudget(calls=1, clock=clock)
    graph = create_intercascade(weak, strong, store=store, budget=budget)
    graph.invoke(question(1))
    assert BudgetLedger(store, budget).use("default").calls == 1


# -- how it is reported --------------------------------------------------------


def test_the_chat_model_reports_the_budget(store, clock):
    weak, strong, _ = fake_models()
    budget = StrongCallBudget(calls=1, store=store, clock=clock)
    chat = ChatInterCascade(weak=weak, strong=strong, budget=budget)
    first = chat.invoke(question(1))
    assert first.response_metadata["route"] == "strong"
    assert first.response_metadata["budget"]["calls"] == 1
    streamed = list(chat.stream(QUESTION))
    text = "".join(chunk.text for chunk in streamed)
    metadata = streamed[-1].response_metadata
    assert text == "The total is 7." and metadata["route"] == "weak_budget"
    assert metadata["budget"] == {
        "tenant": "default",
        "window": "day",
        "window_start": "2026-01-01T00:00:00Z",
        "calls": 1,
        "in_flight": 0,
        "spent": 0.0,
        "calls_limit": 1,
        "money_limit": None,
    }


def test_the_cost_tracker_counts_a_refused_turn_as_no_strong_call(store, clock):
    graph, _ = cascade(store, clock, calls=1)
    with track_cascade_costs() as costs:
        graph.invoke(question(1))
        graph.invoke(question(2))
    assert costs.routes["weak_budget"].queries == 1
    assert costs.routes["weak_budget"].usage.keys() == {"weak"}
    assert costs.strong_call_rate == 0.5


# -- the option ----------------------------------------------------------------


def test_the_option_takes_json_and_refuses_a_budget_without_a_limit():
    options = CascadeOptions(budget='{"calls": 3, "window": "hour", "over": "raise"}')
    assert options.budget == StrongCallBudget(calls=3, window="hour", over="raise")
    with pytest.raises(ValidationError, match="needs a limit"):
        CascadeOptions(budget={})
    with pytest.raises(ValidationError, match="price"):
        StrongCallBudget(money=1.0)
    with pytest.raises(ValidationError, match="window"):
        StrongCallBudget(calls=1, window="week")
    with pytest.raises(ValidationError, match="calls"):
        StrongCallBudget(calls=2.5)


def test_the_agent_middleware_refuses_a_budget():
    pytest.importorskip("langchain.agents")
    from langchain_intercascade.middleware import InterCascadeMiddleware

    weak, strong, embeddings = fake_models()
    with pytest.raises(ValueError, match="budget"):
        InterCascadeMiddleware(
            weak, strong, bank=StrategyBank(embeddings), budget=StrongCallBudget(calls=1)
        )


# -- intercascade doctor -------------------------------------------------------


def test_doctor_shows_each_tenants_use_of_the_window(store, clock):
    from langchain_intercascade.cli.doctor import budget_checks

    graph, _ = cascade(store, clock, calls=1, window="hour")
    graph.invoke(question(1), config("a"))
    graph.invoke(question(2), config("a"))  # refused: not counted
    assert graph.invoke("What is the capital of France?", config("b"))["route"] == "weak"
    budget = StrongCallBudget(calls=1, window="hour", clock=clock)
    checks = list(budget_checks(CascadeOptions(budget=budget), store))
    assert [(c.name, c.status) for c in checks] == [("limit", "ok"), ("a", "over")]
    assert checks[0].detail == "1 call per tenant and hour (UTC); over it, the weak answer"
    assert checks[1].detail == "1 of 1 calls this hour (since 2026-01-01 00:00 UTC)"
    clock.now += 3600
    checks = list(budget_checks(CascadeOptions(budget=budget), store))
    assert [(c.name, c.status, c.detail) for c in checks][1] == (
        "use",
        "ok",
        "no strong call yet this hour",
    )


def test_doctor_without_a_budget_or_a_store_says_how_to_get_one():
    from langchain_intercascade.cli.doctor import budget_checks

    (none,) = budget_checks(CascadeOptions(), None)
    assert none.status == "missing" and "INTERCASCADE_BUDGET" in none.fix
    limit, use = budget_checks(CascadeOptions(budget=StrongCallBudget(calls=3)), None)
    assert use.status == "missing" and "--budget-store" in use.fix
    limit, use = budget_checks(CascadeOptions(budget=StrongCallBudget(calls=3)), DownStore())
    assert use.status == "error" and "store down" in use.detail


def test_the_openai_endpoint_answers_a_refused_turn_with_429():
    pytest.importorskip("starlette")
    from langchain_intercascade.server.openai import _run_failed

    refused = _run_failed({"error": "StrongCallBudgetExceeded", "message": "tenant 'a' is over"})
    assert refused.status == 429
    assert (refused.body.type, refused.body.code) == ("insufficient_quota", "budget_exceeded")
    assert _run_failed({"error": "RuntimeError", "message": "x"}).status == 500
