"""Token accounting per model and role.

The cascade reports usage as ``{model: {role: tokens}}``, where ``model`` is
``"weak"`` or ``"strong"`` and ``role`` is what the call was for (``"answer"``,
``"judge"``, ``"distill"``), and ``tokens`` is a LangChain ``UsageMetadata``
dict read from each call's ``AIMessage.usage_metadata``.
"""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

ModelKey = Literal["weak", "strong"]
Usage = dict[str, dict[str, UsageMetadata]]


def empty_usage() -> UsageMetadata:
    """Return a zero ``UsageMetadata``."""
    return UsageMetadata(input_tokens=0, output_tokens=0, total_tokens=0)


def record_usage(usage: Usage, model: str, role: str, message: AIMessage | None) -> Usage:
    """Return ``usage`` with one call's tokens added under ``model`` and ``role``.

    A message without ``usage_metadata`` (a provider that reports none) adds
    nothing but still creates the entry, so the call is visible.

    Args:
        usage: The usage so far; not modified.
        model: Which model made the call (``"weak"`` or ``"strong"``).
        role: What the call was for.
        message: The call's reply.

    Returns:
        A new usage mapping.
    """
    merged = {key: dict(roles) for key, roles in usage.items()}
    roles = merged.setdefault(model, {})
    tokens = message.usage_metadata if message is not None else None
    roles[role] = add_usage(roles.get(role, empty_usage()), tokens or empty_usage())
    return merged


def merge_usage(left: Usage, right: Usage) -> Usage:
    """Add two usage mappings.

    Args:
        left: One usage mapping.
        right: Another.

    Returns:
        Their sum, per model and role.
    """
    merged = {key: dict(roles) for key, roles in left.items()}
    for model, roles in right.items():
        target = merged.setdefault(model, {})
        for role, tokens in roles.items():
            target[role] = add_usage(target.get(role, empty_usage()), tokens)
    return merged


def total_usage(usage: Usage, model: str | None = None) -> UsageMetadata:
    """Sum tokens over roles, for one model or all.

    Args:
        usage: A usage mapping.
        model: Restrict the sum to this model; None sums every model.

    Returns:
        The total ``UsageMetadata``.
    """
    total = empty_usage()
    for key, roles in usage.items():
        if model is None or key == model:
            for tokens in roles.values():
                total = add_usage(total, tokens)
    return total
