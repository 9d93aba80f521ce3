"""The strategy bank: distilled strategies in a LangChain vector store.

:class:`StrategyBank` wraps FAISS (the default), ``InMemoryVectorStore``, any
other LangChain store, or Chroma, which several processes can share;
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
    persistence: Saved folders (manifest with checksums, JSONL records, ``.npy``
        vectors), written crash-safely and checked on load
        (``BankCorruptedError``), and JSON-lines export and import.
    retriever: ``StrategyRetriever``, strategies as LangChain ``Document`` objects.
"""

from langchain_intercascade.bank.persistence import FORMAT_VERSION, BankCorruptedError
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
    "BankCorruptedError",
    "BankStats",
    "DedupPolicy",
    "SearchType",
    "StrategyBank",
    "StrategyRetriever",
]
