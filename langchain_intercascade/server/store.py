"""The served bank in the LangGraph server's own store (``INTERCASCADE_BANK=store``).

``langgraph.store.json`` serves the cascade with ``INTERCASCADE_BANK=store`` and
gives the server's store a semantic index over the strategies' ``key_text``,
embedded by :data:`langchain_intercascade.server.store_index.embeddings`:

```text
INTERCASCADE_FAKE=1 langgraph dev --config langgraph.store.json --host 127.0.0.1 --no-browser
```

Strategies are then items of the store the server already has: ``langgraph dev``'s
in-memory one (kept in ``./.langgraph_api``), PostgreSQL with pgvector on the
LangGraph platform. Nothing else is needed, no bank folder is written, and every
replica reads and writes the same strategies.

The server hands the graph factory its store with each call (``runtime.store``,
LangGraph's ``ServerRuntime``); :func:`~langchain_intercascade.server.make_graph`
builds one bank on each store object it is given (:func:`server_bank`) and keeps
it. The store it gets does not say how its index was configured (``langgraph dev``
hands over a batching wrapper), so :class:`ServerStore` tells the bank: the index
embeds with :func:`served_embeddings`, the very object the bank embeds with.

The index's ``dims`` in the config must be those embeddings' size: 256 for the
scripted world (``INTERCASCADE_FAKE=1``, :class:`~.testing.BagOfWordsEmbeddings`),
384 for all-MiniLM-L6-v2 (:func:`~.models.local_embeddings` with the
``huggingface`` extra), or the GGUF model's embedding size when it stands in.
``langgraph dev``'s store does not check it; PostgreSQL does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langgraph.store.base import NOT_PROVIDED, BaseStore, Item, NotProvided, Op, Result, SearchItem

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.settings import ENV_PREFIX, CascadeSettings, ConfigurationError

KEY_FIELD = "key_text"
"""The one field of a strategy item that the store's index embeds."""


@lru_cache(maxsize=1)
def served_embeddings() -> Embeddings:
    """The embeddings of the served store bank and of its store's index: one object for both.

    Those of :meth:`CascadeSettings.embeddings` for the ``INTERCASCADE_*``
    settings: bag-of-words with the scripted models, else local embeddings.

    Returns:
        The embeddings.

    Raises:
        ConfigurationError: If the settings are invalid or no offline embeddings
            are available.
    """
    return CascadeSettings.from_env().embeddings()


class ServerStore(BaseStore):
    """A LangGraph server's store as a bank sees it: its operations, and the index it was given.

    Each operation goes to the server's store's own method of that name, which an
    async store runs on its event loop when called from another thread, as the
    bank calls it.

    Args:
        store: The server's store, as the graph factory receives it.
        embeddings: The embeddings the deployment's ``store.index`` embeds with.

    Attributes:
        server_store: The server's store.
        embeddings: The index's embeddings.
        index_config: The index: its dimensions and the field it embeds.

    Example:
        ```python
        from langgraph.store.memory import InMemoryStore

        from langchain_intercascade.bank import StrategyBank
        from langchain_intercascade.server.store import ServerStore
        from langchain_intercascade.strategies import Strategy
        from langchain_intercascade.testing import BagOfWordsEmbeddings

        embeddings = BagOfWordsEmbeddings()
        server = InMemoryStore(index={"embed": embeddings, "dims": 256, "fields": ["key_text"]})
        bank = StrategyBank.from_store(ServerStore(server, embeddings))
        bank.add(Strategy(title="Percent", applies_when="a discount", steps=["Multiply"]))
        (item,) = server.search(("intercascade", "default"), query="a discount")
        print(item.value["strategy"]["title"])  # Percent
        ```
    """

    def __init__(self, store: BaseStore, embeddings: Embeddings) -> None:
        self.server_store = store
        self.embeddings = embeddings
        dims = len(embeddings.embed_query("dimensions"))
        self.index_config = {"dims": dims, "embed": embeddings, "fields": [KEY_FIELD]}

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations on the server's store."""
        return self.server_store.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run operations on the server's store, asynchronously."""
        return await self.server_store.abatch(ops)

    def get(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """An item of the server's store."""
        return self.server_store.get(namespace, key, refresh_ttl=refresh_ttl)

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Search the server's store.

        Raises:
            ConfigurationError: If a query's hits are all unscored: the server's
                store has no semantic index.
        """
        found = self.server_store.search(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )
        # An indexed store scores what it ranks; an unindexed one ignores the query.
        if query is not None and found and all(item.score is None for item in found):
            raise ConfigurationError(
                f"{ENV_PREFIX}BANK=store, but the server's store has no semantic index: "
                "serve with langgraph.store.json (its store.index)"
            )
        return found

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | None | NotProvided = NOT_PROVIDED,
    ) -> None:
        """Put an item in the server's store."""
        self.server_store.put(namespace, key, value, index, ttl=ttl)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete an item of the server's store."""
        self.server_store.delete(namespace, key)


def server_bank(store: BaseStore, embeddings: Embeddings | None = None) -> StrategyBank:
    """A strategy bank in a LangGraph server's store.

    Args:
        store: The server's store (the graph factory's ``runtime.store``).
        embeddings: The embeddings its ``store.index`` embeds with; None uses
            :func:`served_embeddings`, which ``langgraph.store.json`` names.

    Returns:
        The bank, its strategies under ``("intercascade", <namespace>)``.
    """
    return StrategyBank.from_store(ServerStore(store, embeddings or served_embeddings()))
