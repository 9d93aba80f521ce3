"""Serve the cascade: the LangGraph server's graph factory.

``langgraph.json`` at the repository root points ``langgraph dev`` at
:func:`make_graph`, so ``langgraph dev --host 127.0.0.1 --no-browser`` serves the
cascade as the assistant ``intercascade``, built from
:class:`~langchain_intercascade.settings.CascadeSettings` read from
``INTERCASCADE_*`` variables. Models and bank are built once per process; the
bank is saved after every run that changed it.

Behind LangGraph's auth (``langgraph.auth.json``, with the example
:mod:`~langchain_intercascade.server_auth`), each run reads and writes only the
bank namespace of its authenticated caller (:func:`caller_namespace`): the
caller's identity, which the server puts in ``configurable["langgraph_auth_user_id"]``
and clients cannot set. A run whose config names another
``strategy_namespace`` is refused rather than silently redirected, so that a
client that thinks it reads a shared namespace learns that it does not. Without
auth, runs use the namespace their config names, as anywhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

from langchain_core.runnables import RunnableConfig

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.graph import (
    NAMESPACE_KEY,
    InterCascadeGraph,
    create_intercascade,
    run_namespace,
)
from langchain_intercascade.settings import CascadeSettings


def bank_fingerprint(bank: StrategyBank) -> str:
    """A digest of the bank's records, to tell whether a run changed the bank."""
    digest = hashlib.sha256()
    for record in bank.records():
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


# -- the caller's namespace ----------------------------------------------------

AUTH_USER_ID_KEY = "langgraph_auth_user_id"
"""The ``configurable`` key where the LangGraph server puts the authenticated caller's identity."""


class ForeignNamespaceError(PermissionError):
    """An authenticated caller named a bank namespace other than its own."""


def caller_namespace(config: RunnableConfig | None) -> str | None:
    """The bank namespace a served run is bound to: its authenticated caller's identity.

    Args:
        config: The run's config, as the LangGraph server passes it.

    Returns:
        The identity in ``configurable["langgraph_auth_user_id"]``; None when the
        run has no authenticated caller (the server runs without auth).

    Raises:
        ForeignNamespaceError: If ``configurable["strategy_namespace"]`` names
            another namespace.
        ValueError: If the identity cannot be a namespace (a lone surrogate).

    Example:
        ```python
        from langchain_intercascade.server import ForeignNamespaceError, caller_namespace

        run = {"configurable": {"langgraph_auth_user_id": "tenant-a"}}
        assert caller_namespace(run) == "tenant-a"
        assert caller_namespace({"configurable": {"strategy_namespace": "x"}}) is None
        try:
            caller_namespace({"configurable": {**run["configurable"], "strategy_namespace": "x"}})
        except ForeignNamespaceError as refused:
            print(refused)
        else:
            raise AssertionError("another namespace must be refused")
        ```
    """
    configurable = (config or {}).get("configurable") or {}
    # Without auth the server sets an empty identity (or none at all).
    identity = configurable.get(AUTH_USER_ID_KEY)
    if not identity:
        return None
    namespace = run_namespace({"configurable": {NAMESPACE_KEY: identity}})
    claimed = configurable.get(NAMESPACE_KEY)
    if claimed is not None and claimed != namespace:
        raise ForeignNamespaceError(
            f"configurable[{NAMESPACE_KEY!r}] is {claimed!r}, but this server binds "
            f"each caller to its own namespace ({namespace!r}): leave it out"
        )
    return namespace


# -- the served graph ----------------------------------------------------------


class Cascade:
    """A configured cascade with its bank, which it saves to the bank folder when changed.

    Args:
        settings: What to build.

    Attributes:
        settings: The settings it was built from.
        weak: The weak model.
        strong: The strong model.
        bank: The strategy bank.
        graph: The compiled cascade graph.
    """

    def __init__(self, settings: CascadeSettings) -> None:
        self.settings = settings
        self.weak, self.strong = settings.models()
        self.bank = settings.load_bank()
        self.graph = create_intercascade(
            self.weak, self.strong, bank=self.bank, options=settings.options
        )
        self._saved = bank_fingerprint(self.bank)
        self._lock = threading.Lock()

    def save_if_changed(self) -> bool:
        """Save the bank to the bank folder if it changed since it was loaded or saved.

        Returns:
            Whether it was saved.
        """
        folder = self.settings.bank_dir
        if folder is None:
            return False
        with self._lock:  # one writer at a time: concurrent runs can end together
            current = bank_fingerprint(self.bank)
            if current == self._saved:
                return False
            self.bank.save(folder)
            self._saved = current
            return True

    def chat_model(self) -> ChatInterCascade:
        """The same cascade (models, bank, options) as a chat model."""
        return ChatInterCascade(
            weak=self.weak, strong=self.strong, bank=self.bank, options=self.settings.options
        )


_serving = threading.Lock()


@lru_cache(maxsize=1)
def _build_served() -> Cascade:
    return Cascade(CascadeSettings.from_env())


def _served() -> Cascade:
    with _serving:  # concurrent first requests must not load the models twice
        return _build_served()


@asynccontextmanager
async def make_graph(config: RunnableConfig) -> AsyncIterator[InterCascadeGraph]:
    """The LangGraph server's graph factory (see ``langgraph.json``).

    Builds the cascade from ``INTERCASCADE_*`` variables on first use and reuses
    it; after each use, saves the bank to ``INTERCASCADE_BANK_DIR`` if it changed.
    When the server authenticates callers, the graph is bound to the caller's
    namespace (:func:`caller_namespace`).

    Args:
        config: The run's config (the server passes it).

    Yields:
        The cascade graph.

    Raises:
        ForeignNamespaceError: If an authenticated caller's run names another
            caller's namespace.
    """
    namespace = caller_namespace(config)
    served = await asyncio.to_thread(_served)  # loading models blocks: keep the loop free
    graph = served.graph
    if namespace is not None:
        # Run configs override bound ones, but caller_namespace refused any other value.
        graph = graph.with_config(configurable={NAMESPACE_KEY: namespace})
    try:
        yield graph
    finally:
        await asyncio.to_thread(served.save_if_changed)
