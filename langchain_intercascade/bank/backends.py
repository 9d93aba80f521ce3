"""The storage backend a bank's options name: :func:`open_catalog`."""

from __future__ import annotations

from langchain_core.vectorstores import VectorStore
from langgraph.store.base import BaseStore

from langchain_intercascade.bank.catalog import _Catalog, _is_instance
from langchain_intercascade.bank.chroma_catalog import _ChromaCatalog
from langchain_intercascade.bank.faiss_catalog import IndexType, _FaissCatalog, check_index_type
from langchain_intercascade.bank.local_catalog import _LocalCatalog
from langchain_intercascade.bank.store_catalog import _StoreCatalog


def open_catalog(
    vectorstore: VectorStore | None,
    store: BaseStore | None,
    store_prefix: tuple[str, ...],
    index_type: IndexType,
) -> _Catalog:
    """A LangGraph store, a Chroma store, another vector store, or FAISS indexes of the bank's own.

    Raises:
        ValueError: If both ``vectorstore`` and ``store`` are given, or
            ``index_type`` is unknown or not flat with either of them.
    """
    if vectorstore is not None and store is not None:
        raise ValueError("give the bank a vectorstore or a store, not both")
    check_index_type(index_type)
    if index_type != "flat" and (vectorstore is not None or store is not None):
        raise ValueError("index_type applies to the bank's own FAISS indexes, not to a store")
    if store is not None:
        return _StoreCatalog(store, store_prefix)
    if vectorstore is not None and _is_instance(vectorstore, "langchain_chroma", "Chroma"):
        return _ChromaCatalog(vectorstore)
    if vectorstore is not None:
        return _LocalCatalog(vectorstore)
    return _FaissCatalog(index_type)
