"""The bank's write path: a batch of records deduplicated, stored and evicted, all or nothing.

:func:`_as_record` makes what ``add`` stores; :class:`_Writer` carries out one
write of a :class:`~langchain_intercascade.bank.StrategyBank` (``add``,
``aadd``, ``import_jsonl``) on its backend. The bank runs it under its own lock
and its backend's ``exclusive()`` lock, held from the first read to the last
write, so that dedup and eviction see every earlier write, from this process
or, on a store that several processes share under a lock (``PostgresStore``),
from any.

A write checks the vectors' width against the stored ones, deduplicates each
record as if the records were added one by one (against the stored strategies
and the new ones before it), inserts the new ones in one backend call, then
merges (each pitfall a merge adds is screened with the write's strategy filter,
the cascade's own ``strategy_filter`` for a distilled strategy and by default
:class:`~langchain_intercascade.guards.StrategyFilter`, its ``max_chars``
included), reconciles (on a store shared without a lock: Chroma) and evicts past
``max_size``. If any step fails, the new records are taken back and the merged
ones restored: the bank holds what it held before, and the error is raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np

from langchain_intercascade.bank.backend import BankBackend, _check_namespace, _check_width
from langchain_intercascade.guards import StrategyScreen
from langchain_intercascade.strategies import Strategy, StrategyRecord

DedupPolicy = Literal["merge", "skip"]
# How many near neighbours a shared-store writer reconciles after its write.
_SETTLE_K = 8


def check_write_options(
    dedup_threshold: float | None, dedup_policy: str, max_size: int | None
) -> None:
    """Raise ``ValueError`` if a bank's dedup or size option is out of range."""
    if dedup_threshold is not None and not -1.0 <= dedup_threshold <= 1.0:
        raise ValueError(f"dedup_threshold must lie in [-1, 1], got {dedup_threshold}")
    if dedup_policy not in ("merge", "skip"):
        raise ValueError(f"dedup_policy must be 'merge' or 'skip', got {dedup_policy!r}")
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")


def _as_record(
    strategy: Strategy | StrategyRecord,
    namespace: str,
    source_query: str | None,
    model: str | None,
) -> StrategyRecord:
    """What ``add`` stores: a ready record as it is, or a new record of a strategy."""
    if isinstance(strategy, StrategyRecord):
        return strategy
    if not isinstance(strategy, Strategy):
        raise TypeError(f"expected a Strategy or StrategyRecord, got {type(strategy).__name__}")
    return StrategyRecord.create(
        strategy,
        namespace=_check_namespace(namespace),
        source_query=source_query,
        model=model,
    )


class _NewVectors:
    """The vectors of one write's new records, per namespace, to deduplicate them.

    Args:
        records: The write's records, to size each namespace's buffer.
        dim: The vectors' width.
    """

    def __init__(self, records: Sequence[StrategyRecord], dim: int) -> None:
        self._capacity = Counter(r.namespace for r in records)
        self._dim = dim
        self._spaces: dict[str, tuple[np.ndarray, list[str]]] = {}

    def add(self, record_id: str, namespace: str, vector: np.ndarray) -> None:
        if namespace not in self._spaces:
            buffer = np.empty((self._capacity[namespace], self._dim), dtype=np.float32)
            self._spaces[namespace] = (buffer, [])
        buffer, ids = self._spaces[namespace]
        buffer[len(ids)] = vector
        ids.append(record_id)

    def nearest(self, vector: np.ndarray, namespace: str) -> tuple[str, float] | None:
        """The id and cosine similarity of the new record nearest to a unit vector."""
        if namespace not in self._spaces:
            return None
        buffer, ids = self._spaces[namespace]
        scores = buffer[: len(ids)] @ vector
        best = int(np.argmax(scores))
        return ids[best], float(scores[best])


class _Writer:
    """One write's rules on one backend; called under the bank's locks.

    Args:
        backend: Where the records go.
        dedup_threshold: The bank's near-duplicate threshold (None: only the same
            strategy from the same query is one record).
        dedup_policy: ``"merge"`` or ``"skip"``.
        max_size: The bank's limit per namespace (None: none).
        screen: Screens each pitfall a merge adds (None: every one is added).
    """

    def __init__(
        self,
        backend: BankBackend,
        *,
        dedup_threshold: float | None,
        dedup_policy: str,
        max_size: int | None,
        screen: StrategyScreen | None,
    ) -> None:
        self.backend = backend
        self.dedup_threshold = dedup_threshold
        self.dedup_policy = dedup_policy
        self.max_size = max_size
        self.screen = screen

    def write(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> list[StrategyRecord]:
        """Store records with their unit vectors (one row each), all or nothing.

        Returns:
            For each record, the record that now holds its strategy.

        Raises:
            ValueError: If the vectors are of another width than the stored ones.
            Exception: Whatever the backend raises, once the write is taken back.
        """
        backend = self.backend
        _check_width(vectors, backend.dim, "a strategy's embedding")
        held: dict[str, StrategyRecord] = {}  # what this write returns or changes, by id
        fresh: dict[str, int] = {}  # new records' ids -> row of their vector
        merged: dict[str, StrategyRecord] = {}  # stored records as they were before a merge
        new = _NewVectors(records, vectors.shape[1])
        answers = []
        for row, record in enumerate(records):
            # Already written: by this write, or meanwhile by a concurrent one.
            found = held.get(record.id) or next(iter(backend.get([record.id])), None)
            if found is None:
                found = self._twin(record, vectors[row], new, held)
                if found is None:
                    fresh[record.id] = row
                    new.add(record.id, record.namespace, vectors[row])
                    found = record
                elif self.dedup_policy == "merge":
                    if found.id not in fresh:
                        merged.setdefault(found.id, found)
                    found = found.merged_with(record, self.screen)
            held[found.id] = found
            answers.append(found.id)
        if fresh:
            backend.insert([held[i] for i in fresh], vectors[list(fresh.values())])
        try:
            backend.update([held[i] for i in merged])
            moved: dict[str, str] = {}
            if backend.shared:
                for i, row in fresh.items():
                    settled = self._settle(held[i], vectors[row])
                    moved[i], held[settled.id] = settled.id, settled
            self._evict({held[i].namespace: i for i in fresh})
        except BaseException:
            try:
                backend.update(list(merged.values()))
            finally:
                backend.delete(list(fresh))
            raise
        return [held[moved.get(i, i)] for i in answers]

    def _twin(
        self,
        record: StrategyRecord,
        vector: np.ndarray,
        new: _NewVectors,
        held: dict[str, StrategyRecord],
    ) -> StrategyRecord | None:
        """The stored or new record that ``record`` duplicates, in its latest version."""
        if self.dedup_threshold is None:
            return None
        candidates = [
            (hit.score, held.get(hit.record.id, hit.record))
            for hit in self.backend.near_duplicates(
                vector, 1, record.namespace, record.key_text, self.dedup_threshold
            )
        ]
        if (nearest := new.nearest(vector, record.namespace)) is not None:
            candidates.append((nearest[1], held[nearest[0]]))
        score, twin = max(candidates, key=lambda c: c[0], default=(-np.inf, None))
        return twin if score >= self.dedup_threshold else None

    def _twins(self, record: StrategyRecord, vector: np.ndarray, k: int) -> list[StrategyRecord]:
        if self.dedup_threshold is None:
            return []
        hits = self.backend.near_duplicates(
            vector, k, record.namespace, record.key_text, self.dedup_threshold
        )
        return [h.record for h in hits]

    def _fold(self, survivor: StrategyRecord, duplicates: list[StrategyRecord]) -> StrategyRecord:
        if self.dedup_policy == "skip":
            return survivor
        for duplicate in duplicates:
            survivor = survivor.merged_with(duplicate, self.screen)
        self.backend.update([survivor])
        return survivor

    def _settle(self, record: StrategyRecord, vector: np.ndarray) -> StrategyRecord:
        """Resolve near-duplicates that writers in other processes stored meanwhile.

        Every writer keeps the earliest of a group of near-duplicates and removes
        the rest, so whichever writer sees the group resolves it the same way.
        """
        group = {r.id: r for r in self._twins(record, vector, _SETTLE_K)}
        group[record.id] = record
        survivor = min(group.values(), key=lambda r: (r.created_at, r.id))
        duplicates = [r for r in group.values() if r.id != survivor.id]
        if not duplicates:
            return record
        self.backend.delete([r.id for r in duplicates])
        return self._fold(survivor, duplicates)

    def _evict(self, keep: dict[str, str]) -> None:
        """Remove the least useful strategies past ``max_size``, in one call.

        Args:
            keep: For each namespace written to, the strategy just stored there,
                which stays (the last one of a bulk write).
        """
        if self.max_size is None:
            return
        victims = []
        for namespace, kept in keep.items():
            records = self.backend.records(namespace)
            excess = len(records) - self.max_size
            if excess > 0:
                candidates = sorted(
                    (r for r in records if r.id != kept),
                    key=lambda r: (r.usefulness, r.last_active),
                )
                victims += [r.id for r in candidates[:excess]]
        if victims:
            self.backend.delete(victims)


def add_counts(
    backend: BankBackend,
    strategy_ids: Sequence[str],
    counts: dict[str, int],
    used_at: datetime | None,
) -> list[StrategyRecord]:
    """Add to stored records' counters (the caller holds the bank's locks).

    Returns:
        The updated records; unknown ids are skipped.
    """
    updated = [r.with_counts(used_at=used_at, **counts) for r in backend.get(list(strategy_ids))]
    backend.update(updated)
    return updated
