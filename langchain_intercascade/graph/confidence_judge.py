"""Node ``confidence_judge``: score the weak answer, accept it or defer the turn.

The judge sees what the weak model saw, strategies included. An unjudgeable
answer is deferred, never accepted. The route is then counted against the
strategies shown (the bank's usefulness counters, best effort).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.state import InterCascadeState, RouteState
from langchain_intercascade.graph.weak_answer import weak_prompt
from langchain_intercascade.judges import Judgement


class ConfidenceJudge:
    """Judges the weak answer against the threshold in force."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def _decide(
        self, state: InterCascadeState, verdict: Judgement | None, error: str | None
    ) -> dict[str, Any]:
        message = state.get("weak_message")
        confidence = verdict.confidence if verdict else 0.0
        threshold, calibrated = self.context.threshold()
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

    @staticmethod
    def _shown(state: InterCascadeState) -> list[str]:
        return [s.record.id for s in state.get("strategies") or []]

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Judge the weak answer and record the outcome for the strategies shown."""
        message, verdict, error = state.get("weak_message"), None, None
        if message is not None:
            try:
                verdict = self.context.judge.judge(
                    weak_prompt(self.context, state), message, config=config
                )
            except Exception as exc:  # an unjudgeable answer is deferred
                error = contained("confidence_judge", exc)
        update = self._decide(state, verdict, error)
        bank, ids = self.context.bank, self._shown(state)
        if bank is not None and ids:
            try:
                bank.record_outcome(ids, accepted=update["route"] == "weak")
            except Exception as exc:  # counters are best effort; the answer stands
                update["errors"].append(contained("confidence_judge", exc))
        return update

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        message, verdict, error = state.get("weak_message"), None, None
        if message is not None:
            try:
                verdict = await self.context.judge.ajudge(
                    weak_prompt(self.context, state), message, config=config
                )
            except Exception as exc:
                error = contained("confidence_judge", exc)
        update = self._decide(state, verdict, error)
        bank, ids = self.context.bank, self._shown(state)
        if bank is not None and ids:
            try:
                await bank.arecord_outcome(ids, accepted=update["route"] == "weak")
            except Exception as exc:
                update["errors"].append(contained("confidence_judge", exc))
        return update


def route_after_judge(state: RouteState) -> str:
    """The edge after the judge: END for an accepted answer, else the strong model."""
    return "__end__" if state.get("route") == "weak" else "strong_answer"
