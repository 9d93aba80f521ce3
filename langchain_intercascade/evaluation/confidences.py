"""Calibration data from a cascade: :func:`collect_confidences` and :class:`CollectedConfidences`.

It drives the cascade only through the LangGraph API, running each labelled
example up to the judge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from pydantic import BaseModel, ConfigDict

from langchain_intercascade.calibration import ThresholdCalibration, calibrate_threshold
from langchain_intercascade.graph import CascadeTurn


class CollectedConfidences(BaseModel):
    """The judge's confidences and the weak answers' correctness on a labelled set.

    Attributes:
        confidences: The confidence the cascade's judge gave each weak answer
            (0 where the weak model or the judge failed, as in the cascade).
        correct: Whether each weak answer was right, by the grader.
        answers: The weak answers' text ("" where the weak model failed).
        signals: The judge's signal per example (e.g. ``"logprob_mean"``).
        errors: The failures the cascade contained, per example.
        usage: Tokens per model and role, per example.
    """

    model_config = ConfigDict(frozen=True)

    confidences: list[float]
    correct: list[bool]
    answers: list[str]
    signals: list[str]
    errors: list[list[str]]
    usage: list[dict[str, dict[str, Any]]]

    def calibrate(
        self, *, alpha: float, delta: float = 0.1, min_accepted: int = 10
    ) -> ThresholdCalibration:
        """Run :func:`calibrate_threshold` on the collected confidences.

        Args:
            alpha: Target error rate among accepted answers, in (0, 1).
            delta: Allowed probability that the guarantee fails, in (0, 1).
            min_accepted: Minimum number of accepted samples before a candidate
                is tested.

        Returns:
            The calibration.
        """
        return calibrate_threshold(
            self.confidences, self.correct, alpha=alpha, delta=delta, min_accepted=min_accepted
        )


def _prepare_collection(
    cascade: Pregel[Any, Any, Any, Any], examples: Iterable[tuple[Any, str]]
) -> tuple[Pregel[Any, Any, Any, Any], list[Any], list[str]]:
    pairs = list(examples)
    if not pairs:
        raise ValueError("examples is empty: need at least one (input, gold) pair")
    # Calibration inputs are independent single turns: keep them out of the
    # user's checkpointer, where they would pile up as threads.
    return cascade.copy(update={"checkpointer": None}), [p[0] for p in pairs], [p[1] for p in pairs]


def _collected(
    states: Sequence[dict[str, Any]], golds: Sequence[str], grader: Callable[[str, str], bool]
) -> CollectedConfidences:
    turns = [CascadeTurn.from_state(state) for state in states]
    answers = [t.weak_message.text if t.weak_message else "" for t in turns]
    return CollectedConfidences(
        confidences=[t.confidence for t in turns],
        correct=[bool(grader(a, g)) for a, g in zip(answers, golds, strict=True)],
        answers=answers,
        signals=[t.judge_signal for t in turns],
        errors=[t.errors for t in turns],
        usage=[t.usage for t in turns],
    )


def collect_confidences(
    cascade: Pregel[Any, Any, Any, Any],
    examples: Iterable[tuple[Any, str]],
    grader: Callable[[str, str], bool],
    *,
    config: RunnableConfig | None = None,
) -> CollectedConfidences:
    """Run a cascade's weak model and judge over labelled examples.

    Each example runs through the compiled cascade up to its judge
    (``retrieve_strategy``, ``weak_answer``, ``confidence_judge``) and stops
    before ``strong_answer``: the strong model is never called and no strategy
    is distilled or added (the bank's usefulness counters do count these runs
    like any others, since the judge node records them). With a bank, the weak
    model sees the strategies retrieved for each example exactly as in
    production, which matters: strategies shift the confidence distribution,
    and the guarantee of :func:`calibrate_threshold` needs calibration data of
    the same kind as the queries it is applied to.

    Args:
        cascade: A graph from ``create_intercascade``; its judge is the one
            being calibrated. Its checkpointer, if any, is not used.
        examples: ``(input, gold)`` pairs; the input is anything the cascade
            takes (a question string, messages, ...).
        grader: ``(weak_answer_text, gold) -> bool``, e.g.
            ``langchain_intercascade.answers.make_grader("number")``.
        config: The run config; ``max_concurrency`` bounds the parallel runs
            (set 1 for a model that is not thread-safe, like llama.cpp).

    Returns:
        The confidences, correctness labels and weak answers, in input order.

    Raises:
        ValueError: If ``examples`` is empty.
    """
    graph, inputs, golds = _prepare_collection(cascade, examples)
    states = graph.batch(inputs, config, interrupt_before=["strong_answer"])
    return _collected(states, golds, grader)


async def acollect_confidences(
    cascade: Pregel[Any, Any, Any, Any],
    examples: Iterable[tuple[Any, str]],
    grader: Callable[[str, str], bool],
    *,
    config: RunnableConfig | None = None,
) -> CollectedConfidences:
    """Async :func:`collect_confidences`.

    Args:
        cascade: A graph from ``create_intercascade``.
        examples: ``(input, gold)`` pairs.
        grader: ``(weak_answer_text, gold) -> bool``.
        config: The run config; ``max_concurrency`` bounds the parallel runs.

    Returns:
        The confidences, correctness labels and weak answers, in input order.

    Raises:
        ValueError: If ``examples`` is empty.
    """
    graph, inputs, golds = _prepare_collection(cascade, examples)
    states = await graph.abatch(inputs, config, interrupt_before=["strong_answer"])
    return _collected(states, golds, grader)
