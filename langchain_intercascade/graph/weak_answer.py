"""Node ``weak_answer``: the weak model answers, with the retrieved strategies as hints.

The hints are one system message placed after the conversation's leading system
messages (after the prompts' ``task_system``, when there is one); the user's
messages are untouched. A failing weak model is contained:
the judge then defers the turn to the strong model.
"""

from __future__ import annotations

from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_intercascade.costs import record_usage
from langchain_intercascade.graph.calls import is_rate_limit, raised_by_callback
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.state import InterCascadeState


def weak_prompt(context: CascadeContext, state: InterCascadeState) -> list[BaseMessage]:
    """The weak model's prompt: the conversation with the strategies as hints.

    Args:
        context: The cascade's parts.
        state: The turn so far.

    Returns:
        The messages the weak model (and its judge) sees.
    """
    prompts = context.options.prompts
    messages = prompts.with_task(state.get("messages", []))
    strategies = state.get("strategies") or []
    if not strategies:
        return messages
    section = prompts.format_strategies(strategies)
    if prompts.strategy_placement == "user":
        last = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=None)
        if last is not None:
            turn = messages[last]
            shown = HumanMessage(f"{turn.text}\n\n{section}", id=turn.id)
            return [*messages[:last], shown, *messages[last + 1 :]]
    hints = SystemMessage(section)
    lead = 0
    while lead < len(messages) and isinstance(messages[lead], SystemMessage):
        lead += 1
    return [*messages[:lead], hints, *messages[lead:]]


class WeakAnswer:
    """Asks the weak model."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    @staticmethod
    def _answered(reply: BaseMessage) -> dict[str, Any]:
        message = cast(AIMessage, reply)
        return {"weak_message": message, "usage": record_usage({}, "weak", "answer", message)}

    @staticmethod
    def _failed(exc: Exception) -> dict[str, Any]:
        if is_rate_limit(exc) or raised_by_callback(exc):
            # The caller's quota, or the caller's callback saying stop: paying the
            # strong model for either would be a surprise.
            raise exc
        return {"weak_message": None, "errors": [contained("weak_answer", exc)]}

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Ask the weak model."""
        prompt = weak_prompt(self.context, state)
        try:
            reply = self.context.call("weak", self.context.weak, prompt, config)
        except Exception as exc:  # the strong model still answers
            return self._failed(exc)
        return self._answered(reply)

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        prompt = weak_prompt(self.context, state)
        try:
            reply = await self.context.acall("weak", self.context.weak, prompt, config)
        except Exception as exc:
            return self._failed(exc)
        return self._answered(reply)
