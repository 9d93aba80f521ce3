"""The strategy bank: deduplicated, namespaced strategies searchable by similarity.

:class:`StrategyBank` keeps :class:`~langchain_intercascade.strategies.StrategyRecord`
objects searchable by similarity to a query. On write it deduplicates (a strategy
too similar to a stored one in its namespace is merged into it or skipped),
counts how strategies fare in the cascade, and evicts the least useful strategies
past an optional size limit. Scores are always cosine similarities of normalized
embeddings, whatever the store, so thresholds mean the same everywhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langgraph.store.base import BaseStore
from pydantic import ConfigDict, SkipValidation, StrictFloat, StrictInt, validate_call

from langchain_intercascade.bank.backend import BankBackend, _unit, _unit_rows
from langchain_intercascade.bank.backends import open_backend
from langchain_intercascade.bank.faiss_backend import IndexType
from langchain_intercascade.bank.files import BankFiles
from langchain_intercascade.bank.namespaces import DEFAULT_NAMESPACE
from langchain_intercascade.bank.search import SearchType, check_search, search_backend
from langchain_intercascade.bank.stats import BankStats, summarize
from langchain_intercascade.bank.store_backend import DEFAULT_PREFIX, _StoreBackend
from langchain_intercascade.bank.writes import (
    DedupPolicy,
    _as_record,
    _Writer,
    add_counts,
    check_write_options,
)
from langchain_intercascade.guards import DEFAULT_FILTER, StrategyScreen
from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
    check_strategy_id,
)

if TYPE_CHECKING:
    from langchain_intercascade.bank.retriever import StrategyRetriever


def _now() -> datetime:
    return datetime.now(timezone.utc)


class StrategyBank(BankFiles):
    """A searchable, deduplicated collection of distilled strategies.

    Each strategy is indexed by its record's ``key_text``: the query it was
    distilled from (as in the paper) or, when that is not kept, its title and
    when it applies. Every read and write is scoped to a namespace (a tenant or
    task); one namespace never sees another's strategies.

    Methods are thread- and task-safe; banks on a Chroma server or a LangGraph
    ``PostgresStore`` share one set of strategies across processes, dedup included.

    Setup:
        The ``chroma`` and ``postgres`` extras bring stores several processes share:

        ```bash
        pip install -U langchain-intercascade
        pip install -U "langchain-intercascade[chroma]"
        pip install -U "langchain-intercascade[postgres]"
        ```

    Args:
        embeddings: Embeds strategy keys and queries.
        backend: Where records and vectors live, a :class:`BankBackend` of your
            own (see the docs' "Adding a backend"), instead of ``vectorstore`` or
            ``store``.
        vectorstore: A store of the bank's own: ``langchain_chroma.Chroma`` is
            shared between processes; any other keeps records in this process
            (see :meth:`save`). None: one FAISS index per namespace.
        store: A LangGraph ``BaseStore`` with a cosine semantic ``index``, instead
            of ``vectorstore``: one item per strategy under ``(*store_prefix,
            namespace)`` (see :meth:`from_store`).
        store_prefix: The store namespace the strategies live under.
        dedup_threshold: A new strategy at least this cosine-similar to a stored
            one of its namespace is a near-duplicate (None: no dedup); the scale
            depends on the embedding model (benchmarks/bank).
        dedup_policy: What happens to a near-duplicate: ``"merge"`` folds it into
            the stored strategy (new pitfalls and counters added, ``variants``
            counted); ``"skip"`` drops it.
        max_size: At most this many strategies per namespace; past it, the least
            useful strategies are evicted, the least recently used first among
            equals. None keeps every strategy.
        index_type: Each namespace's FAISS index: ``"flat"`` (exact, default),
            ``"hnsw"`` (approximate, fast in large namespaces; a delete rebuilds
            it) or ``"ivf"`` (approximate, trained from 4,096 strategies);
            speed and recall in benchmarks/bank.

    Raises:
        TypeError: If ``embeddings`` is not a LangChain ``Embeddings``.
        ValueError: If an option has the wrong type (a ``pydantic.ValidationError``
            naming it) or is out of range, more than one of ``backend``,
            ``vectorstore`` and ``store`` is given, ``index_type`` is not flat
            with one of them, or ``store`` has no cosine semantic index.

    Instantiate:
        Any LangChain ``Embeddings`` (``BagOfWordsEmbeddings`` is an offline stand-in):

        ```python
        from langchain_intercascade.bank import StrategyBank
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        bank = StrategyBank(BagOfWordsEmbeddings(), dedup_threshold=0.9, max_size=500)
        ```

    Add and search:
        ```python
        from langchain_intercascade.bank import StrategyBank
        from langchain_intercascade.strategies import Strategy
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        bank = StrategyBank(BagOfWordsEmbeddings())
        strategy = Strategy(
            title="Unit price",
            applies_when="A price is asked per unit of weight",
            steps=["Divide the total price by the weight"],
        )
        bank.add(strategy, source_query="What do apples cost per kilogram?")
        found = bank.search("What do pears cost per kilogram?", k=1)
        print(found[0].record.strategy.title, round(found[0].score, 2))  # Unit price 0.83
        ```

    Async:
        ```python
        import asyncio

        from langchain_intercascade.bank import StrategyBank
        from langchain_intercascade.strategies import Strategy, StrategyRecord
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        async def main() -> None:
            bank = StrategyBank(BagOfWordsEmbeddings())
            strategy = Strategy(title="Speed", applies_when="distance and time", steps=["d / t"])
            record = await bank.aadd(StrategyRecord.create(strategy, namespace="physics"))
            found = await bank.asearch("distance over time", namespace="physics")
            await bank.arecord_outcome([f.record.id for f in found], accepted=True)
            print(bank.get(record.id).times_accepted)  # 1

        asyncio.run(main())
        ```

    Use as retriever:
        ```python
        from langchain_intercascade.bank import StrategyBank
        from langchain_intercascade.strategies import Strategy
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        bank = StrategyBank(BagOfWordsEmbeddings())
        bank.add(Strategy(title="Percent", applies_when="a discount", steps=["Multiply"]))
        retriever = bank.as_retriever(k=1, score_threshold=0.2)
        print(retriever.invoke("a ten percent discount")[0].metadata["title"])  # Percent
        ```
    """

    # Strict numbers: "3", 2.5 or True for a size is a configuration error, named.
    # The models, stores and named choices are checked by their own code and errors.
    @validate_call(config=ConfigDict(arbitrary_types_allowed=True))
    def __init__(
        self,
        embeddings: SkipValidation[Embeddings],
        *,
        backend: SkipValidation[BankBackend | None] = None,
        vectorstore: SkipValidation[VectorStore | None] = None,
        store: SkipValidation[BaseStore | None] = None,
        store_prefix: tuple[str, ...] = DEFAULT_PREFIX,
        dedup_threshold: StrictFloat | StrictInt | None = 0.9,
        dedup_policy: SkipValidation[DedupPolicy] = "merge",
        max_size: StrictInt | None = None,
        index_type: SkipValidation[IndexType] = "flat",
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                f"embeddings must be a langchain_core Embeddings, got {type(embeddings).__name__}"
            )
        check_write_options(dedup_threshold, dedup_policy, max_size)
        self._backend = open_backend(backend, vectorstore, store, store_prefix, index_type)
        self.embeddings = embeddings
        self.dedup_threshold = dedup_threshold
        self.dedup_policy = dedup_policy
        self.max_size = max_size
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return self._backend.count()

    def __repr__(self) -> str:
        store = self.store or self.vectorstore
        return f"StrategyBank({len(self)} strategies, store={type(store).__name__})"

    @property
    def vectorstore(self) -> VectorStore | None:
        """The LangChain vector store given to the bank (None with its own FAISS indexes)."""
        return self._backend.store

    @property
    def store(self) -> BaseStore | None:
        """The LangGraph store the strategies live in (None without ``store=``)."""
        return self._backend.base_store if isinstance(self._backend, _StoreBackend) else None

    @classmethod
    def from_store(
        cls, store: BaseStore, *, embeddings: Embeddings | None = None, **kwargs: Any
    ) -> StrategyBank:
        """A bank in a LangGraph store, embedding with the store's own index by default.

        Args:
            store: A store built with a semantic ``index`` (``InMemoryStore``,
                ``PostgresStore`` after its ``setup()``).
            embeddings: The bank's embeddings; None uses those of the store's
                index, so that the bank and the store embed alike.
            **kwargs: Other :class:`StrategyBank` options (``store_prefix``,
                ``dedup_threshold``, ``dedup_policy``, ``max_size``).

        Returns:
            The bank.

        Raises:
            ValueError: If the store has no semantic index (or one that does
                not rank by cosine similarity).

        Example:
            ```python
            from langgraph.store.memory import InMemoryStore

            from langchain_intercascade.bank import StrategyBank
            from langchain_intercascade.strategies import Strategy
            from langchain_intercascade.testing import BagOfWordsEmbeddings

            store = InMemoryStore(index={"embed": BagOfWordsEmbeddings(), "dims": 256})
            bank = StrategyBank.from_store(store, max_size=100)
            bank.add(Strategy(title="Percent", applies_when="a discount", steps=["Multiply"]))
            print(bank.search("a ten percent discount")[0].record.strategy.title)  # Percent
            ```
        """
        if embeddings is None:
            embeddings = getattr(store, "embeddings", None)
            if embeddings is None:
                raise ValueError(
                    f"the {type(store).__name__} has no semantic index to search strategies by: "
                    "build it with index={'embed': embeddings, 'dims': ...}"
                )
        return cls(embeddings, store=store, **kwargs)

    # -- inspect ----------------------------------------------------------------

    def records(self, namespace: str | None = None) -> list[StrategyRecord]:
        """List stored strategies, oldest first.

        Args:
            namespace: Only this namespace; None lists every namespace.

        Returns:
            The records.
        """
        with self._lock:
            found = self._backend.records(namespace)
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def get(self, strategy_id: str) -> StrategyRecord | None:
        """Look up a strategy by id.

        Args:
            strategy_id: The record's id.

        Returns:
            The record, or None if there is no such strategy.
        """
        with self._lock:
            found = self._backend.get([strategy_id])
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
        return summarize(self.records(namespace), top)

    def delete(self, strategy_ids: Sequence[str]) -> int:
        """Remove strategies.

        Args:
            strategy_ids: The ids to remove; unknown ids are ignored.

        Returns:
            How many strategies were removed.
        """
        with self._lock, self._backend.exclusive():
            known = [r.id for r in self._backend.get(list(dict.fromkeys(strategy_ids)))]
            self._backend.delete(known)
        return len(known)

    # -- writes -------------------------------------------------------------------

    def add(
        self,
        strategy: Strategy | StrategyRecord,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        source_query: str | None = None,
        model: str | None = None,
        strategy_filter: StrategyScreen | None = DEFAULT_FILTER,
    ) -> StrategyRecord:
        """Store a strategy, unless it duplicates a stored one.

        The strategy itself is not screened (the cascade screens what it
        distils); a merge into a near-duplicate adds each new pitfall only if
        ``strategy_filter`` passes the merged strategy.

        Args:
            strategy: A strategy, or a ready record (whose own namespace and
                provenance are then kept).
            namespace: The namespace to store it under.
            source_query: The query it was distilled from (None keeps it private).
            model: The name of the model that wrote it.
            strategy_filter: Screens a merge's pitfalls: the cascade passes its
                own ``strategy_filter``; None adds every new pitfall.

        Returns:
            The record that now holds the strategy: the new one, or the stored
            one it was merged into or skipped for.

        Raises:
            TypeError: If ``strategy`` is neither a Strategy nor a StrategyRecord.
            ValueError: If the namespace is empty, a record's id is malformed
                (see ``strategies.check_strategy_id``), or the embeddings return an
                empty, all-zero or non-finite vector, or one of another width
                than the stored ones; nothing is stored then.
            Exception: Whatever the store raises, with the bank as it was: a
                write that fails halfway is rolled back, and an eviction past
                ``max_size`` that fails refuses the add. Should taking the new
                strategy back fail too, that error is raised, and the namespace
                holds one strategy past ``max_size`` until a later write evicts.
        """
        record = _as_record(strategy, namespace, source_query, model)
        stored = self.get(record.id)
        if stored is not None:
            return stored
        vectors = self.embeddings.embed_documents([record.key_text])
        unit = _unit_rows(vectors, 1, f"strategy {record.id}")
        return self._write([record], unit, strategy_filter)[0]

    async def aadd(
        self,
        strategy: Strategy | StrategyRecord,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        source_query: str | None = None,
        model: str | None = None,
        strategy_filter: StrategyScreen | None = DEFAULT_FILTER,
    ) -> StrategyRecord:
        """Async :meth:`add`: embeds with ``aembed_documents``, writes in a worker thread."""
        record = _as_record(strategy, namespace, source_query, model)
        stored = await asyncio.to_thread(self.get, record.id)
        if stored is not None:
            return stored
        vectors = await self.embeddings.aembed_documents([record.key_text])
        unit = _unit_rows(vectors, 1, f"strategy {record.id}")
        return (await asyncio.to_thread(self._write, [record], unit, strategy_filter))[0]

    def _write(
        self,
        records: Sequence[StrategyRecord],
        vectors: np.ndarray,
        strategy_filter: StrategyScreen | None,
    ) -> list[StrategyRecord]:
        """Store records with their unit vectors, all or nothing (see ``bank.writes``)."""
        for record in records:  # a record copied with a new id skipped its validation
            check_strategy_id(record.id)
        writer = _Writer(
            self._backend,
            dedup_threshold=self.dedup_threshold,
            dedup_policy=self.dedup_policy,
            max_size=self.max_size,
            screen=strategy_filter,
        )
        with self._lock, self._backend.exclusive():
            return writer.write(records, vectors)

    # -- usefulness feedback ------------------------------------------------------

    def record_outcome(self, strategy_ids: Sequence[str], *, accepted: bool) -> None:
        """Count how the cascade fared after retrieving strategies.

        Args:
            strategy_ids: The strategies shown to the weak model.
            accepted: True if the weak answer was accepted, False if the query
                was deferred to the strong model.
        """
        outcome = "times_accepted" if accepted else "times_deferred"
        with self._lock, self._backend.exclusive():
            add_counts(self._backend, strategy_ids, {"times_retrieved": 1, outcome: 1}, _now())

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
        with self._lock, self._backend.exclusive():
            counts = {"helpful" if helpful else "harmful": 1}
            updated = add_counts(self._backend, [strategy_id], counts, None)
        return updated[0] if updated else None

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
            ValueError: If an option is out of range, or the embeddings return an
                empty, all-zero or non-finite vector or one of another width than
                the stored ones.
        """
        check_search(k, namespace, search_type, lambda_mult)
        if self._empty():
            return []
        vector = _unit(self.embeddings.embed_query(query), "the query")
        return search_backend(
            self._backend, self._lock, query, vector, k, score_threshold, namespace,
            search_type, fetch_k, lambda_mult,
        )  # fmt: skip

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
        check_search(k, namespace, search_type, lambda_mult)
        if await asyncio.to_thread(self._empty):
            return []
        vector = _unit(await self.embeddings.aembed_query(query), "the query")
        return await asyncio.to_thread(
            search_backend, self._backend, self._lock, query, vector, k, score_threshold,
            namespace, search_type, fetch_k, lambda_mult,
        )  # fmt: skip

    def _empty(self) -> bool:
        with self._lock:
            return self._backend.empty()

    def as_retriever(self, **kwargs: Any) -> StrategyRetriever:
        """Expose the bank as a LangChain retriever.

        Args:
            **kwargs: :class:`StrategyRetriever` fields (``k``, ``score_threshold``,
                ``namespace``, ``search_type``, ``lambda_mult``).

        Returns:
            A retriever over this bank.
        """
        # Imported here: the retriever module needs this one for its field type.
        from langchain_intercascade.bank.retriever import StrategyRetriever

        return StrategyRetriever(bank=self, **kwargs)
