"""Totals of tokens and fees per route, over any number of cascade runs.

:class:`CascadeCostTracker` is a callback handler: pass it in a run's config
(``cascade.invoke(q, {"callbacks": [tracker]})``) or use
:func:`track_cascade_costs`, which attaches it to every run inside a ``with``
block, like LangChain's ``get_openai_callback``. It reads each cascade run's
final state (route and per-model usage), so it works for the graph,
:class:`~langchain_intercascade.chat_model.ChatInterCascade`, a cascade inside
an agent graph, sync or async, batched or streamed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages.ai import UsageMetadata
from langchain_core.tracers.context import register_configure_hook
from pydantic import BaseModel, Field

from langchain_intercascade.costs import (
    DEFAULT_PRICES,
    PriceTable,
    Usage,
    merge_usage,
    total_usage,
)
from langchain_intercascade.graph.state import WEAK_ONLY_ROUTES, CascadeTurn
from langchain_intercascade.guards import screened_price_key


def _llm_usage(response: Any) -> UsageMetadata:
    """A model call's tokens, from its message or (llama.cpp) its ``llm_output``."""
    for generations in getattr(response, "generations", None) or []:
        for generation in generations:
            tokens = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if tokens:
                return cast(UsageMetadata, tokens)
    reported = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
    prompt, completion = reported.get("prompt_tokens", 0), reported.get("completion_tokens", 0)
    return UsageMetadata(
        input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion
    )


class RouteTotals(BaseModel):
    """What the queries of one route cost.

    Attributes:
        queries: Queries answered on the route.
        usage: Their tokens per model and role.
        fee: Their price.
    """

    queries: int = 0
    usage: Usage = Field(default_factory=dict)
    fee: float = 0.0

    def add(self, other: RouteTotals) -> RouteTotals:
        """The sum of two totals."""
        return RouteTotals(
            queries=self.queries + other.queries,
            usage=merge_usage(self.usage, other.usage),
            fee=self.fee + other.fee,
        )


class CascadeCostTracker(BaseCallbackHandler):
    """Totals queries, tokens and fees per route over every cascade run it sees.

    Args:
        prices: Turns tokens into fees (default: ``costs.DEFAULT_PRICES``).

    Attributes:
        routes: The totals per route (``"weak"``, ``"strong"``, ``"abstain"``).
        prices: The price table in use.

    Example:
        ```python
        from langchain_intercascade import StrategyBank, create_intercascade
        from langchain_intercascade.callbacks import CascadeCostTracker
        from langchain_intercascade.testing import fake_models

        weak, strong, embeddings = fake_models()
        cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings))
        questions = ["3 boxes with 4 pens in each box?", "5 boxes with 6 pens in each box?"]
        tracker = CascadeCostTracker()
        cascade.batch(questions, {"callbacks": [tracker], "max_concurrency": 1})
        assert tracker.total.queries == 2 and set(tracker.routes) == {"strong", "weak"}
        ```
    """

    def __init__(self, prices: PriceTable = DEFAULT_PRICES) -> None:
        self.prices = prices
        self.routes: dict[str, RouteTotals] = {}
        self._parents: dict[UUID, UUID | None] = {}
        # Runs whose cascade turn was counted further down (an enclosing graph
        # whose state holds the same keys must not count it again).
        self._covered: set[UUID] = set()
        self._lock = threading.Lock()

    @property
    def total(self) -> RouteTotals:
        """The totals over all routes."""
        total = RouteTotals()
        for totals in self.routes.values():
            total = total.add(totals)
        return total

    @property
    def strong_call_rate(self) -> float:
        """The share of queries the strong model answered (0 when none were seen).

        Every route but ``"weak"`` and ``"weak_budget"`` (refused by a strong-call
        budget) called it: ``"strong"``, ``"weak_fallback"`` (it failed), and
        ``"abstain"`` in two-threshold mode.
        """
        queries = self.total.queries
        weak = sum(self.routes.get(r, RouteTotals()).queries for r in WEAK_ONLY_ROUTES)
        return (queries - weak) / queries if queries else 0.0

    def record(self, route: str, usage: Usage) -> None:
        """Count one query answered on ``route`` with these tokens.

        Args:
            route: The turn's route (``"weak"``, ``"strong"``, ``"abstain"``).
            usage: The turn's tokens per model and role.
        """
        turn = RouteTotals(queries=1, usage=usage, fee=self.prices.cost(usage))
        with self._lock:
            self.routes[route] = self.routes.get(route, RouteTotals()).add(turn)

    def rows(self) -> list[dict[str, Any]]:
        """One row per route and one for the total, ready for a table or a DataFrame.

        Returns:
            Rows with the route, queries, weak and strong tokens (input and
            output), and the fee.
        """
        named = [*sorted(self.routes.items()), ("total", self.total)]
        rows = []
        for route, totals in named:
            weak, strong = total_usage(totals.usage, "weak"), total_usage(totals.usage, "strong")
            rows.append(
                {
                    "route": route,
                    "queries": totals.queries,
                    "weak_input_tokens": weak["input_tokens"],
                    "weak_output_tokens": weak["output_tokens"],
                    "strong_input_tokens": strong["input_tokens"],
                    "strong_output_tokens": strong["output_tokens"],
                    "fee": totals.fee,
                }
            )
        return rows

    def report(self) -> str:
        """The totals as a markdown table.

        Returns:
            The table, with the fee in the price table's currency.
        """
        lines = [
            f"| route | queries | weak tokens in/out | strong tokens in/out "
            f"| fee ({self.prices.currency}) |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['route']} | {r['queries']} | {r['weak_input_tokens']}/{r['weak_output_tokens']} "
            f"| {r['strong_input_tokens']}/{r['strong_output_tokens']} | {r['fee']:.6f} |"
            for r in self.rows()
        ]
        return "\n".join(lines) + "\n"

    # -- callbacks ------------------------------------------------------------

    def _started(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        with self._lock:
            self._parents[run_id] = parent_run_id

    def _forget(self, run_id: UUID) -> None:
        # Every run that started ends here, however it ended: nothing is kept past it.
        with self._lock:
            self._parents.pop(run_id, None)
            self._covered.discard(run_id)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the run's parent."""
        self._started(run_id, parent_run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the run's parent (a ChatInterCascade runs its graph below it)."""
        self._started(run_id, parent_run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the run's parent (a tool may run a cascade)."""
        self._started(run_id, parent_run_id)

    def on_chain_end(
        self,
        outputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Count the run if it is a whole cascade turn not counted below it."""
        with self._lock:
            parent = self._parents.pop(run_id, None)
            if run_id in self._covered:
                self._covered.discard(run_id)
                return
            if not CascadeTurn.is_turn(outputs):
                return
            while parent in self._parents:  # only runs whose end will forget them
                self._covered.add(parent)
                parent = self._parents.get(parent)
        self.record(outputs["route"], outputs["usage"])

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the run."""
        self._forget(run_id)

    def on_llm_end(
        self, response: Any, *, run_id: UUID, tags: list[str] | None = None, **kwargs: Any
    ) -> None:
        """Forget the run; a strategy screening call's tokens go to the route ``"screen"``."""
        self._forget(run_id)
        key = screened_price_key(tags)
        if key is not None:
            self.record_screening(key, _llm_usage(response))

    def record_screening(self, key: str, tokens: UsageMetadata) -> None:
        """Count a strategy screening call's tokens, priced as ``key``, under ``"screen"``.

        It is no query of its own, so the route's ``queries`` stays 0; it runs in
        the distillation of a turn already counted.
        """
        usage: Usage = {key: {"screen": tokens}}
        totals = RouteTotals(usage=usage, fee=self.prices.cost(usage))
        with self._lock:
            self.routes["screen"] = self.routes.get("screen", RouteTotals()).add(totals)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the run (a failed model call, or a ChatInterCascade whose turn raised)."""
        self._forget(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the run."""
        self._forget(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Forget the run."""
        self._forget(run_id)


_tracker: ContextVar[CascadeCostTracker | None] = ContextVar("intercascade_costs", default=None)
register_configure_hook(_tracker, inheritable=True)


@contextmanager
def track_cascade_costs(prices: PriceTable = DEFAULT_PRICES) -> Iterator[CascadeCostTracker]:
    """Track every cascade run inside the ``with`` block.

    Args:
        prices: Turns tokens into fees.

    Yields:
        The tracker, which holds the totals when the block ends.

    Example:
        ```python
        from langchain_intercascade import StrategyBank, create_intercascade, track_cascade_costs
        from langchain_intercascade.testing import fake_models

        weak, strong, embeddings = fake_models()
        cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings))
        with track_cascade_costs() as costs:
            cascade.invoke("3 boxes with 4 pens in each box?")
        assert costs.routes["strong"].queries == 1
        ```
    """
    tracker = CascadeCostTracker(prices)
    token = _tracker.set(tracker)
    try:
        yield tracker
    finally:
        _tracker.reset(token)
