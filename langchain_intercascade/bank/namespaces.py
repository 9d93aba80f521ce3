"""Which bank namespace a run reads and writes: ``configurable["strategy_namespace"]``."""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore, Item

from langchain_intercascade.strategies import to_well_formed

DEFAULT_NAMESPACE = "default"
"""The namespace of a bank's strategies when a run names none."""

NAMESPACE_KEY = "strategy_namespace"
"""The ``configurable`` key that scopes a run's strategy reads and writes."""


def run_namespace(config: RunnableConfig | None, default: str = DEFAULT_NAMESPACE) -> str:
    """The strategy namespace of a run.

    Args:
        config: The run's config.
        default: The namespace when the config names none.

    Returns:
        ``config["configurable"]["strategy_namespace"]``, else ``default``.

    Raises:
        ValueError: If the configured namespace is not a non-empty string (a
            mistyped tenant id must not fall back to a shared namespace), or holds
            a lone surrogate (no strategy could be stored under it).
    """
    namespace = ((config or {}).get("configurable") or {}).get(NAMESPACE_KEY)
    if namespace is None:
        return default
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(
            f"configurable[{NAMESPACE_KEY!r}] must be a non-empty string, got {namespace!r}"
        )
    if to_well_formed(namespace) != namespace:
        raise ValueError(f"configurable[{NAMESPACE_KEY!r}] holds a lone surrogate: {namespace!r}")
    return namespace


def store_label(namespace: str) -> str:
    """A namespace as one label of a LangGraph store namespace, which holds neither "." nor NUL.

    Percent-encoded, so that two namespaces never share a label.

    Args:
        namespace: A bank namespace (a tenant).

    Returns:
        The label.

    Example:
        ```python
        from langchain_intercascade.bank.namespaces import store_label

        assert store_label("acme.com") == "acme%2Ecom"
        assert store_label("50%.off") == "50%25%2Eoff"
        ```
    """
    return namespace.replace("%", "%25").replace(".", "%2E").replace("\x00", "%00")


_PAGE = 1000


def store_items(store: BaseStore, namespace_prefix: tuple[str, ...]) -> list[Item]:
    """Every item of a LangGraph store under a namespace prefix, each once.

    Read page by page; a page read while another process writes may repeat an
    item, which is kept once.

    Args:
        store: The store.
        namespace_prefix: The namespace prefix to list.

    Returns:
        The items, in the store's order.
    """
    found: dict[tuple[tuple[str, ...], str], Item] = {}
    offset = 0
    while True:
        page = store.search(namespace_prefix, limit=_PAGE, offset=offset)
        found.update(((item.namespace, item.key), item) for item in page)
        if len(page) < _PAGE:
            return list(found.values())
        offset += _PAGE
