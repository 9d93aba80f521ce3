"""What flows through the graph: its input, state and output schemas, and a typed turn.

The state's per-turn keys describe the latest turn only. ``usage`` and ``errors``
have reducers, so each node returns what it adds; ``retrieve_strategy``, the first
node of a turn, resets them (with a checkpointer the previous turn's values persist).
:class:`CascadeTurn` is the one reader of a finished turn for everything outside
the graph (chat model, CLI, evaluation, calibration, callbacks, demo).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

from langchain_intercascade.budgets import BudgetUse
from langchain_intercascade.costs import Usage, merge_usage
from langchain_intercascade.strategies import RetrievedStrategy, StrategyRecord

Route = Literal["weak", "strong", "abstain", "weak_fallback", "weak_budget"]
"""``weak``: accepted; ``strong``: deferred; ``abstain``: neither answer was
confident (two-threshold mode); ``weak_fallback``: deferred, but the strong model
failed, so the weak answer was returned; ``weak_budget``: deferred, but the tenant
was over its strong-call budget, so the weak answer was returned."""

WEAK_ONLY_ROUTES: frozenset[str] = frozenset({"weak", "weak_budget"})
"""The routes of turns that did not call the strong model."""

DistillSkip = Literal["untrusted", "near_duplicate"]
"""``untrusted``: the strong answer's confidence was below ``distill_threshold``;
``near_duplicate``: the query retrieved a strategy the new one would be merged into."""


class InterCascadeInput(TypedDict):
    """What the graph takes: the conversation."""

    messages: Annotated[list[AnyMessage], add_messages]


class InterCascadeOutput(TypedDict, total=False):
    """What the graph returns: the conversation and the latest turn's decisions.

    Attributes:
        messages: The conversation; the final answer is appended to it.
        query: The text strategies were retrieved for (the last user turn).
        strategies: The strategies retrieved and shown to the weak model.
        weak_message: The weak model's reply (None if the weak model failed).
        confidence: The judge's confidence in the weak reply.
        judge_signal: Which signal the judge used.
        judge_details: The judge's sub-scores (e.g. ``logprob_min``).
        threshold: The acceptance threshold in force.
        threshold_calibrated: Whether that threshold came from a calibration on
            labelled data (or the online recalibrator); False for a bare default.
        route: How the turn was answered (see :data:`Route`).
        strong_confidence: The strong judge's confidence (see
            ``CascadeOptions.strong_judge``).
        answer: The final answer's text.
        new_strategy: The strategy stored this turn, or None.
        distill_skipped: Why a strong answer was not distilled (see
            :data:`DistillSkip`), or None.
        usage: Tokens per model and role this turn.
        errors: Failures that were contained this turn (``node: message``).
        budget: The tenant's use of its strong-call budget's window, as the
            deferred turn's reservation saw it (None without a budget, or when
            the turn was not deferred).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    query: str
    strategies: list[RetrievedStrategy]
    weak_message: AIMessage | None
    confidence: float
    judge_signal: str
    judge_details: dict[str, float]
    threshold: float
    threshold_calibrated: bool
    route: Route | None
    strong_confidence: float | None
    answer: str
    new_strategy: StrategyRecord | None
    distill_skipped: DistillSkip | None
    usage: Annotated[Usage, merge_usage]
    errors: Annotated[list[str], operator.add]
    budget: BudgetUse | None


class InterCascadeState(InterCascadeOutput, total=False):
    """The graph's whole state: the output keys plus scratch keys between nodes.

    Attributes:
        weak_prompt: What the weak model saw, strategies included, for its judge.
        strong_strategy_text: The strategy block of a joint strong reply, for
            ``distill_strategy``.
    """

    weak_prompt: list[AnyMessage] | None
    strong_strategy_text: str | None


class RouteState(TypedDict):
    """What the edges after ``confidence_judge`` and ``strong_answer`` read: the route alone.

    LangGraph reads only these keys for them, not the whole state.
    """

    route: Route | None


class CascadeTurn(BaseModel):
    """One finished turn, read from the graph's output state.

    A turn stopped before it was answered (``interrupt_before=["strong_answer"]``,
    as calibration runs it) reads too, with ``message`` and ``route`` None when
    nothing was decided.

    Attributes:
        message: The final answer message (None: the turn has no answer yet).
        answer: Its text.
        route: How the turn was answered (None: not decided).
        confidence: The judge's confidence in the weak answer.
        threshold: The acceptance threshold in force.
        threshold_calibrated: Whether that threshold was calibrated.
        judge_signal: Which signal the judge used.
        judge_details: The judge's sub-scores.
        query: The retrieval text.
        strategies: The strategies shown to the weak model.
        new_strategy: The strategy stored this turn.
        distill_skipped: Why the strong answer was not distilled, or None.
        weak_message: The weak model's reply.
        strong_confidence: The strong judge's confidence.
        usage: Tokens per model and role.
        errors: Contained failures.
        budget: The tenant's use of its strong-call budget (deferred turns only).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    message: AIMessage | None
    answer: str
    route: Route | None
    confidence: float
    threshold: float
    threshold_calibrated: bool
    judge_signal: str
    judge_details: dict[str, float]
    query: str
    strategies: list[RetrievedStrategy]
    new_strategy: StrategyRecord | None
    distill_skipped: DistillSkip | None
    weak_message: AIMessage | None
    strong_confidence: float | None
    usage: Usage
    errors: list[str]
    budget: BudgetUse | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CascadeTurn:
        """Read a finished turn.

        Args:
            state: The cascade graph's output state.

        Returns:
            The turn.

        Raises:
            TypeError: If the state is not a mapping.
        """
        if not isinstance(state, dict):
            raise TypeError(f"a cascade state is a dict, got {type(state).__name__}")
        messages = state.get("messages") or []
        # A turn ends with its answer; an unanswered one ends with the user's message.
        last = messages[-1] if messages and isinstance(messages[-1], AIMessage) else None
        return cls(
            message=last,
            answer=state.get("answer", ""),
            route=state.get("route"),
            confidence=state.get("confidence", 0.0),
            threshold=state.get("threshold", 0.0),
            threshold_calibrated=state.get("threshold_calibrated", False),
            judge_signal=state.get("judge_signal", ""),
            judge_details=dict(state.get("judge_details") or {}),
            query=state.get("query", ""),
            strategies=list(state.get("strategies") or []),
            new_strategy=state.get("new_strategy"),
            distill_skipped=state.get("distill_skipped"),
            weak_message=state.get("weak_message"),
            strong_confidence=state.get("strong_confidence"),
            usage=dict(state.get("usage") or {}),
            errors=list(state.get("errors") or []),
            budget=state.get("budget"),
        )

    @classmethod
    def is_turn(cls, outputs: Any) -> bool:
        """Whether a run's outputs are a whole turn's state (not a node's update).

        Args:
            outputs: A run's outputs, as a callback sees them.

        Returns:
            True for a finished turn's state.
        """
        # Only a whole turn's state has both the query and a decided route.
        return (
            isinstance(outputs, dict)
            and isinstance(outputs.get("route"), str)
            and "query" in outputs
            and isinstance(outputs.get("usage"), dict)
        )

    @property
    def final_message(self) -> AIMessage:
        """The answer message.

        Raises:
            ValueError: If the turn has no answer.
        """
        if self.message is None:
            raise ValueError("the cascade's output has no final AI message")
        return self.message

    def metadata(self) -> dict[str, Any]:
        """The turn's decisions as JSON-ready ``response_metadata`` keys.

        Source queries of retrieved strategies are left out: they are other
        users' words.

        Returns:
            ``route``, ``confidence``, ``judge_signal``, ``threshold``,
            ``threshold_calibrated``, ``strategies`` (id, title and similarity),
            ``new_strategy`` (id and title, or None), ``usage``, ``errors`` and
            ``budget`` (the tenant's use of its strong-call budget, or None).
        """
        new = self.new_strategy
        return {
            "route": self.route,
            "confidence": self.confidence,
            "judge_signal": self.judge_signal,
            "threshold": self.threshold,
            "threshold_calibrated": self.threshold_calibrated,
            "strategies": [
                {"id": s.record.id, "title": s.record.strategy.title, "score": s.score}
                for s in self.strategies
            ],
            "new_strategy": {"id": new.id, "title": new.strategy.title} if new else None,
            "usage": self.usage,
            "errors": self.errors,
            "budget": self.budget.model_dump(mode="json") if self.budget else None,
        }


pick_message: Runnable[dict[str, Any], AIMessage] = RunnableLambda(
    lambda state: CascadeTurn.from_state(state).final_message, name="pick_message"
)
"""Picks the final ``AIMessage`` from the cascade's output: ``cascade | pick_message``."""

pick_answer: Runnable[dict[str, Any], str] = RunnableLambda(
    lambda state: CascadeTurn.from_state(state).final_message.text, name="pick_answer"
)
"""Picks the final answer's text from the cascade's output: ``cascade | pick_answer``."""
