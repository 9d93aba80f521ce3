"""The deployment wing: the cascade served by the LangGraph server.

- :mod:`~langchain_intercascade.server.graph`: the graph factory ``langgraph.json``
  names (``langchain_intercascade.server:make_graph``) and the binding of an
  authenticated caller to its bank namespace;
- :mod:`~langchain_intercascade.server.auth`: an example LangGraph auth (API keys, one
  tenant each; ``langgraph.auth.json``), which only the server loads;
- :mod:`~langchain_intercascade.server.store`: the bank in the server's own store
  (``INTERCASCADE_BANK=store``, ``langgraph.store.json``);
- :mod:`~langchain_intercascade.server.store_index`: the embeddings file that store's
  index names.
- :mod:`~langchain_intercascade.server.openai`: the OpenAI-compatible endpoint
  (``/v1/chat/completions``, ``/v1/models``) that every config mounts.
"""

from langchain_intercascade.server.graph import (
    AUTH_USER_ID_KEY,
    Cascade,
    ForeignNamespaceError,
    caller_namespace,
    make_graph,
)

__all__ = ["AUTH_USER_ID_KEY", "Cascade", "ForeignNamespaceError", "caller_namespace", "make_graph"]
