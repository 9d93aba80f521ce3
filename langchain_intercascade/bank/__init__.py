"""The strategy bank: distilled strategies in a LangChain vector store.

:class:`StrategyBank` wraps FAISS (the default), ``InMemoryVectorStore``, any
other LangChain store, Chroma, or a LangGraph store with a semantic index
(``InMemoryStore``, ``PostgresStore``), which several processes can share, or
a :class:`BankBackend` of your own;
:class:`StrategyRetriever` exposes it as a standard LangChain retriever.

Modules:
    strategy_bank: ``StrategyBank``, the public methods (writes, outcome
        counters, search, save and load), delegating to the modules below.
    writes: ``_Writer``, the write path: a batch of strategies validated,
        deduplicated as if added one by one, inserted in one call and evicted
        past ``max_size``, all or nothing; ``DedupPolicy`` and its option checks.
    search: the search path: ``SearchType``, option checks, nearest strategies
        ranked by similarity and usefulness or picked by MMR.
    stats: ``BankStats`` and how ``StrategyBank.stats`` computes it.
    backend: ``BankBackend``, what a storage backend must provide (subclass it
        to add one), with ``BackendHit`` and the helpers the backends share.
    backends: ``open_backend``, the backend a bank's arguments name: the one
        given, or a built-in.
    vectorstore_backend: ``_VectorStoreBackend``, records in this process indexed by FAISS
        or any other LangChain vector store.
    chroma_backend: ``_ChromaBackend``, records in a Chroma collection shared
        between processes.
    store_backend: ``_StoreBackend``, records as items of a LangGraph
        ``BaseStore``, searched with the store's semantic index.
    persistence: Saved folders (manifest with checksums, JSONL records, ``.npy``
        vectors), written crash-safely and checked on load
        (``BankCorruptedError``) into a new bank, and JSON-lines export and import.
    retriever: ``StrategyRetriever``, strategies as LangChain ``Document`` objects.
    namespaces: ``DEFAULT_NAMESPACE`` and ``run_namespace``, the namespace a run's config names.
"""

from langchain_intercascade.bank.backend import BackendHit, BankBackend
from langchain_intercascade.bank.namespaces import DEFAULT_NAMESPACE, NAMESPACE_KEY, run_namespace
from langchain_intercascade.bank.persistence import FORMAT_VERSION, BankCorruptedError
from langchain_intercascade.bank.retriever import StrategyRetriever
from langchain_intercascade.bank.search import SearchType
from langchain_intercascade.bank.stats import BankStats
from langchain_intercascade.bank.strategy_bank import StrategyBank
from langchain_intercascade.bank.writes import DedupPolicy

__all__ = [
    "DEFAULT_NAMESPACE",
    "FORMAT_VERSION",
    "NAMESPACE_KEY",
    "BackendHit",
    "BankBackend",
    "BankCorruptedError",
    "BankStats",
    "DedupPolicy",
    "SearchType",
    "StrategyBank",
    "StrategyRetriever",
    "run_namespace",
]
