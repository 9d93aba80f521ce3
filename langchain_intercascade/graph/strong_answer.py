"""Node ``strong_answer``: the strong model answers a deferred turn.

It sees the whole conversation without strategies (in ``joint`` distill mode, plus
the instructions to append a strategy block, which is stripped from the user's
answer). When it fails, the weak answer is returned with ``route="weak_fallback"``
and the error recorded; so it is when the strong reply is blank (no visible text, no tool
call, no other content), its tokens counted. An exception raised by one of the caller's
callback handlers with ``raise_error=True`` (on a token or at the end of the strong call) is
not a failure of the model: it reaches the caller unchanged, as it would from the strong model
alone, with no fallback. With ``strong_threshold`` or ``distill_threshold`` the strong
answer is judged too; in two-threshold mode the cascade abstains when it is unsure,
and ``distill_strategy`` distills only a trusted one. A deferred turn also feeds the online
recalibrator, when there is one; with ``record_to`` and nothing to distill after it, the turn is
recorded here (``graph/recording.py``).

With a strong-call budget (``CascadeOptions.budget``) the call is reserved in the budget's
ledger first (:meth:`StrongAnswer.within_budget`): over budget, the weak answer stands with
``route="weak_budget"`` and nothing is distilled, or the turn raises
:class:`~langchain_intercascade.budgets.StrongCallBudgetExceeded`, by the budget's ``over``.
A ledger that cannot be read admits no strong call (the error is in ``errors``). After the
call the reservation is settled with the strong tokens the answer and its judge used.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from langchain_intercascade.budgets import BudgetUse, StrongCallBudgetExceeded
from langchain_intercascade.costs import Usage, merge_usage, record_usage
from langchain_intercascade.graph.calls import raised_by_callback
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.inputs import has_visible_text, run_namespace
from langchain_intercascade.graph.recording import recorded
from langchain_intercascade.graph.state import InterCascadeState, Route, RouteState
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.judges import Judgement

_STRATEGY_BLOCK = re.compile(r"<strategy>(.*?)(?:</strategy>|$)", re.DOTALL | re.IGNORECASE)


class StrongAnswer:
    """Asks the strong model, then (when options say so) judges its answer."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def _joint(self) -> bool:
        return self.context.distilling and self.context.options.distill_mode == "joint"

    def prompt(self, state: InterCascadeState) -> list[BaseMessage]:
        """The strong model's prompt: the whole conversation, no strategies."""
        messages = self.context.options.prompts.with_task(state.get("messages", []))
        if self._joint():
            messages.append(SystemMessage(self.context.options.prompts.joint_instructions))
        return messages

    def _judged_prompt(self, state: InterCascadeState) -> list[BaseMessage]:
        # What the strong model answered, less the joint-mode instructions it was told to strip.
        return self.context.options.prompts.with_task(state["messages"])

    def _answered(self, state: InterCascadeState, reply: BaseMessage) -> dict[str, Any]:
        message = cast(AIMessage, reply)
        usage = record_usage({}, "strong", "answer", message)
        strategy_text = None
        if self._joint() and isinstance(message.content, str):
            block = _STRATEGY_BLOCK.search(message.content)
            if block:
                strategy_text = block.group(1).strip()
                # The user sees the answer only, never the strategy block.
                message = message.model_copy(
                    update={"content": message.content[: block.start()].rstrip()}
                )
        if _blank(message):
            error = ValueError("the strong model's reply is blank")
            return self._failed(state, error, usage)
        self._observe_agreement(state, message)
        return {
            "route": "strong",
            "messages": [message],
            "answer": message.text,
            "strong_strategy_text": strategy_text,
            "usage": usage,
        }

    @staticmethod
    def _failed(
        state: InterCascadeState, exc: Exception, usage: Usage | None = None
    ) -> dict[str, Any]:
        fallback = state.get("weak_message")
        if fallback is None or raised_by_callback(exc):
            raise exc  # neither model produced an answer, or the caller's callback said stop
        # Better the weak answer than none; the route says it was a fallback.
        return {
            **_weak_instead(fallback, "weak_fallback"),
            "errors": [contained("strong_answer", exc)],
            "usage": usage or {},
        }

    def _over_budget(self, state: InterCascadeState, use: BudgetUse) -> dict[str, Any]:
        budget = self.context.options.budget
        weak = state.get("weak_message")
        if weak is None or (budget is not None and budget.over == "raise"):
            raise StrongCallBudgetExceeded(use)  # no answer without the strong call, or asked to
        return {**_weak_instead(weak, "weak_budget"), "budget": use}

    def _observe_agreement(self, state: InterCascadeState, strong: AIMessage) -> None:
        # The proxy label: the weak answer counts as right when the strong one agrees.
        recalibrator, extract = (
            self.context.options.recalibrator,
            self.context.options.answer_extractor,
        )
        weak = state.get("weak_message")
        if recalibrator is None or weak is None or state.get("judge_signal") == "none":
            return
        weak_answer = extract(weak.text)
        agreed = weak_answer is not None and weak_answer == extract(strong.text)
        recalibrator.observe(state.get("confidence", 0.0), agreed)

    def _judged(
        self,
        state: InterCascadeState,
        update: dict[str, Any],
        verdict: Judgement | None,
        error: str | None,
    ) -> dict[str, Any]:
        """Record the strong answer's confidence; in two-threshold mode, abstain when unsure."""
        confidence = verdict.confidence if verdict else 0.0
        update["strong_confidence"] = confidence
        update["usage"] = merge_usage(update["usage"], verdict.usage if verdict else {})
        if error:
            update["errors"] = [error]
        strong_threshold = self.context.options.strong_threshold
        if strong_threshold is None or confidence >= strong_threshold:
            return update
        weak = state.get("weak_message")
        if weak is not None and state.get("confidence", 0.0) > confidence:
            update.update(messages=[weak], answer=weak.text)
        update["route"] = "abstain"  # distill_strategy skips answers nobody is sure of
        return update

    def steps(self, state: InterCascadeState, config: RunnableConfig) -> Steps[dict[str, Any]]:
        """Ask the strong model (and judge its answer when options say so); record the turn.

        The turn is recorded here when no distillation follows; ``distill_strategy``
        records it otherwise.
        """
        update = yield from self._answer(state, config)
        if self.context.distilling:
            return update
        return (
            yield from recorded(
                self.context,
                conversation=state.get("messages", []),
                turn={**state, **update},
                update=update,
                tenant=run_namespace(config),
            )
        )

    def _answer(self, state: InterCascadeState, config: RunnableConfig) -> Steps[dict[str, Any]]:
        context = self.context
        try:
            reply = yield Call(
                context.call, context.acall, "strong", context.strong, self.prompt(state), config
            )
        except Exception as exc:
            return self._failed(state, exc)
        update = self._answered(state, reply)
        judge = context.strong_judge
        if judge is None or update["route"] != "strong":
            return update
        try:
            verdict = yield Call(
                judge.judge,
                judge.ajudge,
                self._judged_prompt(state),
                update["messages"][0],
                config=config,
            )
        except Exception as exc:  # an unjudgeable strong answer is not a confident one
            return self._judged(state, update, None, contained("strong_judge", exc))
        return self._judged(state, update, verdict, None)

    def within_budget(
        self, state: InterCascadeState, config: RunnableConfig, store: BaseStore | None
    ) -> Steps[dict[str, Any]]:
        """:meth:`steps` within the tenant's strong-call budget, when options set one.

        Args:
            state: The turn so far.
            config: The run's config (its bank namespace is the tenant).
            store: The store the cascade runs with, where the budget is kept unless
                the budget names its own.

        Raises:
            StrongCallBudgetExceeded: Over budget, with ``over="raise"`` or no weak answer.
        """
        ledger = self.context.budget_ledger(store)
        if ledger is None:
            return (yield from self.steps(state, config))
        try:
            reservation = yield Call(ledger.reserve, ledger.areserve, run_namespace(config))
        except Exception as exc:
            weak = state.get("weak_message")
            if weak is None or ledger.budget.over == "raise":
                raise
            # A budget that cannot be read vouches for no strong call.
            return {**_weak_instead(weak, "weak_budget"), "errors": [contained("budget", exc)]}
        if not reservation.admitted:
            return self._over_budget(state, reservation.use)
        try:
            update = yield from self.steps(state, config)
        except Exception:
            # The call was made: it counts, at a cost nobody reported.
            with suppress(Exception):
                yield Call(ledger.settle, ledger.asettle, reservation, {})
            raise
        try:
            yield Call(ledger.settle, ledger.asettle, reservation, update.get("usage") or {})
        except Exception as exc:  # the answer stands; the reservation counts as in flight
            update = {**update, "errors": [*update.get("errors", []), contained("budget", exc)]}
        return {**update, "budget": reservation.use}

    def __call__(
        self, state: InterCascadeState, config: RunnableConfig, runtime: Runtime | None = None
    ) -> dict[str, Any]:
        """Ask the strong model (and judge its answer when options say so), within budget."""
        store = runtime.store if runtime is not None else None
        return run(self.within_budget(state, config, store))

    async def acall(
        self, state: InterCascadeState, config: RunnableConfig, runtime: Runtime | None = None
    ) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        store = runtime.store if runtime is not None else None
        return await arun(self.within_budget(state, config, store))


def _weak_instead(weak: AIMessage, route: Route) -> dict[str, Any]:
    """The update that answers a deferred turn with the weak answer."""
    return {"route": route, "messages": [weak], "answer": weak.text}


def _blank(message: AIMessage) -> bool:
    # A paid-for reply with nothing in it must not replace the weak answer.
    if message.tool_calls or message.invalid_tool_calls:
        return False
    if isinstance(message.content, str):
        return not has_visible_text(message.content)
    return not any(
        has_visible_text(block)
        if isinstance(block, str)
        else block.get("type") != "text" or has_visible_text(str(block.get("text", "")))
        for block in message.content
    )


def route_after_strong(state: RouteState) -> str:
    """The edge after the strong model: distill only a trusted strong answer."""
    return "distill_strategy" if state.get("route") == "strong" else "__end__"
