"""The type of the chat models the cascade takes: for the judges, the graph and its wrappers."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableBinding

ChatModel = BaseChatModel | RunnableBinding[Any, Any]
"""A chat model, or one with bound arguments (``model.bind(logprobs=True)``)."""
