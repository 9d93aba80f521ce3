"""The backend for a LangChain vector store given to the bank: records here, the store as index.

``InMemoryVectorStore``, LangChain's ``FAISS`` and other stores work. The
records and vectors kept here are the truth the store is repaired from when a
write to it fails halfway. Without a store the bank uses
:mod:`~langchain_intercascade.bank.faiss_backend` instead.

The in-process stores filter a namespace after their search (``FAISS``) or by
a Python call per document (``InMemoryVectorStore``), so a small namespace of a
large store would cost a scan of the whole store, or several. Each namespace's
vectors are kept here in one array: a search in an ``InMemoryVectorStore``
bank, or in a namespace holding at most a quarter of a ``FAISS`` bank, scans
that array alone (exactly). Other stores filter in their own query.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, cast

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from langchain_intercascade.bank.backend import BackendHit, _InProcessBackend, _is_a
from langchain_intercascade.strategies import StrategyRecord

if TYPE_CHECKING:
    from langchain_community.vectorstores import FAISS


def _faiss(store: VectorStore | None) -> FAISS | None:
    """The store if it is LangChain's FAISS, whose index and docstore are written directly."""
    if _is_a(store, "langchain_community", "FAISS"):
        return cast("FAISS", store)
    return None


class _Rows:
    """One namespace's unit vectors in one array; rows grow by doubling.

    Args:
        dim: The vectors' width.
    """

    def __init__(self, dim: int) -> None:
        self.ids: list[str] = []
        self._row: dict[str, int] = {}
        self._matrix = np.empty((16, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        start, end = len(self.ids), len(self.ids) + len(ids)
        if end > len(self._matrix):
            grown = np.empty((max(end, 2 * len(self._matrix)), vectors.shape[1]), np.float32)
            grown[:start] = self._matrix[:start]
            self._matrix = grown
        self._matrix[start:end] = vectors
        self._row.update(zip(ids, range(start, end), strict=True))
        self.ids.extend(ids)

    def remove(self, id_: str) -> None:
        # The last row fills the gap: removal costs one row, whatever the size.
        row, last = self._row.pop(id_), len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self._matrix[row] = self._matrix[last]
            self.ids[row], self._row[moved] = moved, row
        self.ids.pop()

    def vector(self, id_: str) -> np.ndarray:
        # A copy: the row may be overwritten by a later removal.
        row: np.ndarray = self._matrix[self._row[id_]].copy()
        return row

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        scores = self._matrix[: len(self.ids)] @ vector
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        return [(self.ids[i], float(scores[i])) for i in top[np.argsort(-scores[top])]]


def _metadata(record: StrategyRecord) -> dict[str, str]:
    return {"strategy_id": record.id, "namespace": record.namespace}


def _document(record: StrategyRecord) -> Document:
    return Document(page_content=record.key_text, metadata=_metadata(record), id=record.id)


class _VectorStoreBackend(_InProcessBackend):
    """Records in this process; the vector store is the similarity index.

    Args:
        store: The index.
    """

    store: VectorStore

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self._records: dict[str, StrategyRecord] = {}
        self._rows: dict[str, _Rows] = {}
        # A FAISS index's width is fixed when it is built; other stores take it from
        # the first write.
        faiss = _faiss(store)
        self._dim: int | None = faiss.index.d if faiss is not None else None

    def records(self, namespace: str | None) -> list[StrategyRecord]:
        if namespace is None:
            return list(self._records.values())
        rows = self._rows.get(namespace)
        return [self._records[i] for i in rows.ids] if rows else []

    def _scans(self, rows: _Rows) -> bool:
        """Whether to search a namespace by scanning its rows rather than the store."""
        if isinstance(self.store, InMemoryVectorStore):
            return True
        return _faiss(self.store) is not None and 4 * len(rows) <= len(self._records)

    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[BackendHit]:
        store = self.store
        rows = self._rows.get(namespace)
        if not rows:
            return []
        if self._scans(rows):
            return [
                BackendHit(self._records[i], s, rows.vector(i)) for i, s in rows.nearest(vector, k)
            ]
        docs: list[Document]
        if _faiss(store) is not None:
            # FAISS filters the fetch_k nearest vectors in Python: widen the fetch until
            # k of this namespace are found or every vector was fetched.
            fetch_k = 4 * k
            while True:
                hits = store.similarity_search_with_score_by_vector(  # type: ignore[attr-defined]
                    vector.tolist(), k=k, filter={"namespace": namespace}, fetch_k=fetch_k
                )
                if len(hits) >= k or fetch_k >= len(self._records):
                    break
                fetch_k *= 4
            docs = [doc for doc, _ in hits]
        else:
            docs = store.similarity_search_by_vector(
                vector.tolist(), k=k, filter={"namespace": namespace}
            )
        found = []
        for doc in docs:
            record = self._records.get(doc.metadata.get("strategy_id", ""))
            if record is not None and record.namespace == namespace:
                stored = rows.vector(record.id)
                found.append(BackendHit(record, float(stored @ vector), stored))
        return sorted(found, key=lambda hit: -hit.score)

    def insert(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> None:
        ids = [r.id for r in records]
        store = self.store
        try:
            if (faiss := _faiss(store)) is not None:
                # FAISS.add_embeddings's own three steps, on the whole array: it would
                # first rebuild the array row by row (0.7 s for 100k).
                start = len(faiss.index_to_docstore_id)
                faiss.index.add(vectors)
                faiss.docstore.add({r.id: _document(r) for r in records})  # type: ignore[attr-defined]
                faiss.index_to_docstore_id.update(enumerate(ids, start))
            elif hasattr(store, "add_embeddings"):  # no second embedding call
                store.add_embeddings(
                    zip([r.key_text for r in records], vectors.tolist(), strict=True),
                    metadatas=[_metadata(r) for r in records],
                    ids=ids,
                )
            else:
                store.add_documents([_document(r) for r in records], ids=ids)
        except BaseException:
            self._repair(ids)
            raise
        self._records.update(zip(ids, records, strict=True))
        for namespace in {r.namespace for r in records}:
            rows = [i for i, r in enumerate(records) if r.namespace == namespace]
            added = self._rows.setdefault(namespace, _Rows(vectors.shape[1]))
            added.add([ids[i] for i in rows], vectors[rows])
        self._dim = vectors.shape[1]

    def delete(self, ids: Sequence[str]) -> None:
        # Each id once: FAISS's docstore fails halfway through a repeated id.
        known = [i for i in dict.fromkeys(ids) if i in self._records]
        if known:
            try:
                self.store.delete(known)
            except BaseException:
                self._repair(known)
                raise
        for i in known:
            namespace = self._records.pop(i).namespace
            self._rows[namespace].remove(i)
            if not self._rows[namespace]:
                del self._rows[namespace]

    def _repair(self, attempted: list[str]) -> None:
        """Make the store hold this backend's records again after a write failed in it.

        Args:
            attempted: The ids the failed write was adding or removing.
        """
        store = self.store
        if (faiss := _faiss(store)) is not None:
            # FAISS changes its index, docstore and id map one after another; a failure
            # between them leaves index positions without documents. Rebuild the index
            # and id map from the records, and set the docstore right for the ids at stake.
            ids = list(self._records)
            faiss.index.reset()
            if ids:
                faiss.index.add(self.vectors([self._records[i] for i in ids]))
            faiss.index_to_docstore_id = dict(enumerate(ids))
            docstore = faiss.docstore
            held = {i for i in attempted if isinstance(docstore.search(i), Document)}
            if stale := [i for i in held if i not in self._records]:
                docstore.delete(stale)
            lost = [i for i in attempted if i in self._records and i not in held]
            if lost:
                docstore.add({i: _document(self._records[i]) for i in lost})  # type: ignore[attr-defined]
        else:
            # Other stores write each document whole; take back any the failed add kept.
            if added := [i for i in attempted if i not in self._records]:
                with suppress(Exception):
                    store.delete(added)

    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        return np.array([self._rows[r.namespace].vector(r.id) for r in records], dtype=np.float32)
