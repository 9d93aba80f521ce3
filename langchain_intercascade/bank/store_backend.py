"""The LangGraph-store backend: strategies as items of a ``BaseStore`` with a semantic index.

Each strategy is one store item under the namespace ``(*prefix, <bank
namespace>)``, ``("intercascade", "tenant-a")`` by default, keyed by its record
id: a hash of its namespace, text and source query, so that two writes of one
strategy from one query land on one key. The item's value holds the record's
fields (its counters too, for anything else that reads the store), ``key_text``,
the one field the store's index embeds, and ``vector``, the bank's unit vector
(float32, base64).

Searches go to the store's own index (``store.search(namespace, query=...)``).
``InMemoryStore`` scores by cosine similarity; ``PostgresStore`` by ``1 -``
cosine distance with its default ``distance_type="cosine"`` (the inner product,
or minus the L2 distance, with the others, which rank unnormalized vectors
differently). The bank takes a store that ranks by cosine and scores each hit
by the cosine of its stored vector and the query's, as on FAISS and Chroma. The
bank's vectors are as wide as the index's ``dims``; stored ones are checked
(finite, not all zero) where they are read.

A write's new strategies go to the store in batches of puts (``store.batch``),
which the store embeds together; if a batch fails, every item of the write is
deleted again, so the write stores all of its strategies or none.

``InMemoryStore`` serves one process; ``PostgresStore`` (pgvector) serves
several. A write, from its dedup check to its last change, and a counter update
take a lock that every bank on the store shares: a lock per store object in the
process and, on ``PostgresStore``, a PostgreSQL advisory lock per prefix, which
the server drops when its holder's connection closes, so a crashed process
never leaves it held. Writers thus take turns: dedup sees every strategy stored
before, across processes, and no counter increment is lost.

Example:
    ```python
    from langgraph.store.memory import InMemoryStore

    from langchain_intercascade.bank import StrategyBank
    from langchain_intercascade.strategies import Strategy
    from langchain_intercascade.testing import BagOfWordsEmbeddings

    embeddings = BagOfWordsEmbeddings()
    store = InMemoryStore(index={"embed": embeddings, "dims": embeddings.dim})
    bank = StrategyBank(embeddings, store=store)
    speed = Strategy(title="Speed", applies_when="distance and time", steps=["d / t"])
    record = bank.add(speed, namespace="physics", source_query="How fast is the train?")
    bank.record_outcome([record.id], accepted=True)

    (item,) = store.search(("intercascade", "physics"), query="train speed")
    print(item.key == record.id, item.value["times_accepted"])  # True 1
    ```
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from langgraph.store.base import BaseStore, Item, PutOp, SearchOp, validate_op_namespace

from langchain_intercascade.bank.backend import (
    BackendHit,
    BankBackend,
    _is_a,
    _unit,
    _unit_rows,
)
from langchain_intercascade.bank.namespaces import store_items, store_label
from langchain_intercascade.strategies import StrategyRecord

DEFAULT_PREFIX = ("intercascade",)
# Items written per store.batch call (PostgresStore sends a batch as one statement).
_BATCH = 1000

_process_locks: WeakKeyDictionary[BaseStore, threading.RLock] = WeakKeyDictionary()
_process_locks_guard = threading.Lock()


def _process_lock(store: BaseStore) -> threading.RLock:
    """The lock every bank on ``store`` in this process shares."""
    with _process_locks_guard:
        return _process_locks.setdefault(store, threading.RLock())


@contextmanager
def _advisory_lock(store: Any, key: str) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock named ``key`` on a ``PostgresStore``'s server."""
    from psycopg import Connection

    lock = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
    unlock = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
    if isinstance(store.conn, Connection):
        # The store's own rule for its one connection: one thread at a time.
        with store.lock:
            store.conn.execute(lock, (key,)).fetchone()
        try:
            yield
        finally:
            with store.lock:
                store.conn.execute(unlock, (key,)).fetchone()
    else:  # a pool: one connection holds the lock while the store works on others
        with store.conn.connection() as conn:
            conn.execute(lock, (key,)).fetchone()
            try:
                yield
            finally:
                conn.execute(unlock, (key,)).fetchone()


def has_semantic_index(store: BaseStore) -> bool:
    """Whether a LangGraph store was built with a semantic ``index``, so it can hold a bank."""
    return bool(getattr(store, "index_config", None))


class _StoreBackend(BankBackend):
    """Records as items of a LangGraph store, searched with the store's semantic index.

    Args:
        store: A ``BaseStore`` built with an ``index`` that ranks by cosine.
        prefix: The namespace the bank's items live under.

    Raises:
        ValueError: If the store has no index or ranks by another distance, the
            prefix is empty, starts with ``"langgraph"`` or holds a label the
            store refuses, or a ``PostgresStore``'s pool holds one connection
            (its advisory lock needs one of its own).
        TypeError: For an ``AsyncPostgresStore``, whose connection the lock
            cannot use from the bank's threads.
    """

    def __init__(self, store: BaseStore, prefix: tuple[str, ...]) -> None:
        index = getattr(store, "index_config", None)
        if not index:
            raise ValueError(
                f"the {type(store).__name__} has no semantic index to search strategies by: "
                "build it with index={'embed': embeddings, 'dims': ...}"
            )
        if index.get("distance_type", "cosine") != "cosine":
            raise ValueError(
                f"the store ranks by {index['distance_type']!r} distance; the bank needs "
                "distance_type='cosine' (the default)"
            )
        if not prefix:
            raise ValueError("the store prefix must hold at least one label")
        validate_op_namespace(SearchOp(tuple(prefix)))
        if prefix[0] == "langgraph":
            raise ValueError(
                "the store prefix must not start with 'langgraph', which LangGraph keeps"
            )
        if _is_a(store, "langgraph", "AsyncPostgresStore"):
            raise TypeError("use PostgresStore for a bank; AsyncPostgresStore is not supported")
        self._postgres = _is_a(store, "langgraph", "PostgresStore")
        conn = getattr(store, "conn", None)
        if self._postgres and getattr(conn, "max_size", 2) < 2:
            raise ValueError("the PostgresStore's connection pool needs max_size of at least 2")
        self.store = None  # no LangChain vector store
        self.base_store = store
        self.prefix = tuple(prefix)
        self._dim = int(index["dims"])
        # Ids are content hashes that include the namespace: a known id's namespace never changes.
        self._namespaces: dict[str, tuple[str, ...]] = {}

    @property
    def dim(self) -> int:
        # The store's index is built for one width; the bank's vectors must match it.
        return self._dim

    def _namespace(self, namespace: str) -> tuple[str, ...]:
        return (*self.prefix, store_label(namespace))

    def _parse(self, item: Item) -> tuple[StrategyRecord, np.ndarray] | None:
        if "vector" not in item.value:  # something else stored under the prefix
            return None
        record = StrategyRecord.model_validate(item.value)
        self._namespaces[record.id] = item.namespace
        return record, np.frombuffer(base64.b64decode(item.value["vector"]), dtype="<f4")

    def _item(self, strategy_id: str) -> Item | None:
        namespace = self._namespaces.get(strategy_id)
        if namespace is not None:
            return self.base_store.get(namespace, strategy_id)
        # An id first met here: its namespace is unknown, so find it by value.
        found = self.base_store.search(self.prefix, filter={"id": strategy_id}, limit=1)
        return found[0] if found else None

    def _list(
        self, namespace_prefix: tuple[str, ...]
    ) -> dict[str, tuple[StrategyRecord, np.ndarray]]:
        """Every record under a namespace prefix, by id, with its vector."""
        parsed = (self._parse(item) for item in store_items(self.base_store, namespace_prefix))
        return {found[0].id: found for found in parsed if found is not None}

    def get(self, ids: Sequence[str]) -> list[StrategyRecord]:
        found = []
        for strategy_id in ids:
            item = self._item(strategy_id)
            parsed = self._parse(item) if item is not None else None
            if parsed is not None:
                found.append(parsed[0])
        return found

    def records(self, namespace: str | None) -> list[StrategyRecord]:
        where = self.prefix if namespace is None else self._namespace(namespace)
        # The record's own namespace decides: isolation never rests on how a store matches prefixes.
        return [r for r, _ in self._list(where).values() if namespace in (None, r.namespace)]

    def count(self) -> int:
        return sum("vector" in item.value for item in store_items(self.base_store, self.prefix))

    def empty(self) -> bool:
        # One item, not a count; other items under the prefix cost an embedding, no result.
        return not self.base_store.search(self.prefix, limit=1)

    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[BackendHit]:
        found = []
        for item in self.base_store.search(self._namespace(namespace), query=text, limit=k):
            parsed = self._parse(item)
            if parsed is not None and parsed[0].namespace == namespace:
                record, stored = parsed
                stored = _unit(stored, f"stored strategy {record.id}")
                found.append(BackendHit(record, float(stored @ vector), stored))
        return sorted(found, key=lambda hit: -hit.score)

    def insert(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> None:
        if vectors.shape[1] != self._dim:
            raise ValueError(
                f"the store's index holds {self._dim}-dimensional vectors, but the bank's "
                f"embeddings return {vectors.shape[1]} dimensions"
            )
        # The store embeds key_text alone; no TTL, as the bank evicts by usefulness.
        puts = [
            PutOp(
                self._namespace(record.namespace),
                record.id,
                {
                    **record.model_dump(mode="json"),
                    "key_text": record.key_text,
                    "vector": base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii"),
                },
                index=["key_text"],
                ttl=None,
            )
            for record, vector in zip(records, vectors, strict=True)
        ]
        try:
            self._apply(puts)
        except BaseException:
            # All or nothing: none of these ids was stored before, so delete them all,
            # those of a page that failed halfway included.
            self._apply([PutOp(op.namespace, op.key, None) for op in puts])
            raise
        self._namespaces.update((op.key, op.namespace) for op in puts)

    def update(self, records: Sequence[StrategyRecord]) -> None:
        puts = []
        for record in records:
            item = self._item(record.id)
            if item is not None:  # a put would bring a deleted record back
                value = {**item.value, **record.model_dump(mode="json")}
                # index=False keeps the stored embedding: key_text does not change.
                puts.append(PutOp(item.namespace, record.id, value, index=False, ttl=None))
        self._apply(puts)

    def delete(self, ids: Sequence[str]) -> None:
        items = (self._item(strategy_id) for strategy_id in dict.fromkeys(ids))
        self._apply([PutOp(i.namespace, i.key, None) for i in items if i is not None])

    def _apply(self, ops: Sequence[PutOp]) -> None:
        """Puts and deletes, a page of them per ``store.batch`` call."""
        for op in ops:
            validate_op_namespace(op)  # store.batch skips the checks store.put makes
        for start in range(0, len(ops), _BATCH):
            self.base_store.batch(ops[start : start + _BATCH])

    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        if not records:
            return np.zeros((0, self._dim), dtype=np.float32)
        listed = self._list(self.prefix)
        return _unit_rows([listed[r.id][1] for r in records], len(records), "stored strategies")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        across = (
            _advisory_lock(self.base_store, "langchain_intercascade:" + ".".join(self.prefix))
            if self._postgres
            else nullcontext()
        )
        with _process_lock(self.base_store), across:
            yield
