"""What a storage backend must provide: the backend contract and its shared helpers.

A backend holds :class:`~langchain_intercascade.strategies.StrategyRecord`
objects with their unit embedding vectors, scoped by namespace. The bank calls
it under its lock, so implementations need no locking of their own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar, NamedTuple

import numpy as np
from langchain_core.vectorstores import VectorStore

from langchain_intercascade.strategies import StrategyRecord


def _unit_rows(vectors: object, count: int, what: str) -> np.ndarray:
    """Check embedding vectors and scale them to unit length, one row each.

    Args:
        vectors: What the embeddings returned: ``count`` vectors of equal width.
        count: How many vectors were asked for.
        what: What the vectors are, for the error message.

    Returns:
        A ``(count, width)`` float32 array of unit vectors.

    Raises:
        ValueError: If the vectors are not ``count`` equal-width numeric vectors,
            are empty, hold NaN or infinite values, or are all zeros (no direction
            to compare by cosine similarity).
    """
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected {count} numeric vectors of equal width") from None
    if array.ndim != 2 or array.shape[0] != count:
        raise ValueError(f"{what}: expected {count} vectors, got an array of shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{what}: the embeddings returned an empty vector")
    # In float64, so that large finite components cannot overflow the norm.
    norms = np.linalg.norm(array.astype(np.float64), axis=1)
    if not np.isfinite(norms).all():
        raise ValueError(f"{what}: the embeddings returned NaN or infinite values")
    if not norms.all():
        raise ValueError(f"{what}: the embeddings returned an all-zero vector")
    unit: np.ndarray = (array / norms[:, None]).astype(np.float32)
    return unit


def _unit(vector: object, what: str) -> np.ndarray:
    """One embedding vector checked and scaled to unit length, as :func:`_unit_rows`."""
    row: np.ndarray = _unit_rows([vector], 1, what)[0]
    return row


def _check_width(vectors: np.ndarray, dim: int | None, what: str) -> None:
    """Raise ValueError unless the rows of ``vectors`` are ``dim`` wide (None: any)."""
    if dim is not None and vectors.shape[-1] != dim:
        raise ValueError(
            f"{what}: the embeddings returned {vectors.shape[-1]}-dimensional vectors, "
            f"but this bank holds {dim}-dimensional ones (were the embeddings changed?)"
        )


def _check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(f"a namespace must be a non-empty string, got {namespace!r}")
    return namespace


def _is_a(store: object, package: str, name: str) -> bool:
    """Whether ``store``'s class is, or derives from, ``package``'s class ``name``.

    Read from the store's own class hierarchy: an optional dependency the store
    does not come from is never imported.
    """
    return any(
        cls.__name__ == name and cls.__module__.split(".")[0] == package
        for cls in type(store).__mro__
    )


class BackendHit(NamedTuple):
    """A record found near a vector: the record, its cosine similarity, its unit vector."""

    record: StrategyRecord
    score: float
    vector: np.ndarray


class BankBackend(ABC):
    """Where a bank's records and their vectors live: subclass it to add a backend.

    A backend holds :class:`~langchain_intercascade.strategies.StrategyRecord`
    objects with their unit embedding vectors, scoped by namespace; give one to
    the bank as ``StrategyBank(embeddings, backend=...)``. The bank embeds,
    deduplicates, ranks and evicts; a backend only stores, looks up and finds the
    nearest vectors. The bank calls it under its own lock, so a backend needs no
    locking of its own unless other processes write to it too (then set
    :attr:`shared` and return their common lock from :meth:`exclusive`). The
    abstract methods are the contract; ``tests/unit_tests/bank/test_bank_backends.py``
    (``BankBehaviour``) is the behaviour every backend must show, and the docs'
    "Adding a backend" runs it on an example.

    Attributes:
        store: The LangChain vector store the records are in, if any
            (:attr:`StrategyBank.vectorstore <langchain_intercascade.bank.StrategyBank.vectorstore>`
            returns it); None for a backend of its own.
    """

    shared: ClassVar[bool] = False
    """Whether other processes may write to it concurrently."""
    store: VectorStore | None

    @property
    @abstractmethod
    def dim(self) -> int | None:
        """The width of the stored vectors; None while it is not known (nothing stored)."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> list[StrategyRecord]:
        """The stored records among these ids."""

    @abstractmethod
    def records(self, namespace: str | None) -> list[StrategyRecord]:
        """The records of a namespace (None: all), in no particular order."""

    @abstractmethod
    def count(self) -> int:
        """How many records are stored."""

    def empty(self) -> bool:
        """Whether nothing is stored, for a search to skip embedding its query.

        A backend whose count is slow answers faster; it may say False when no
        record is stored, never True when one is.
        """
        return self.count() == 0

    @abstractmethod
    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[BackendHit]:
        """Up to ``k`` records of a namespace nearest to a unit vector, best first.

        ``text`` is what ``vector`` embeds (a query or a strategy's key text), for
        a backend whose index embeds on its own.
        """

    def near_duplicates(
        self, vector: np.ndarray, k: int, namespace: str, text: str, threshold: float
    ) -> list[BackendHit]:
        """Up to ``k`` records of a namespace at least ``threshold`` similar, best first.

        The write path's dedup check; a backend may answer it faster than
        :meth:`nearest` can.
        """
        return [h for h in self.nearest(vector, k, namespace, text) if h.score >= threshold]

    @abstractmethod
    def insert(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> None:
        """Store new records (ids not stored yet) with their unit vectors, one row each.

        All or nothing: when it raises, none of the records is stored and every
        earlier record is still searchable.
        """

    @abstractmethod
    def update(self, records: Sequence[StrategyRecord]) -> None:
        """Replace stored records (same ids, new counters or pitfalls)."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; unknown ids are ignored.

        When it raises, each record is either removed or still stored and
        searchable.
        """

    @abstractmethod
    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        """The records' unit vectors, one row each."""

    def exclusive(self) -> AbstractContextManager[object]:
        """Held by a write from its first read to its last write.

        The bank's lock orders its own calls; a backend that other banks or
        processes write to concurrently returns a lock they share, so that dedup
        and counter updates see every earlier write.
        """
        return nullcontext()


class _InProcessBackend(BankBackend):
    """A backend whose records live in this process, in a dict by id.

    Subclasses set ``_records`` and ``_dim`` (None until the first insert).
    """

    _records: dict[str, StrategyRecord]
    _dim: int | None

    @property
    def dim(self) -> int | None:
        return self._dim

    def get(self, ids: Sequence[str]) -> list[StrategyRecord]:
        return [self._records[i] for i in ids if i in self._records]

    def count(self) -> int:
        return len(self._records)

    def update(self, records: Sequence[StrategyRecord]) -> None:
        for record in records:
            if record.id in self._records:
                self._records[record.id] = record
