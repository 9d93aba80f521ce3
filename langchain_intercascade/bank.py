"""The strategy bank: distilled strategies in a LangChain vector store.

:class:`StrategyBank` keeps :class:`~langchain_intercascade.strategies.StrategyRecord`
objects searchable by similarity to a query. It wraps a LangChain ``VectorStore``:
FAISS by default (a flat inner-product index over normalized embeddings),
``InMemoryVectorStore``, any other store, or Chroma, which several processes can
share. Scores are always cosine similarities of normalized embeddings, whatever
the store, so thresholds mean the same everywhere.

On write the bank deduplicates (a strategy too similar to a stored one in its
namespace is merged into it or skipped), counts how strategies fare in the
cascade, and evicts the least useful strategies past an optional size limit.
:class:`StrategyRetriever` exposes the bank as a standard LangChain retriever.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
    content_id,
)

FORMAT_VERSION = 2
DEFAULT_NAMESPACE = "default"
DedupPolicy = Literal["merge", "skip"]
SearchType = Literal["similarity", "mmr"]
_MANIFEST = "manifest.json"
# Scores equal to this many decimals are a tie, which the more useful strategy wins.
_TIE_DECIMALS = 4
# How many near neighbours a shared-store writer reconciles after its write.
_SETTLE_K = 8


def _unit(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm > 0 else array


def _check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(f"a namespace must be a non-empty string, got {namespace!r}")
    return namespace


def _now() -> datetime:
    return datetime.now(timezone.utc)


class BankStats(BaseModel):
    """A summary of a bank's contents, from :meth:`StrategyBank.stats`."""

    count: int = Field(description="Strategies in the scope asked for.")
    namespaces: dict[str, int] = Field(description="Strategies per namespace.")
    most_used: list[StrategyRecord] = Field(description="Most often retrieved first.")
    most_helpful: list[StrategyRecord] = Field(description="Highest usefulness first.")


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

    @abstractmethod
    def nearest(self, vector: np.ndarray, k: int, namespace: str) -> list[_Hit]:
        """Up to ``k`` records of a namespace nearest to a unit vector, best first."""

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


def _is_instance(store: object, module: str, name: str) -> bool:
    # Only a module the user already imported can have built the store: no import cost.
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(store, getattr(loaded, name))


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

    def nearest(self, vector: np.ndarray, k: int, namespace: str) -> list[_Hit]:
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


class _ChromaCatalog(_Catalog):
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

    def nearest(self, vector: np.ndarray, k: int, namespace: str) -> list[_Hit]:
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
                stored = _unit(embedding)
                found.append(_Hit(record, float(stored @ vector), stored))
        return sorted(found, key=lambda hit: -hit.score)

    def insert(self, record: StrategyRecord, vector: np.ndarray) -> None:
        self.collection.add(
            ids=[record.id],
            embeddings=[vector.tolist()],
            metadatas=[self._metadata(record)],
            documents=[record.key_text],
        )

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
        return np.array([_unit(by_id[r.id]) for r in records], dtype=np.float32)


class StrategyBank:
    """A searchable, deduplicated collection of distilled strategies.

    Each strategy is indexed by its record's ``key_text``: the query it was
    distilled from (as in the paper) or, when that is not kept, its title and
    when it applies. Every read and write is scoped to a namespace (a tenant or
    task); one namespace never sees another's strategies.

    Methods are safe to call from many threads and asyncio tasks at once. With a
    Chroma store the store is the source of truth: banks on one ``chroma run``
    server, in any number of processes, share the same strategies, and dedup
    holds across them (an embedded Chroma folder serves one process at a time).

    Args:
        embeddings: Embeds strategy keys and queries.
        vectorstore: The store to keep strategies in. None (the default) builds a
            FAISS flat inner-product index on the first write. A
            ``langchain_chroma.Chroma`` store is shared between processes; with any
            other store the records live in this process (save them with
            :meth:`save`). Give the bank a store (collection) of its own.
        dedup_threshold: A new strategy whose key is at least this cosine-similar
            to a stored one in the same namespace is a near-duplicate; None stores
            every distinct strategy. The scale depends on the embedding model:
            with all-MiniLM-L6-v2, 500 variants of one problem leave 3 to 38
            strategies at 0.9 and distinct GSM8K problems are kept apart
            (benchmarks/bank); lower it to merge more.
        dedup_policy: What happens to a near-duplicate: ``"merge"`` folds it into
            the stored strategy (new pitfalls and counters added, ``variants``
            counted); ``"skip"`` drops it.
        max_size: At most this many strategies per namespace; past it, the least
            useful strategies are evicted, the least recently used first among
            equals. None keeps every strategy.

    Raises:
        TypeError: If ``embeddings`` is not a LangChain ``Embeddings``.
        ValueError: If an option is out of range.

    Example:
        ```python
        bank = StrategyBank(embeddings=OpenAIEmbeddings(), max_size=500)
        bank.add(Strategy(title="...", applies_when="...", steps=["..."]))
        bank.search("a new question", k=2)
        bank.stats()
        ```
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        vectorstore: VectorStore | None = None,
        dedup_threshold: float | None = 0.9,
        dedup_policy: DedupPolicy = "merge",
        max_size: int | None = None,
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                f"embeddings must be a langchain_core Embeddings, got {type(embeddings).__name__}"
            )
        if dedup_threshold is not None and not -1.0 <= dedup_threshold <= 1.0:
            raise ValueError(f"dedup_threshold must lie in [-1, 1], got {dedup_threshold}")
        if dedup_policy not in ("merge", "skip"):
            raise ValueError(f"dedup_policy must be 'merge' or 'skip', got {dedup_policy!r}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.embeddings = embeddings
        self.dedup_threshold = dedup_threshold
        self.dedup_policy = dedup_policy
        self.max_size = max_size
        self._catalog: _Catalog = (
            _ChromaCatalog(vectorstore)
            if vectorstore is not None and _is_instance(vectorstore, "langchain_chroma", "Chroma")
            else _LocalCatalog(embeddings, vectorstore)
        )
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return self._catalog.count()

    def __repr__(self) -> str:
        return f"StrategyBank({len(self)} strategies, store={type(self.vectorstore).__name__})"

    @property
    def vectorstore(self) -> VectorStore | None:
        """The underlying LangChain vector store (None until the first FAISS write)."""
        return self._catalog.store

    # -- inspect ----------------------------------------------------------------

    def records(self, namespace: str | None = None) -> list[StrategyRecord]:
        """List stored strategies, oldest first.

        Args:
            namespace: Only this namespace; None lists every namespace.

        Returns:
            The records.
        """
        with self._lock:
            found = self._catalog.records(namespace)
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def get(self, strategy_id: str) -> StrategyRecord | None:
        """Return the record with this id, or None."""
        with self._lock:
            found = self._catalog.get([strategy_id])
        return found[0] if found else None

    def stats(self, namespace: str | None = None, *, top: int = 5) -> BankStats:
        """Summarize the bank.

        Args:
            namespace: Only this namespace; None covers every namespace.
            top: How many strategies to list as most used and most helpful.

        Returns:
            The count, the count per namespace, the most retrieved strategies and
            the most useful ones (among those used at least once).
        """
        records = self.records(namespace)
        used = [r for r in records if r.times_retrieved or r.helpful or r.harmful]
        return BankStats(
            count=len(records),
            namespaces=dict(Counter(r.namespace for r in records)),
            most_used=sorted(used, key=lambda r: -r.times_retrieved)[:top],
            most_helpful=sorted(used, key=lambda r: (-r.usefulness, -r.times_retrieved))[:top],
        )

    def delete(self, strategy_ids: Sequence[str]) -> int:
        """Remove strategies.

        Args:
            strategy_ids: The ids to remove; unknown ids are ignored.

        Returns:
            How many strategies were removed.
        """
        with self._lock:
            known = [r.id for r in self._catalog.get(list(strategy_ids))]
            self._catalog.delete(known)
        return len(known)

    # -- writes -------------------------------------------------------------------

    def add(
        self,
        strategy: Strategy | StrategyRecord,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        source_query: str | None = None,
        model: str | None = None,
    ) -> StrategyRecord:
        """Store a strategy, unless it duplicates a stored one.

        Args:
            strategy: A strategy, or a ready record (whose own namespace and
                provenance are then kept).
            namespace: The namespace to store it under.
            source_query: The query it was distilled from (None keeps it private).
            model: The name of the model that wrote it.

        Returns:
            The record that now holds the strategy: the new one, or the stored
            one it was merged into or skipped for.

        Raises:
            TypeError: If ``strategy`` is neither a Strategy nor a StrategyRecord.
            ValueError: If the namespace is empty.
        """
        record = self._as_record(strategy, namespace, source_query, model)
        stored = self.get(record.id)
        if stored is not None:
            return stored
        vector = _unit(self.embeddings.embed_documents([record.key_text])[0])
        return self._write(record, vector)

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
        stored = await asyncio.to_thread(self.get, record.id)
        if stored is not None:
            return stored
        vector = _unit((await self.embeddings.aembed_documents([record.key_text]))[0])
        return await asyncio.to_thread(self._write, record, vector)

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
            strategy,
            namespace=_check_namespace(namespace),
            source_query=source_query,
            model=model,
        )

    def _write(self, record: StrategyRecord, vector: np.ndarray) -> StrategyRecord:
        with self._lock:
            stored = self._catalog.get([record.id])
            if stored:  # a concurrent writer stored it first
                return stored[0]
            twins = self._twins(vector, record.namespace, 1)
            if twins:
                return self._fold(twins[0], [record])
            self._catalog.insert(record, vector)
            if self._catalog.shared:
                record = self._settle(record, vector)
            self._evict(record.namespace, keep=record.id)
            return record

    def _twins(self, vector: np.ndarray, namespace: str, k: int) -> list[StrategyRecord]:
        if self.dedup_threshold is None:
            return []
        hits = self._catalog.nearest(vector, k, namespace)
        return [h.record for h in hits if h.score >= self.dedup_threshold]

    def _fold(self, survivor: StrategyRecord, duplicates: list[StrategyRecord]) -> StrategyRecord:
        if self.dedup_policy == "skip":
            return survivor
        for duplicate in duplicates:
            survivor = survivor.merged_with(duplicate)
        self._catalog.update([survivor])
        return survivor

    def _settle(self, record: StrategyRecord, vector: np.ndarray) -> StrategyRecord:
        """Resolve near-duplicates that writers in other processes stored meanwhile.

        Every writer keeps the earliest of a group of near-duplicates and removes
        the rest, so whichever writer sees the group resolves it the same way.
        """
        group = {r.id: r for r in self._twins(vector, record.namespace, _SETTLE_K)}
        group[record.id] = record
        survivor = min(group.values(), key=lambda r: (r.created_at, r.id))
        duplicates = [r for r in group.values() if r.id != survivor.id]
        if not duplicates:
            return record
        self._catalog.delete([r.id for r in duplicates])
        return self._fold(survivor, duplicates)

    def _evict(self, namespace: str, *, keep: str) -> None:
        if self.max_size is None:
            return
        records = self._catalog.records(namespace)
        excess = len(records) - self.max_size
        if excess > 0:
            candidates = sorted(
                (r for r in records if r.id != keep),
                key=lambda r: (r.usefulness, r.last_active),
            )
            self._catalog.delete([r.id for r in candidates[:excess]])

    # -- usefulness feedback ------------------------------------------------------

    def record_outcome(self, strategy_ids: Sequence[str], *, accepted: bool) -> None:
        """Count how the cascade fared after retrieving strategies.

        Args:
            strategy_ids: The strategies shown to the weak model.
            accepted: True if the weak answer was accepted, False if the query
                was deferred to the strong model.
        """
        outcome = "times_accepted" if accepted else "times_deferred"
        self._bump(strategy_ids, {"times_retrieved": 1, outcome: 1}, used_at=_now())

    async def arecord_outcome(self, strategy_ids: Sequence[str], *, accepted: bool) -> None:
        """Async :meth:`record_outcome`."""
        await asyncio.to_thread(self.record_outcome, strategy_ids, accepted=accepted)

    def rate(self, strategy_id: str, *, helpful: bool) -> StrategyRecord | None:
        """Record a judgement of a strategy, e.g. from a grader or a user.

        Args:
            strategy_id: The strategy.
            helpful: True counts it helpful, False harmful.

        Returns:
            The updated record, or None if there is no such strategy.
        """
        updated = self._bump([strategy_id], {"helpful" if helpful else "harmful": 1})
        return updated[0] if updated else None

    def _bump(
        self,
        strategy_ids: Sequence[str],
        counts: dict[str, int],
        *,
        used_at: datetime | None = None,
    ) -> list[StrategyRecord]:
        with self._lock:
            updated = [
                r.with_counts(used_at=used_at, **counts)
                for r in self._catalog.get(list(strategy_ids))
            ]
            self._catalog.update(updated)
        return updated

    # -- reads --------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 2,
        score_threshold: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        search_type: SearchType = "similarity",
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
    ) -> list[RetrievedStrategy]:
        """Find the strategies most similar to a query.

        Args:
            query: The text to match (usually the user's last turn).
            k: At most this many strategies.
            score_threshold: Drop strategies less cosine-similar than this.
            namespace: Search only this namespace.
            search_type: ``"similarity"`` ranks by similarity, the more useful
                strategy first among equal scores; ``"mmr"`` picks diverse
                strategies by maximal marginal relevance.
            fetch_k: With MMR, how many nearest strategies to pick from.
            lambda_mult: With MMR, 1 favours similarity and 0 diversity.

        Returns:
            Up to ``k`` strategies with their cosine similarity, best first (in
            the order MMR picked them with ``"mmr"``).

        Raises:
            ValueError: If an option is out of range.
        """
        self._check_search(k, namespace, search_type, lambda_mult)
        if not len(self):
            return []
        vector = _unit(self.embeddings.embed_query(query))
        return self._search_vector(
            vector, k, score_threshold, namespace, search_type, fetch_k, lambda_mult
        )

    async def asearch(
        self,
        query: str,
        *,
        k: int = 2,
        score_threshold: float | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        search_type: SearchType = "similarity",
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
    ) -> list[RetrievedStrategy]:
        """Async :meth:`search`: embeds with ``aembed_query``."""
        self._check_search(k, namespace, search_type, lambda_mult)
        if not await asyncio.to_thread(len, self):
            return []
        vector = _unit(await self.embeddings.aembed_query(query))
        return await asyncio.to_thread(
            self._search_vector,
            vector,
            k,
            score_threshold,
            namespace,
            search_type,
            fetch_k,
            lambda_mult,
        )

    @staticmethod
    def _check_search(k: int, namespace: str, search_type: str, lambda_mult: float) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not 0.0 <= lambda_mult <= 1.0:
            raise ValueError(f"lambda_mult must lie in [0, 1], got {lambda_mult}")
        if search_type not in ("similarity", "mmr"):
            raise ValueError(f"search_type must be 'similarity' or 'mmr', got {search_type!r}")
        _check_namespace(namespace)

    def _search_vector(
        self,
        vector: np.ndarray,
        k: int,
        score_threshold: float | None,
        namespace: str,
        search_type: SearchType,
        fetch_k: int,
        lambda_mult: float,
    ) -> list[RetrievedStrategy]:
        # Similarity fetches past k so that a tie at the k-th place can go to usefulness.
        with self._lock:
            hits = self._catalog.nearest(
                vector, max(fetch_k, k) if search_type == "mmr" else 2 * k, namespace
            )
        if score_threshold is not None:
            hits = [h for h in hits if h.score >= score_threshold]
        if search_type == "mmr" and hits:
            picked = maximal_marginal_relevance(
                vector, [h.vector.tolist() for h in hits], lambda_mult=lambda_mult, k=k
            )
            hits = [hits[i] for i in picked]
        else:
            hits = sorted(
                hits, key=lambda h: (-round(h.score, _TIE_DECIMALS), -h.record.usefulness)
            )[:k]
        return [RetrievedStrategy(record=h.record, score=h.score) for h in hits]

    def as_retriever(self, **kwargs: Any) -> StrategyRetriever:
        """Expose the bank as a LangChain retriever.

        Args:
            **kwargs: :class:`StrategyRetriever` fields (``k``, ``score_threshold``,
                ``namespace``, ``search_type``, ``lambda_mult``).

        Returns:
            A retriever over this bank.
        """
        return StrategyRetriever(bank=self, **kwargs)

    # -- persistence ----------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the whole bank to a folder, without pickle.

        The folder holds ``manifest.json`` (format version, count, dimension and
        the names of the data files), a JSONL file of records and a ``.npy`` file
        of vectors. Each save writes new data files and then replaces the
        manifest atomically, so a crash at any point leaves a complete bank: the
        new one or the previous one.

        Args:
            folder: Where to write.

        Returns:
            The folder's path.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        with self._lock:
            records = self.records()
            vectors = self._catalog.vectors(records)
        dim = int(vectors.shape[1]) if len(records) else 0
        generation = uuid.uuid4().hex[:12]
        names = {
            "records": f"strategies-{generation}.jsonl",
            "vectors": f"vectors-{generation}.npy",
        }
        manifest = {
            "format_version": FORMAT_VERSION,
            "count": len(records),
            "dim": dim,
            **names,
        }
        previous = _read_manifest(target) if (target / _MANIFEST).is_file() else {}
        written = [target / name for name in names.values()]
        try:
            _write_durably(written[0], "".join(r.model_dump_json() + "\n" for r in records))
            with open(written[1], "wb") as fh:
                np.save(fh, vectors.reshape(len(records), dim), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            _write_durably(target / _MANIFEST, json.dumps(manifest, indent=2))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        # Remove only what the replaced manifest named: another process's save may be
        # writing its own files here right now.
        for key in ("records", "vectors"):
            if previous.get(key) and previous[key] != names[key]:
                (target / previous[key]).unlink(missing_ok=True)
        return target

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        *,
        embeddings: Embeddings,
        vectorstore: VectorStore | None = None,
        **kwargs: Any,
    ) -> StrategyBank:
        """Read a bank written by :meth:`save`, exactly as it was saved.

        Args:
            folder: The folder :meth:`save` wrote.
            embeddings: The same embeddings the bank was built with.
            vectorstore: An empty store to load into; None uses FAISS.
            **kwargs: Other :class:`StrategyBank` options (``dedup_threshold``,
                ``dedup_policy``, ``max_size``) for later writes.

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
        manifest = _read_manifest(path)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: unsupported bank format version {manifest.get('format_version')!r}; "
                f"this version reads {FORMAT_VERSION}"
            )
        with open(path / manifest["records"], encoding="utf-8") as fh:
            records = [StrategyRecord.model_validate_json(line) for line in fh if line.strip()]
        vectors = np.load(path / manifest["vectors"], allow_pickle=False)
        if len(records) != manifest["count"] or vectors.shape[0] != len(records):
            raise ValueError(
                f"{path}: manifest says {manifest['count']} strategies, found "
                f"{len(records)} records and {vectors.shape[0]} vectors"
            )
        bank = cls(embeddings, vectorstore=vectorstore, **kwargs)
        if records:
            probe = len(embeddings.embed_query("dimension check"))
            if probe != manifest["dim"]:
                raise ValueError(
                    f"{path}: the bank was built with {manifest['dim']}-dimensional "
                    f"embeddings, but the embeddings given produce {probe} dimensions"
                )
        with bank._lock:
            for record, vector in zip(records, vectors, strict=True):
                bank._catalog.insert(record, vector)
        return bank

    def export_jsonl(self, path: str | os.PathLike[str], *, namespace: str | None = None) -> int:
        """Write strategies as JSON lines, for people to review, edit and version.

        Each line is a whole record (strategy, provenance, counters). The file is
        written beside its target and renamed over it, so readers never see half
        a file.

        Args:
            path: The file to write.
            namespace: Only this namespace; None exports every namespace.

        Returns:
            How many strategies were written.
        """
        records = self.records(namespace)
        _write_durably(Path(path), "".join(r.model_dump_json() + "\n" for r in records))
        return len(records)

    def import_jsonl(
        self, path: str | os.PathLike[str], *, namespace: str | None = None
    ) -> list[StrategyRecord]:
        """Add strategies from a JSON-lines file, embedding them anew.

        Each line is a record (as :meth:`export_jsonl` writes it, counters kept)
        or a bare strategy (``title``, ``applies_when``, ``steps``, ``pitfalls``).
        A record's id is recomputed from its content, so edited strategies get
        ids that match their text. Imports are deduplicated like any write.

        Args:
            path: The file to read.
            namespace: Put every strategy in this namespace; None keeps each
                record's own (bare strategies go to the default namespace).

        Returns:
            The records now holding the imported strategies, in file order.

        Raises:
            ValueError: If a line is neither a record nor a strategy (the message
                names the line); nothing is imported then.
        """
        records = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        records.append(_imported(json.loads(line), namespace))
                    except (json.JSONDecodeError, ValidationError) as exc:
                        raise ValueError(f"{path}, line {number}: {exc}") from exc
        vectors = self.embeddings.embed_documents([r.key_text for r in records])
        return [self._write(r, _unit(v)) for r, v in zip(records, vectors, strict=True)]


def _imported(data: Any, namespace: str | None) -> StrategyRecord:
    if isinstance(data, dict) and "strategy" in data:
        record = StrategyRecord.model_validate(data)
    else:
        record = StrategyRecord.create(Strategy.model_validate(data))
    space = _check_namespace(namespace or record.namespace)
    return record.model_copy(update={"namespace": space, "id": content_id(record.strategy, space)})


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    return manifest


def _write_durably(path: Path, text: str) -> None:
    """Write a file through a temporary sibling, synced, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class StrategyRetriever(BaseRetriever):
    """A LangChain retriever over a :class:`StrategyBank`.

    Each document's ``page_content`` is a strategy's text; its metadata carries the
    strategy id, namespace, title and similarity ``score``.

    Args:
        bank: The bank to search.
        k: How many strategies to return (overridable per call: ``invoke(q, k=1)``).
        score_threshold: Drop strategies below this similarity.
        namespace: The namespace to search.
        search_type: ``"similarity"`` or ``"mmr"`` (diverse strategies).
        lambda_mult: With MMR, 1 favours similarity and 0 diversity.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    bank: StrategyBank
    k: int = Field(default=2, ge=1)
    score_threshold: float | None = None
    namespace: str = DEFAULT_NAMESPACE
    search_type: SearchType = "similarity"
    lambda_mult: float = Field(default=0.5, ge=0.0, le=1.0)

    def _search_kwargs(self, k: int | None) -> dict[str, Any]:
        return {
            "k": k or self.k,
            "score_threshold": self.score_threshold,
            "namespace": self.namespace,
            "search_type": self.search_type,
            "lambda_mult": self.lambda_mult,
        }

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = self.bank.search(query, **self._search_kwargs(k))
        return [_to_document(item) for item in found]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        found = await self.bank.asearch(query, **self._search_kwargs(k))
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
