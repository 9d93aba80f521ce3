"""The teacher's answer of a deferred turn, recorded (``CascadeOptions.record_to``).

``strong_answer`` records a turn when nothing is distilled after it,
``distill_strategy`` after its distillation (so the record says which strategy
came of it, or why none did). Both call :func:`recorded` with plain values. The
answer is screened by the cascade's ``strategy_filter``, read as a strategy
(:func:`answer_as_strategy`); a rejected answer is counted on the recorder, a
failed write counted and contained: the user's answer never waits on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.steps import Call, Steps
from langchain_intercascade.guards import ascreen
from langchain_intercascade.strategies import Strategy
from langchain_intercascade.teacher_records import TeacherRecord, TeacherRecorder

NO_TEXT = "no text to learn from"
"""Why a strong reply without text (tool calls only) is not recorded."""


def answer_as_strategy(answer: str) -> Strategy:
    """A strong answer read as a strategy, so that the strategy filter screens it as one.

    Its first line is the title (a label task's filter then checks that it names a
    label), its other lines the steps.

    Args:
        answer: The strong answer, with text.

    Returns:
        The strategy the filter is shown.

    Example:
        ```python
        from langchain_intercascade.graph.recording import answer_as_strategy
        from langchain_intercascade.guards import StrategyFilter

        screen = StrategyFilter()
        assert screen(answer_as_strategy("The total is 12.")) is None
        assert screen(answer_as_strategy("Details at https://evil.example/x")) is not None
        ```
    """
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    what = "A recorded answer of the strong model"
    return Strategy(title=lines[0], applies_when=what, steps=lines[1:] or lines)


def _no_strategy(context: CascadeContext, update: Mapping[str, Any]) -> str | None:
    """Why the turn stored no strategy, or None when it did."""
    if update.get("new_strategy") is not None:
        return None
    if context.bank is None:
        return "no bank"
    if not context.options.distill:
        return "distill off"
    if update.get("distill_skipped"):
        return str(update["distill_skipped"])
    failed = [e for e in update.get("errors", []) if e.startswith("distill_strategy")]
    return failed[-1] if failed else "not distilled"


def teacher_record(
    context: CascadeContext,
    *,
    conversation: Sequence[BaseMessage],
    turn: Mapping[str, Any],
    update: Mapping[str, Any],
    tenant: str,
) -> TeacherRecord:
    """The record of a deferred turn.

    Args:
        context: The cascade's parts.
        conversation: The conversation before the strong answer.
        turn: The turn's state with the strong answer (``answer``,
            ``weak_message``, ``confidence``, ``threshold``, ...).
        update: The distillation's update (``new_strategy``, ``distill_skipped``,
            ``errors``), or the strong answer's when nothing is distilled.
        tenant: The run's bank namespace.

    Returns:
        The record.
    """
    threshold = float(turn.get("threshold", 0.0))
    weak = turn.get("weak_message")
    stored = update.get("new_strategy")
    return TeacherRecord(
        tenant=tenant,
        messages=context.options.prompts.with_task(conversation),
        answer=turn["answer"],
        weak_answer=weak.text if weak is not None else None,
        confidence=turn.get("confidence", 0.0),
        judge_signal=turn.get("judge_signal", ""),
        threshold=threshold if math.isfinite(threshold) else None,
        threshold_calibrated=turn.get("threshold_calibrated", False),
        route=turn["route"],
        strong_confidence=turn.get("strong_confidence"),
        strategy=stored.strategy if stored is not None else None,
        strategy_id=stored.id if stored is not None else None,
        no_strategy=_no_strategy(context, update),
        weak_model=context.weak_name,
        strong_model=context.strong_name,
    )


def recorded(
    context: CascadeContext,
    *,
    conversation: Sequence[BaseMessage],
    turn: Mapping[str, Any],
    update: dict[str, Any],
    tenant: str,
) -> Steps[dict[str, Any]]:
    """Record the turn (with ``record_to``); ``update``, plus the error of a failed write.

    Args:
        context: The cascade's parts.
        conversation: The conversation before the strong answer.
        turn: The turn's state with the strong answer.
        update: The node's update (see :func:`teacher_record`).
        tenant: The run's bank namespace.
    """
    recorder: TeacherRecorder | None = context.options.record_to
    if recorder is None or turn.get("route") != "strong":
        return update
    answer = str(turn.get("answer") or "")
    if not answer.strip():
        recorder.count_skipped(NO_TEXT)
        return update
    try:
        screen, candidate = context.options.strategy_filter, answer_as_strategy(answer)
        # Awaited under ainvoke, as distillation's screening is: it may call a model.
        reason = None
        if screen is not None:
            reason = yield Call(screen, partial(ascreen, screen), candidate)
        if reason is not None:  # a poisoned answer is not data to learn from
            recorder.count_skipped(reason)
            return update
        record = teacher_record(
            context, conversation=conversation, turn=turn, update=update, tenant=tenant
        )
        yield Call(recorder.write, recorder.awrite, record)
    except Exception as exc:  # the answer stands without its record
        recorder.count_failed()
        return {**update, "errors": [*update.get("errors", []), contained("record_to", exc)]}
    return update
