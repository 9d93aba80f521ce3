"""The storage backend a bank's options name: :func:`open_backend`."""

from __future__ import annotations

from langchain_core.vectorstores import VectorStore
from langgraph.store.base import BaseStore

from langchain_intercascade.bank.backend import BankBackend, _is_a
from langchain_intercascade.bank.chroma_backend import _ChromaBackend
from langchain_intercascade.bank.faiss_backend import IndexType, _FaissBackend, check_index_type
from langchain_intercascade.bank.store_backend import _StoreBackend
from langchain_intercascade.bank.vectorstore_backend import _VectorStoreBackend


def open_backend(
    backend: BankBackend | None,
    vectorstore: VectorStore | None,
    store: BaseStore | None,
    store_prefix: tuple[str, ...],
    index_type: IndexType,
) -> BankBackend:
    """The bank's backend: the one given, else the built-in its other arguments name.

    A LangGraph store, a Chroma store, another vector store, or (none of them)
    FAISS indexes of the bank's own.

    Raises:
        TypeError: If ``backend`` is not a :class:`BankBackend`.
        ValueError: If more than one of ``backend``, ``vectorstore`` and ``store``
            is given, or ``index_type`` is unknown or not flat with one of them.
    """
    given = [
        n
        for n, v in (("backend", backend), ("vectorstore", vectorstore), ("store", store))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"give the bank one of backend, vectorstore and store, not {' and '.join(given)}"
        )
    check_index_type(index_type)
    if index_type != "flat" and given:
        raise ValueError(f"index_type applies to the bank's own FAISS indexes, not to a {given[0]}")
    if backend is not None:
        if not isinstance(backend, BankBackend):
            raise TypeError(f"backend must be a BankBackend, got {type(backend).__name__}")
        return backend
    if store is not None:
        return _StoreBackend(store, store_prefix)
    if vectorstore is not None and _is_a(vectorstore, "langchain_chroma", "Chroma"):
        return _ChromaBackend(vectorstore)
    if vectorstore is not None:
        return _VectorStoreBackend(vectorstore)
    return _FaissBackend(index_type)
