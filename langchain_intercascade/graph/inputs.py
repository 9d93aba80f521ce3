"""What the cascade accepts as input (and, re-exported, the namespace a run uses).

:func:`coerce_input` turns every supported input into ``{"messages": [...]}`` and
rejects, with a ``ValueError`` that says what is wrong, input that would run the
whole cascade (and pay the strong model) for nothing: no user message, a question
with no visible character (empty, whitespace, or only zero-width and blank filler
characters), or a conversation over the size cap, where every content block
(an image's data or URL included) and every tool call's arguments count.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langgraph.types import Command

from langchain_intercascade.bank.namespaces import NAMESPACE_KEY, run_namespace

__all__ = ["NAMESPACE_KEY", "coerce_input", "has_visible_text", "run_namespace"]

# Controls, format characters (zero-width spaces, BOM, joiners, tags), separators and
# marks with nothing to combine with show nothing on their own.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols drawn blank: braille blank and the Hangul fillers.
_BLANK_FILLERS = frozenset("\u2800\u3164\u115f\u1160\uffa0")


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has at least one character a reader would see.

    Args:
        text: Any text.

    Returns:
        False for empty text, whitespace, and text of only zero-width, format,
        combining or blank filler characters (U+200B, U+FEFF, U+2800, U+3164, ...).
    """
    return any(
        char not in _BLANK_FILLERS and unicodedata.category(char) not in _UNSEEN_CATEGORIES
        for char in text
    )


def _message_size(message: BaseMessage) -> int:
    """The characters a message sends a model: its text, every other content block, tool calls.

    A non-text block (an image's base64 data or URL, a file) counts as its JSON;
    a tool call as its name and JSON arguments.

    Args:
        message: Any message.

    Returns:
        Its size in characters.
    """
    content = message.content
    blocks = [content] if isinstance(content, str) else content
    size = 0
    for block in blocks:
        if isinstance(block, str):
            size += len(block)
        elif block.get("type") == "text" and isinstance(block.get("text"), str):
            size += len(block["text"])
        else:
            size += len(json.dumps(block, default=str))
    for call in getattr(message, "tool_calls", None) or []:
        size += len(call["name"]) + len(json.dumps(call["args"], default=str))
    for call in getattr(message, "invalid_tool_calls", None) or []:
        size += len(call.get("name") or "") + len(call.get("args") or "")
    return size


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
            message has no visible character, or it is longer than ``max_chars``
            (counting every content block and tool call).

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
    if not has_visible_text(human[-1].text):
        raise ValueError("the last user message is empty or whitespace only")
    if max_chars is not None:
        size = sum(map(_message_size, messages))
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
