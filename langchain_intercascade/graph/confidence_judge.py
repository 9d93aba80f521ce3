"""Node ``confidence_judge``: score the weak answer, accept it or defer the turn.

The judge sees what the weak model saw, strategies included (``weak_prompt``,
built once by ``weak_answer``). An unjudgeable answer is deferred, never
accepted. The route is then counted against the strategies shown (the bank's
usefulness counters, best effort).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.state import InterCascadeState, RouteState
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.judges import Judgement


def decision(
    message: AIMessage | None,
    verdict: Judgement | None,
    threshold: float,
    calibrated: bool,
    error: str | None,
) -> dict[str, Any]:
    """The judge's state update: accept ``message`` at or above ``threshold``, else defer.

    Args:
        message: The weak reply (None if the weak model failed).
        verdict: The judge's verdict (None if it failed or had nothing to judge).
        threshold: The acceptance threshold in force.
        calibrated: Whether that threshold was calibrated.
        error: Why the judge failed, if it did.
    """
    confidence = verdict.confidence if verdict else 0.0
    update: dict[str, Any] = {
        "confidence": confidence,
        "judge_signal": verdict.signal if verdict else "none",
        "judge_details": dict(verdict.details) if verdict else {},
        "threshold": threshold,
        "threshold_calibrated": calibrated,
        "usage": verdict.usage if verdict else {},
        "errors": [error] if error else [],
        "route": "strong",
    }
    if message is not None and verdict is not None and confidence >= threshold:
        update.update(route="weak", messages=[message], answer=message.text)
    return update


def judged(
    context: CascadeContext,
    prompt: Sequence[BaseMessage],
    message: AIMessage | None,
    config: RunnableConfig,
) -> Steps[dict[str, Any]]:
    """Judge ``message``, the weak reply to ``prompt``: the :func:`decision` update."""
    verdict, error = None, None
    if message is not None:
        judge = context.judge
        try:
            verdict = yield Call(judge.judge, judge.ajudge, list(prompt), message, config=config)
        except Exception as exc:  # an unjudgeable answer is deferred
            error = contained("confidence_judge", exc)
    return decision(message, verdict, *context.threshold(), error)


def outcome_recorded(
    bank: StrategyBank | None, shown: Sequence[str], accepted: bool, where: str
) -> Steps[list[str]]:
    """Count the route against the strategies shown; what failed (counters are best effort)."""
    if bank is None or not shown:
        return []
    try:
        yield Call(bank.record_outcome, bank.arecord_outcome, list(shown), accepted=accepted)
    except Exception as exc:  # the answer stands
        return [contained(where, exc)]
    return []


class ConfidenceJudge:
    """Judges the weak answer against the threshold in force."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def steps(self, state: InterCascadeState, config: RunnableConfig) -> Steps[dict[str, Any]]:
        """Judge the weak answer and record the outcome for the strategies shown."""
        prompt = state.get("weak_prompt") or []
        update = yield from judged(self.context, prompt, state.get("weak_message"), config)
        shown = [s.record.id for s in state.get("strategies") or []]
        accepted = update["route"] == "weak"
        update["errors"] += yield from outcome_recorded(
            self.context.bank, shown, accepted, "confidence_judge"
        )
        return update

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Judge the weak answer and record the outcome for the strategies shown."""
        return run(self.steps(state, config))

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        return await arun(self.steps(state, config))


def route_after_judge(state: RouteState) -> str:
    """The edge after the judge: END for an accepted answer, else the strong model."""
    return "__end__" if state.get("route") == "weak" else "strong_answer"
