"""The in-process backend: records in memory, any LangChain vector store as the index.

FAISS (a flat inner-product index over unit vectors) is built on the first write
when no store is given; ``InMemoryVectorStore`` and other stores work too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

from langchain_intercascade.bank.catalog import _Catalog, _Hit, _is_instance
from langchain_intercascade.strategies import StrategyRecord


def _faiss_store(embeddings: Embeddings, dim: int) -> VectorStore:
    with warnings.catch_warnings():
        # langchain-community warns on import that it is being sunset; FAISS still works.
        warnings.simplefilter("ignore", DeprecationWarning)
        import faiss
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_community.vectorstores import FAISS
        from langchain_community.vectorstores.utils import DistanceStrategy

    return FAISS(
        embedding_function=embeddings,
        index=faiss.IndexFlatIP(dim),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        relevance_score_fn=lambda score: score,  # inner product of unit vectors = cosine
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )


class _LocalCatalog(_Catalog):
    """Records in this process; the vector store is the similarity index.

    Args:
        embeddings: Passed to the FAISS store built on the first write.
        store: The index; None builds FAISS on the first write.
    """

    def __init__(self, embeddings: Embeddings, store: VectorStore | None) -> None:
        self.embeddings = embeddings
        self.store = store
        self._records: dict[str, StrategyRecord] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def get(self, ids: Sequence[str]) -> list[StrategyRecord]:
        return [self._records[i] for i in ids if i in self._records]

    def records(self, namespace: str | None) -> list[StrategyRecord]:
        return [r for r in self._records.values() if namespace in (None, r.namespace)]

    def count(self) -> int:
        return len(self._records)

    def nearest(self, vector: np.ndarray, k: int, namespace: str, text: str) -> list[_Hit]:
        store = self.store
        if store is None or not self._records:
            return []
        docs: list[Document]
        if isinstance(store, InMemoryVectorStore):  # filters with a callable
            docs = store.similarity_search_by_vector(
                vector.tolist(), k=k, filter=lambda doc: doc.metadata["namespace"] == namespace
            )
        elif _is_instance(store, "langchain_community.vectorstores.faiss", "FAISS"):
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
                stored = self._vectors[record.id]
                found.append(_Hit(record, float(stored @ vector), stored))
        return sorted(found, key=lambda hit: -hit.score)

    def insert(self, record: StrategyRecord, vector: np.ndarray) -> None:
        if self.store is None:
            self.store = _faiss_store(self.embeddings, len(vector))
        metadata = {"strategy_id": record.id, "namespace": record.namespace}
        if hasattr(self.store, "add_embeddings"):  # FAISS: no second embedding call
            self.store.add_embeddings(
                [(record.key_text, vector.tolist())], metadatas=[metadata], ids=[record.id]
            )
        else:
            self.store.add_documents(
                [Document(page_content=record.key_text, metadata=metadata, id=record.id)],
                ids=[record.id],
            )
        self._records[record.id] = record
        self._vectors[record.id] = vector

    def update(self, records: Sequence[StrategyRecord]) -> None:
        for record in records:
            if record.id in self._records:
                self._records[record.id] = record

    def delete(self, ids: Sequence[str]) -> None:
        known = [i for i in ids if i in self._records]
        if known and self.store is not None:
            self.store.delete(known)
        for i in known:
            del self._records[i], self._vectors[i]

    def vectors(self, records: Sequence[StrategyRecord]) -> np.ndarray:
        return np.array([self._vectors[r.id] for r in records], dtype=np.float32)
