"""What a storage backend must provide: the catalog contract and its shared helpers.

A catalog holds :class:`~langchain_intercascade.strategies.StrategyRecord`
objects with their unit embedding vectors, scoped by namespace. The bank calls
it under its lock, so implementations need no locking of their own.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar, NamedTuple

import numpy as np
from langchain_core.vectorstores import VectorStore

from langchain_intercascade.strategies import StrategyRecord


def _unit(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def _check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(f"a namespace must be a non-empty string, got {namespace!r}")
    return namespace


def _is_instance(store: object, module: str, name: str) -> bool:
    # Only a module the user already imported can have built the store: no import cost.
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(store, getattr(loaded, name))


class _Hit(NamedTuple):
    record: StrategyRecord
    score: float
    vector: np.ndarray


class _Catalog(ABC):
    """Where records and their vectors live; the bank calls it under its lock."""

    shared: ClassVar[bool] = False
    """Whether other processes may write to it concurrently."""
    store: VectorStore | None

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
    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[_Hit]:
        """Up to ``k`` records of a namespace nearest to a unit vector, best first.

        ``text`` is what ``vector`` embeds (a query or a strategy's key text), for
        a backend whose index embeds on its own.
        """

    @abstractmethod
    def insert(self, record: StrategyRecord, vector: np.ndarray) -> None:
        """Store a new record with its unit vector."""

    @abstractmethod
    def update(self, records: Sequence[StrategyRecord]) -> None:
        """Replace stored records (same ids, new counters or pitfalls)."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove records; unknown ids are ignored."""

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
