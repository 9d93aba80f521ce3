"""Serve the cascade: the LangGraph server's graph factory.

``langgraph.json`` at the repository root points ``langgraph dev`` at
:func:`make_graph`, so ``langgraph dev --host 127.0.0.1 --no-browser`` serves the
cascade as the assistant ``intercascade``, built from
:class:`~langchain_intercascade.settings.CascadeSettings` read from
``INTERCASCADE_*`` variables. Models and bank are built once per process; the
bank is saved after every run that changed it.
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
from langchain_intercascade.graph import InterCascadeGraph, create_intercascade
from langchain_intercascade.settings import CascadeSettings


def bank_fingerprint(bank: StrategyBank) -> str:
    """A digest of the bank's records, to tell whether a run changed the bank."""
    digest = hashlib.sha256()
    for record in bank.records():
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


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

    Args:
        config: The run's config (the server passes it; unused).

    Yields:
        The cascade graph.
    """
    served = await asyncio.to_thread(_served)  # loading models blocks: keep the loop free
    try:
        yield served.graph
    finally:
        await asyncio.to_thread(served.save_if_changed)
