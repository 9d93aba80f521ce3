"""The shared backend: records in a Chroma collection that many processes can use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.vectorstores import VectorStore
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from langchain_intercascade.bank.backend import BackendHit, BankBackend, _unit, _unit_rows
from langchain_intercascade.strategies import StrategyRecord

_BATCH = 1000


class _ChromaBackend(BankBackend):
    """Records in a Chroma collection, the source of truth for every process.

    Each entry's metadata carries its namespace and the whole record as JSON, so
    a bank in another process reads the same records and counters. Counter
    updates are read-modify-write: concurrent processes may lose an increment,
    never a strategy.

    Args:
        store: A ``langchain_chroma.Chroma`` store, embedded or client/server.
    """

    shared = True

    def __init__(self, store: VectorStore) -> None:
        from chromadb.errors import InternalError

        self.store = store
        # langchain-chroma has no public way to add vectors or update metadata alone.
        self.collection = store._collection  # type: ignore[attr-defined]
        # A query racing another client's first writes can find the HNSW segment not
        # yet on disk (chroma-core/chroma#4212); it succeeds when asked again. Reads only:
        # a retried write could apply twice.
        self._retry_read = Retrying(
            retry=retry_if_exception_type(InternalError),
            stop=stop_after_attempt(5),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        )
        self._dim: int | None = None

    @property
    def dim(self) -> int | None:
        # Chroma fixes a collection's width on its first write, by whichever process.
        if self._dim is None:
            got = self._retry_read(self.collection.get, limit=1, include=["embeddings"])
            if len(got["ids"]):
                self._dim = len(got["embeddings"][0])
        return self._dim

    @staticmethod
    def _metadata(record: StrategyRecord) -> dict[str, Any]:
        return {
            "strategy_id": record.id,
            "namespace": record.namespace,
            "record": record.model_dump_json(),
        }

    @staticmethod
    def _parse(metadatas: Iterable[Any]) -> list[StrategyRecord]:
        # Entries without a record (written by something else) are not strategies.
        return [
            StrategyRecord.model_validate_json(m["record"])
            for m in metadatas
            if m and "record" in m
        ]

    def get(self, ids: Sequence[str]) -> list[StrategyRecord]:
        if not ids:
            return []
        return self._parse(self.collection.get(ids=list(ids), include=["metadatas"])["metadatas"])

    def records(self, namespace: str | None) -> list[StrategyRecord]:
        where = {"namespace": namespace} if namespace is not None else None
        return self._parse(self.collection.get(where=where, include=["metadatas"])["metadatas"])

    def count(self) -> int:
        return int(self.collection.count())

    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[BackendHit]:
        result = self._retry_read(
            self.collection.query,
            query_embeddings=[vector.tolist()],
            n_results=k,
            where={"namespace": namespace},
            include=["metadatas", "embeddings"],
        )
        found = []
        for metadata, embedding in zip(
            result["metadatas"][0], result["embeddings"][0], strict=True
        ):
            for record in self._parse([metadata]):
                stored = _unit(embedding, f"stored strategy {record.id}")
                found.append(BackendHit(record, float(stored @ vector), stored))
        return sorted(found, key=lambda hit: -hit.score)

    def insert(self, records: Sequence[StrategyRecord], vectors: np.ndarray) -> None:
        ids = [r.id for r in records]
        written = 0
        try:
            while written < len(records):  # Chroma caps the size of one request
                end = written + _BATCH
                self.collection.add(
                    ids=ids[written:end],
                    embeddings=vectors[written:end],
                    metadatas=[self._metadata(r) for r in records[written:end]],
                    documents=[r.key_text for r in records[written:end]],
                )
                written = end
        except BaseException:
            if written:  # all or nothing: take back the batches already written
                self.collection.delete(ids=ids[:written])
            raise
        self._dim = vectors.shape[1]

    def update(self, records: Sequence[StrategyRecord]) -> None:
        if records:
            self.collection.update(
                ids=[r.id for r in records], metadatas=[self._metadata(r) for r in records]
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.collection.delete(ids=list(ids))

    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        if not records:
            return np.zeros((0, 0), dtype=np.float32)
        got = self.collection.get(ids=[r.id for r in records], include=["embeddings"])
        by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
        return _unit_rows([by_id[r.id] for r in records], len(records), "stored strategies")
