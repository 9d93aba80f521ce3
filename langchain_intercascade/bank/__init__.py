"""The strategy bank: distilled strategies in a LangChain vector store.

:class:`StrategyBank` wraps FAISS (the default), ``InMemoryVectorStore``, any
other LangChain store, Chroma, or a LangGraph store with a semantic index
(``InMemoryStore``, ``PostgresStore``), which several processes can share;
:class:`StrategyRetriever` exposes it as a standard LangChain retriever.

Modules:
    strategy_bank: ``StrategyBank`` (writes with dedup and eviction, outcome
        counters, search) with its options and ``BankStats``.
    catalog: ``_Catalog``, what a storage backend must provide, with ``_Hit``
        and the vector and namespace helpers the backends share.
    local_catalog: ``_LocalCatalog``, records in this process indexed by FAISS
        or any other LangChain vector store.
    chroma_catalog: ``_ChromaCatalog``, records in a Chroma collection shared
        between processes.
    store_catalog: ``_StoreCatalog``, records as items of a LangGraph
        ``BaseStore``, searched with the store's semantic index.
    persistence: Saved folders (manifest, JSONL records, ``.npy`` vectors) and
        JSON-lines export and import, written crash-safely.
    retriever: ``StrategyRetriever``, strategies as LangChain ``Document`` objects.
    namespaces: ``run_namespace``, the namespace a run's config names.
"""

from langchain_intercascade.bank.namespaces import NAMESPACE_KEY, run_namespace
from langchain_intercascade.bank.persistence import FORMAT_VERSION
from langchain_intercascade.bank.retriever import StrategyRetriever
from langchain_intercascade.bank.strategy_bank import (
    DEFAULT_NAMESPACE,
    BankStats,
    DedupPolicy,
    SearchType,
    StrategyBank,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "FORMAT_VERSION",
    "NAMESPACE_KEY",
    "BankStats",
    "DedupPolicy",
    "SearchType",
    "StrategyBank",
    "StrategyRetriever",
    "run_namespace",
]
