"""Node ``retrieve_strategy``: find the strategies most similar to the user's turn.

The first node of every turn: it also resets the per-turn keys, since with a
checkpointer the previous turn's values persist. A failing bank or embedder is
contained: the turn goes on without strategies. The strategies found enter the
state without their source queries: those are other users' words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Overwrite

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.inputs import run_namespace
from langchain_intercascade.graph.state import InterCascadeState
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.options import CascadeOptions
from langchain_intercascade.strategies import RetrievedStrategy, to_well_formed


def search_args(
    options: CascadeOptions, messages: Sequence[BaseMessage], namespace: str
) -> dict[str, Any]:
    """The bank search for a turn: its query, ``k``, score threshold, namespace and search type."""
    return {
        # Well-formed, so that the embedder and the stored record can encode it.
        "query": to_well_formed(options.retrieval_query(list(messages))),
        "k": options.k,
        "score_threshold": options.score_threshold,
        "namespace": namespace,
        "search_type": options.search_type,
    }


def retrieved(
    bank: StrategyBank | None, args: dict[str, Any]
) -> Steps[tuple[list[RetrievedStrategy], list[str]]]:
    """The strategies found for ``args`` (without their source queries), and what failed.

    Args:
        bank: The bank; None finds nothing.
        args: The search, from :func:`search_args`.
    """
    if bank is None:
        return [], []
    try:
        found = yield Call(bank.search, bank.asearch, **args)
    except Exception as exc:  # a broken bank or embedder must not lose the answer
        return [], [contained("retrieve_strategy", exc)]
    # Source queries are other users' words.
    return [s.model_copy(update={"record": s.record.without_source_query()}) for s in found], []


def turn_start(
    query: str, strategies: list[RetrievedStrategy], errors: list[str]
) -> dict[str, Any]:
    """The state update that starts a turn: its strategies, and every per-turn key reset."""
    return {
        "query": query,
        "strategies": strategies,
        "weak_prompt": None,
        "weak_message": None,
        "route": None,
        "strong_confidence": None,
        "answer": "",
        "strong_strategy_text": None,
        "new_strategy": None,
        "distill_skipped": None,
        "budget": None,
        "usage": Overwrite({}),
        "errors": Overwrite(errors),
    }


class RetrieveStrategy:
    """Retrieves up to ``k`` strategies for the turn's retrieval query."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def steps(self, state: InterCascadeState, config: RunnableConfig) -> Steps[dict[str, Any]]:
        """Retrieve strategies and start the turn."""
        args = search_args(self.context.options, state.get("messages", []), run_namespace(config))
        strategies, errors = yield from retrieved(self.context.bank, args)
        return turn_start(args["query"], strategies, errors)

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Retrieve strategies and start the turn."""
        return run(self.steps(state, config))

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        return await arun(self.steps(state, config))
