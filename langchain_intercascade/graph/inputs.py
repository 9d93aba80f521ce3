"""What the cascade accepts as input, and the namespace a run reads and writes.

:func:`coerce_input` turns every supported input into ``{"messages": [...]}`` and
rejects, with a ``ValueError`` that says what is wrong, input that would run the
whole cascade (and pay the strong model) for nothing: no user message, an empty
or whitespace-only question, or a conversation over the size cap.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from langchain_intercascade.bank import DEFAULT_NAMESPACE
from langchain_intercascade.strategies import to_well_formed

NAMESPACE_KEY = "strategy_namespace"
"""The ``configurable`` key that scopes a run's strategy reads and writes."""


def _messages(value: Any) -> list[BaseMessage]:
    if isinstance(value, str):
        return [HumanMessage(value)]
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, (list, tuple)):
        return convert_to_messages(value)
    if isinstance(value, dict):
        if "messages" in value:
            messages = value["messages"]
            if not isinstance(messages, (list, tuple)):
                raise ValueError(
                    f"'messages' must be a list of messages, got {type(messages).__name__}"
                )
            return convert_to_messages(messages)
        if "query" in value:
            query = value["query"]
            if not isinstance(query, str):
                raise ValueError(f"'query' must be a string, got {type(query).__name__}")
            return [HumanMessage(query)]
        raise ValueError(
            f"a dict input needs a 'messages' or a 'query' key; got keys {sorted(value)}"
        )
    raise TypeError(
        "InterCascade input must be a str, a message or list of messages, a PromptValue, "
        f"or a dict with 'messages' or 'query'; got {type(value).__name__}"
    )


def coerce_input(value: Any, *, max_chars: int | None = None) -> Any:
    """Turn any supported input into the graph's ``{"messages": [...]}`` input.

    Args:
        value: A string; a message or list of messages (or message-like tuples and
            dicts); a ``PromptValue``; ``{"messages": [...]}``; ``{"query": "..."}``.
            A ``Command`` (resuming a checkpointed run) passes through.
        max_chars: Reject conversations with more characters than this.

    Returns:
        The graph input; other keys of a dict input are kept.

    Raises:
        TypeError: If the input has an unsupported type.
        ValueError: If the input is None, has no user message, its last user
            message is empty or whitespace, or it is longer than ``max_chars``.

    Example:
        ```python
        from langchain_intercascade.graph import coerce_input

        assert coerce_input("2 + 2?")["messages"][0].content == "2 + 2?"
        try:
            coerce_input("   ")
        except ValueError as error:
            assert "empty" in str(error)
        ```
    """
    if isinstance(value, Command):
        return value
    if value is None:
        raise ValueError("the cascade's input is None: pass a question or a conversation")
    messages = _messages(value)
    human = [m for m in messages if isinstance(m, HumanMessage)]
    if not human:
        raise ValueError("the conversation has no user (human) message to answer")
    if not human[-1].text.strip():
        raise ValueError("the last user message is empty or whitespace only")
    if max_chars is not None:
        size = sum(len(m.text) for m in messages)
        if size > max_chars:
            raise ValueError(
                f"the conversation has {size} characters, over max_input_chars={max_chars}"
            )
    rest = (
        {k: v for k, v in value.items() if k not in ("messages", "query")}
        if isinstance(value, dict)
        else {}
    )
    return {**rest, "messages": messages}


def run_namespace(config: RunnableConfig) -> str:
    """The strategy namespace of a run: ``configurable["strategy_namespace"]``.

    Args:
        config: The run's config.

    Returns:
        The namespace; the default one when the config names none.

    Raises:
        ValueError: If the configured namespace is not a non-empty string (a
            mistyped tenant id must not fall back to a shared namespace), or holds
            a lone surrogate (no strategy could be stored under it).
    """
    namespace = (config.get("configurable") or {}).get(NAMESPACE_KEY)
    if namespace is None:
        return DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(
            f"configurable[{NAMESPACE_KEY!r}] must be a non-empty string, got {namespace!r}"
        )
    if to_well_formed(namespace) != namespace:
        raise ValueError(f"configurable[{NAMESPACE_KEY!r}] holds a lone surrogate: {namespace!r}")
    return namespace
