"""The strategy bank: distilled strategies in a LangChain vector store.

:class:`StrategyBank` keeps :class:`~langchain_intercascade.strategies.StrategyRecord`
objects searchable by similarity to a query. The index is any LangChain
``VectorStore``; the default is FAISS with a flat inner-product index over
normalized embeddings, so its scores are cosine similarities.
:class:`StrategyRetriever` exposes the bank as a standard LangChain retriever.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from pydantic import ConfigDict, Field

from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
)

FORMAT_VERSION = 1
DEFAULT_NAMESPACE = "default"
_MANIFEST = "manifest.json"
_RECORDS = "strategies.jsonl"
_VECTORS = "vectors.npy"


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


def _unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


class StrategyBank:
    """A searchable collection of distilled strategies.

    Each strategy is indexed by its record's ``key_text``: the query it was
    distilled from (as in the paper) or, when that is not kept, its title and
    when it applies.

    Args:
        embeddings: Embeds strategy texts and queries.
        vectorstore: The index to keep strategies in. None (the default) builds a
            FAISS flat inner-product index on the first write, whose scores are
            cosine similarities. Any other LangChain ``VectorStore`` works; its
            scores are then that store's relevance scores.

    Example:
        ```python
        bank = StrategyBank(embeddings=OpenAIEmbeddings())
        bank.add(Strategy(title="...", applies_when="...", steps=["..."]))
        bank.search("a new question", k=2)
        ```
    """

    def __init__(self, embeddings: Embeddings, *, vectorstore: VectorStore | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                f"embeddings must be a langchain_core Embeddings, got {type(embeddings).__name__}"
            )
        self.embeddings = embeddings
        self._store = vectorstore
        self._records: dict[str, StrategyRecord] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"StrategyBank({len(self)} strategies, store={type(self._store).__name__})"

    @property
    def vectorstore(self) -> VectorStore | None:
        """The underlying LangChain vector store (None until the first FAISS write)."""
        return self._store

    def records(self, namespace: str | None = None) -> list[StrategyRecord]:
        """List stored strategies, oldest first.

        Args:
            namespace: Only this namespace; None lists every namespace.

        Returns:
            The records.
        """
        with self._lock:
            return [r for r in self._records.values() if namespace in (None, r.namespace)]

    def get(self, strategy_id: str) -> StrategyRecord | None:
        """Return the record with this id, or None."""
        return self._records.get(strategy_id)

    # -- writes ---------------------------------------------------------------

    def add(
        self,
        strategy: Strategy | StrategyRecord,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        source_query: str | None = None,
        model: str | None = None,
    ) -> StrategyRecord:
        """Store a strategy; storing the same strategy twice keeps one copy.

        Args:
            strategy: A strategy, or a ready record (whose own namespace and
                provenance are then kept).
            namespace: The namespace to store it under.
            source_query: The query it was distilled from (None keeps it private).
            model: The name of the model that wrote it.

        Returns:
            The stored record (the existing one if it was already stored).
        """
        record = self._as_record(strategy, namespace, source_query, model)
        if record.id in self._records:
            return self._records[record.id]
        vector = self.embeddings.embed_documents([record.key_text])[0]
        return self._insert(record, _unit(vector))

    async def aadd(
        self,
        strategy: Strategy | StrategyRecord,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        source_query: str | None = None,
        model: str | None = None,
    ) -> StrategyRecord:
        """Async :meth:`add`: embeds with ``aembed_documents``."""
        record = self._as_record(strategy, namespace, source_query, model)
        if record.id in self._records:
            return self._records[record.id]
        vector = (await self.embeddings.aembed_documents([record.key_text]))[0]
        return await asyncio.to_thread(self._insert, record, _unit(vector))

    @staticmethod
    def _as_record(
        strategy: Strategy | StrategyRecord,
        namespace: str,
        source_query: str | None,
        model: str | None,
    ) -> StrategyRecord:
        if isinstance(strategy, StrategyRecord):
            return strategy
        if not isinstance(strategy, Strategy):
            raise TypeError(f"expected a Strategy or StrategyRecord, got {type(strategy).__name__}")
        return StrategyRecord.create(
            strategy, namespace=namespace, source_query=source_query, model=model
        )

    def _insert(self, record: StrategyRecord, vector: np.ndarray) -> StrategyRecord:
        with self._lock:
            if record.id in self._records:  # a concurrent writer stored it first
                return self._records[record.id]
            if self._store is None:
                self._store = _faiss_store(self.embeddings, len(vector))
            metadata = {"strategy_id": record.id, "namespace": record.namespace}
            if hasattr(self._store, "add_embeddings"):
                self._store.add_embeddings(
                    [(record.text, vector.tolist())],
                    metadatas=[metadata],
                    ids=[record.id],
                )
            else:
                self._store.add_documents(
                    [Document(page_content=record.key_text, metadata=metadata, id=record.id)],
                    ids=[record.id],
                )
            self._records[record.id] = record
            self._vectors[record.id] = vector
            return record

    # -- reads ----------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 2,
        score_threshold: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> list[RetrievedStrategy]:
        """Find the strategies most similar to a query.

        Args:
            query: The text to match (usually the user's last turn).
            k: At most this many strategies.
            score_threshold: Drop strategies scoring below this similarity.
            namespace: Search only this namespace.

        Returns:
            Up to ``k`` strategies, best first.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self._store is None or not self._records:
            return []
        return self._search_vector(
            self.embeddings.embed_query(query), query, k, score_threshold, namespace
        )

    async def asearch(
        self,
        query: str,
        *,
        k: int = 2,
        score_threshold: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> list[RetrievedStrategy]:
        """Async :meth:`search`: embeds with ``aembed_query``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self._store is None or not self._records:
            return []
        vector = await self.embeddings.aembed_query(query)
        return await asyncio.to_thread(
            self._search_vector, vector, query, k, score_threshold, namespace
        )

    def _search_vector(
        self,
        vector: Sequence[float],
        query: str,
        k: int,
        score_threshold: float | None,
        namespace: str,
    ) -> list[RetrievedStrategy]:
        store = self._store
        with self._lock:
            hits: list[tuple[Document, float]]
            if isinstance(store, InMemoryVectorStore):  # filters with a callable
                hits = store.similarity_search_with_score_by_vector(
                    _unit(vector).tolist(),
                    k=k,
                    filter=lambda doc: doc.metadata.get("namespace") == namespace,
                )
            elif type(store).__name__ == "FAISS":
                hits = store.similarity_search_with_score_by_vector(  # type: ignore[union-attr]
                    _unit(vector).tolist(),
                    k=k,
                    filter={"namespace": namespace},
                    # FAISS filters after the search; look far enough past other namespaces.
                    fetch_k=max(64, 8 * k),
                )
            else:
                assert store is not None
                hits = store.similarity_search_with_relevance_scores(
                    query, k=k, filter={"namespace": namespace}
                )
            found = []
            for doc, score in hits:
                record = self._records.get(doc.metadata.get("strategy_id", ""))
                if record is not None and (score_threshold is None or score >= score_threshold):
                    found.append(RetrievedStrategy(record=record, score=float(score)))
            return found

    def as_retriever(self, **kwargs: Any) -> StrategyRetriever:
        """Expose the bank as a LangChain retriever.

        Args:
            **kwargs: :class:`StrategyRetriever` fields (``k``, ``score_threshold``,
                ``namespace``).

        Returns:
            A retriever over this bank.
        """
        return StrategyRetriever(bank=self, **kwargs)

    # -- persistence ----------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the bank to a folder, without pickle.

        The folder holds ``manifest.json`` (format version, count, dimension),
        ``strategies.jsonl`` (one record a line) and ``vectors.npy``. The new copy
        is written beside the old one and swapped in, so a crash mid-save leaves
        the previous bank intact.

        Args:
            folder: Where to write.

        Returns:
            The folder's path.
        """
        target = Path(folder)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        with self._lock:
            records = list(self._records.values())
            vectors = [self._vectors[r.id] for r in records]
        dim = len(vectors[0]) if vectors else 0
        tmp.mkdir(parents=True, exist_ok=False)
        try:
            with open(tmp / _RECORDS, "w", encoding="utf-8") as fh:
                fh.writelines(r.model_dump_json() + "\n" for r in records)
            np.save(
                tmp / _VECTORS,
                np.array(vectors, dtype=np.float32).reshape(len(records), dim),
            )
            manifest = {
                "format_version": FORMAT_VERSION,
                "count": len(records),
                "dim": dim,
            }
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        *,
        embeddings: Embeddings,
        vectorstore: VectorStore | None = None,
    ) -> StrategyBank:
        """Read a bank written by :meth:`save`.

        Args:
            folder: The folder :meth:`save` wrote.
            embeddings: The same embeddings the bank was built with.
            vectorstore: An empty store to load into; None uses FAISS.

        Returns:
            The bank.

        Raises:
            FileNotFoundError: If the folder is not a saved bank.
            ValueError: If the files are inconsistent, of an unknown format
                version, or of another embedding dimension than ``embeddings``.
        """
        path = Path(folder)
        if not (path / _MANIFEST).is_file():
            raise FileNotFoundError(f"{path} is not a saved strategy bank (no {_MANIFEST})")
        manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: unsupported bank format version {manifest.get('format_version')!r}; "
                f"this version reads {FORMAT_VERSION}"
            )
        with open(path / _RECORDS, encoding="utf-8") as fh:
            records = [StrategyRecord.model_validate_json(line) for line in fh if line.strip()]
        vectors = np.load(path / _VECTORS, allow_pickle=False)
        if len(records) != manifest["count"] or vectors.shape[0] != len(records):
            raise ValueError(
                f"{path}: manifest says {manifest['count']} strategies, found "
                f"{len(records)} records and {vectors.shape[0]} vectors"
            )
        bank = cls(embeddings, vectorstore=vectorstore)
        if records:
            probe = len(embeddings.embed_query("dimension check"))
            if probe != manifest["dim"]:
                raise ValueError(
                    f"{path}: the bank was built with {manifest['dim']}-dimensional "
                    f"embeddings, but the embeddings given produce {probe} dimensions"
                )
        for record, vector in zip(records, vectors, strict=True):
            bank._insert(record, vector)
        return bank


class StrategyRetriever(BaseRetriever):
    """A LangChain retriever over a :class:`StrategyBank`.

    Each document's ``page_content`` is a strategy's text; its metadata carries the
    strategy id, namespace, title and similarity ``score``.

    Args:
        bank: The bank to search.
        k: How many strategies to return (overridable per call: ``invoke(q, k=1)``).
        score_threshold: Drop strategies below this similarity.
        namespace: The namespace to search.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    bank: StrategyBank
    k: int = Field(default=2, ge=1)
    score_threshold: float | None = None
    namespace: str = DEFAULT_NAMESPACE

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = self.bank.search(
            query,
            k=k or self.k,
            score_threshold=self.score_threshold,
            namespace=self.namespace,
        )
        return [_to_document(item) for item in found]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = await self.bank.asearch(
            query,
            k=k or self.k,
            score_threshold=self.score_threshold,
            namespace=self.namespace,
        )
        return [_to_document(item) for item in found]


def _to_document(item: RetrievedStrategy) -> Document:
    record = item.record
    return Document(
        id=record.id,
        page_content=record.text,
        metadata={
            "strategy_id": record.id,
            "namespace": record.namespace,
            "title": record.strategy.title,
            "score": item.score,
            "strategy": record.strategy.model_dump(),
        },
    )
