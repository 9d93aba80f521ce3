"""Node ``retrieve_strategy``: find the strategies most similar to the user's turn.

The first node of every turn: it also resets the per-turn keys, since with a
checkpointer the previous turn's values persist. A failing bank or embedder is
contained: the turn goes on without strategies. The strategies found enter the
state without their source queries: those are other users' words.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Overwrite

from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.inputs import run_namespace
from langchain_intercascade.graph.state import InterCascadeState
from langchain_intercascade.strategies import RetrievedStrategy, to_well_formed


class RetrieveStrategy:
    """Retrieves up to ``k`` strategies for the turn's retrieval query."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def _search_args(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        options = self.context.options
        return {
            # Well-formed, so that the embedder and the stored record can encode it.
            "query": to_well_formed(options.retrieval_query(state.get("messages", []))),
            "k": options.k,
            "score_threshold": options.score_threshold,
            "namespace": run_namespace(config),
            "search_type": options.search_type,
        }

    @staticmethod
    def _turn(query: str, found: list[RetrievedStrategy], errors: list[str]) -> dict[str, Any]:
        return {
            "query": query,
            "strategies": [
                s.model_copy(update={"record": s.record.without_source_query()}) for s in found
            ],
            "weak_message": None,
            "route": None,
            "strong_confidence": None,
            "answer": "",
            "strong_strategy_text": None,
            "new_strategy": None,
            "distill_skipped": None,
            "usage": Overwrite({}),
            "errors": Overwrite(errors),
        }

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Retrieve strategies and start the turn."""
        args = self._search_args(state, config)
        bank = self.context.bank
        if bank is None:
            return self._turn(args["query"], [], [])
        try:
            found = bank.search(**args)
        except Exception as exc:  # a broken bank or embedder must not lose the answer
            return self._turn(args["query"], [], [contained("retrieve_strategy", exc)])
        return self._turn(args["query"], found, [])

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        args = self._search_args(state, config)
        bank = self.context.bank
        if bank is None:
            return self._turn(args["query"], [], [])
        try:
            found = await bank.asearch(**args)
        except Exception as exc:
            return self._turn(args["query"], [], [contained("retrieve_strategy", exc)])
        return self._turn(args["query"], found, [])
