"""Serve the cascade: the LangGraph server's graph factory.

``langgraph.json`` at the repository root points ``langgraph dev`` at
:func:`make_graph`, so ``langgraph dev --host 127.0.0.1 --no-browser`` serves the
cascade as the assistant ``intercascade``, built from
:class:`~langchain_intercascade.settings.CascadeSettings` read from
``INTERCASCADE_*`` variables. Models and bank are built once per process; a bank
folder (``INTERCASCADE_BANK_DIR``) is saved after every run that changed it.
Several replicas must not share one folder: each would overwrite the others'
strategies. ``langgraph.store.json`` keeps the bank in the server's own store
instead (``INTERCASCADE_BANK=store``; :mod:`~langchain_intercascade.server.store`),
which every replica shares and which saves each write itself.
``INTERCASCADE_TEACHER_RECORDS`` records the teacher's answers of deferred turns
(:mod:`~langchain_intercascade.teacher_records`): to a JSONL file, or with
``store`` as items of the server's store.

Behind LangGraph's auth (``langgraph.auth.json``, with the example
:mod:`~langchain_intercascade.server.auth`), each run reads and writes only the
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
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.graph import (
    NAMESPACE_KEY,
    InterCascadeGraph,
    create_intercascade,
    run_namespace,
)
from langchain_intercascade.options import CascadeOptions
from langchain_intercascade.server.store import server_bank
from langchain_intercascade.settings import ENV_PREFIX, CascadeSettings, ConfigurationError

if TYPE_CHECKING:
    # The server extra's; the server resolves the annotation itself.
    from langgraph_sdk.runtime import ServerRuntime


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
        from langchain_intercascade.server.graph import ForeignNamespaceError, caller_namespace

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
        bank: The bank; None loads the settings' bank: from ``store`` with
            ``bank="store"``, else the ``local`` one (:meth:`CascadeSettings.load_bank`).
        models: The weak and strong models; None builds them from the settings.
        store: The LangGraph server's store, for a bank or teacher records kept in it.

    Attributes:
        settings: The settings it was built from.
        options: The cascade's options (:meth:`CascadeSettings.cascade_options`).
        weak: The weak model.
        strong: The strong model.
        bank: The strategy bank.
        graph: The compiled cascade graph.
    """

    def __init__(
        self,
        settings: CascadeSettings,
        *,
        bank: StrategyBank | None = None,
        models: tuple[BaseChatModel, BaseChatModel] | None = None,
        store: BaseStore | None = None,
    ) -> None:
        self.settings = settings
        self.options = settings.cascade_options(store)
        self.weak, self.strong = models if models is not None else settings.models()
        if bank is None and store is not None and settings.bank == "store":
            bank = server_bank(store)
        self.bank = bank if bank is not None else settings.load_bank()
        self.graph = create_intercascade(
            self.weak, self.strong, bank=self.bank, options=self.options
        )
        # Only a folder is saved; a store bank would be read whole for nothing.
        self._saved = bank_fingerprint(self.bank) if settings.bank_dir is not None else ""
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
            weak=self.weak, strong=self.strong, bank=self.bank, options=self.options
        )


_serving = threading.Lock()


@lru_cache(maxsize=1)
def _served_settings() -> CascadeSettings:
    return CascadeSettings.from_env()


def served_options() -> CascadeOptions:
    """The served cascade's options, from the ``INTERCASCADE_*`` settings."""
    return _served_settings().options


@lru_cache(maxsize=1)
def _served_models() -> tuple[BaseChatModel, BaseChatModel]:
    return _served_settings().models()


# One cascade per store object; the server keeps one store, so in practice one in all.
@cache
def _build_served(store: BaseStore | None) -> Cascade:
    return Cascade(_served_settings(), models=_served_models(), store=store)


def _served(store: BaseStore | None = None) -> Cascade:
    """The served cascade: on ``store`` when the settings keep the bank or records there."""
    with _serving:  # concurrent first requests must not load the models twice
        settings = _served_settings()
        in_store = [
            f"{ENV_PREFIX}{name.upper()}=store"
            for name in ("bank", "teacher_records")
            if getattr(settings, name) == "store"
        ]
        if not in_store:
            return _build_served(None)
        if store is None:
            raise ConfigurationError(
                f"{' and '.join(in_store)} needs the server's store, which a LangGraph server "
                "(langgraph-api 0.7.30 or later) passes the graph factory"
            )
        return _build_served(store)


@asynccontextmanager
async def make_graph(
    config: RunnableConfig, runtime: ServerRuntime[Any] | None = None
) -> AsyncIterator[InterCascadeGraph]:
    """The LangGraph server's graph factory (see ``langgraph.json``).

    Builds the cascade from ``INTERCASCADE_*`` variables on first use and reuses
    it; after each use, saves the bank to ``INTERCASCADE_BANK_DIR`` if it changed.
    With ``INTERCASCADE_BANK=store`` (``langgraph.store.json``), the bank is in
    the server's store instead, which the server passes as ``runtime.store``:
    one bank is built on each store object and kept, and nothing is saved.
    When the server authenticates callers, the graph is bound to the caller's
    namespace (:func:`caller_namespace`).

    Args:
        config: The run's config (the server passes it).
        runtime: The server's runtime, with its store (the server passes it).

    Yields:
        The cascade graph.

    Raises:
        ForeignNamespaceError: If an authenticated caller's run names another
            caller's namespace.
        ConfigurationError: If the settings are invalid, or the bank is in the
            store and no runtime was given.
    """
    namespace = caller_namespace(config)
    store = runtime.store if runtime is not None else None
    # Loading models and bank blocks: keep the loop free.
    served = await asyncio.to_thread(_served, store)
    graph = served.graph
    if namespace is not None:
        # Run configs override bound ones, but caller_namespace refused any other value.
        graph = graph.with_config(configurable={NAMESPACE_KEY: namespace})
    try:
        yield graph
    finally:
        await asyncio.to_thread(served.save_if_changed)
