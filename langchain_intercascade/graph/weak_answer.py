"""Node ``weak_answer``: the weak model answers, with the retrieved strategies as hints.

The hints are one system message placed after the conversation's leading system
messages (after the prompts' ``task_system``, when there is one); the user's
messages are untouched. A failing weak model is contained:
the judge then defers the turn to the strong model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from langchain_intercascade.costs import record_usage
from langchain_intercascade.graph.calls import is_rate_limit, raised_by_callback
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.state import InterCascadeState
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import RetrievedStrategy


def weak_prompt(
    prompts: CascadePrompts,
    messages: Sequence[BaseMessage],
    strategies: Sequence[RetrievedStrategy],
) -> list[BaseMessage]:
    """The weak model's prompt: the conversation with the strategies as hints.

    Args:
        prompts: The cascade's prompts (task system message, hint section, placement).
        messages: The conversation.
        strategies: The strategies retrieved for it.

    Returns:
        The messages the weak model (and its judge) sees.
    """
    messages = prompts.with_task(list(messages))
    if not strategies:
        return messages
    section = prompts.format_strategies(list(strategies))
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


def weak_reply(
    context: CascadeContext, prompt: list[BaseMessage], config: RunnableConfig
) -> Steps[dict[str, Any]]:
    """Ask the weak model: its reply and usage, or (contained) why it failed.

    Raises:
        Exception: A rate limit, or an exception of the caller's own callback:
            paying the strong model for either would be a surprise.
    """
    try:
        reply = yield Call(context.call, context.acall, "weak", context.weak, prompt, config)
    except Exception as exc:  # the strong model still answers
        if is_rate_limit(exc) or raised_by_callback(exc):
            raise
        return {"weak_message": None, "errors": [contained("weak_answer", exc)]}
    message = cast(AIMessage, reply)
    return {"weak_message": message, "usage": record_usage({}, "weak", "answer", message)}


class WeakAnswer:
    """Asks the weak model, with the strategies as hints."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def steps(self, state: InterCascadeState, config: RunnableConfig) -> Steps[dict[str, Any]]:
        """Ask the weak model; keep its prompt for the judge."""
        prompts, messages = self.context.options.prompts, state.get("messages", [])
        prompt = weak_prompt(prompts, messages, state.get("strategies") or [])
        update = yield from weak_reply(self.context, prompt, config)
        return {**update, "weak_prompt": prompt}

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Ask the weak model."""
        return run(self.steps(state, config))

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        return await arun(self.steps(state, config))
