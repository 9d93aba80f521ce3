"""A short stream of recurring word problems through the cascade, beside a standard cascade.

Problems of the same structure come back with new names and numbers, which is
where Inter-Cascade can help: the first of a kind goes to the strong model, whose
strategy the weak model then gets for the next ones. Each problem is also put to
a standard cascade (same models, judge and threshold, no strategies), so the
summary can say what the strategies changed on the same problems:
:class:`DemoSummary`.

The standard cascade costs little extra: where no strategy was shown its prompt
is Inter-Cascade's, so its turn is Inter-Cascade's; otherwise its weak model
answers and is judged, and its strong model is asked only when Inter-Cascade did
not ask it the same question already.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from langchain_intercascade.answers import extract_number, numbers_equal
from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.graph import CascadeTurn, create_intercascade
from langchain_intercascade.graph.state import DistillSkip, Route

# Short steps keep the answers, and the demo, short; the last line is what is graded.
SYSTEM_PROMPT = (
    "Solve the problem step by step: one short line per step with the arithmetic, "
    "no code, no LaTeX. Finish with a line of the form 'The answer is N.'"
)

WEEKS = "{n} saves ${a} every day for {b} weeks. How many dollars does {n} save?"
DOZENS = "{n} buys {a} dozen eggs and uses {b} eggs for baking. How many eggs are left?"

# Two templates of the regime map's convention stream (benchmarks/regime), each
# needing a fact the 0.5B model skips (a week has 7 days, a dozen is 12) and the
# 1.5B model states: there, and only there, the map saw the weak model gain from
# strategies (0 to 4 right of 12, not significant). Each: how to solve it and three
# (name, a, b) instances.
_STRUCTURES: list[tuple[str, Callable[[int, int], int], list[tuple[str, int, int]]]] = [
    (WEEKS, lambda a, b: a * 7 * b, [("Tom", 5, 3), ("Maria", 8, 4), ("Kenji", 6, 2)]),
    (DOZENS, lambda a, b: 12 * a - b, [("Ada", 3, 10), ("Ben", 4, 17), ("Cleo", 5, 22)]),
]

ABOUT = (
    "Two kinds of problem recur, each needing a fact the 0.5B model skips and the 1.5B "
    "model states (a week has 7 days, a dozen is 12). That is the best case the regime "
    "map found for these two models; on most problems they do not learn from strategies "
    "(README, 'Where the cascade learns')."
)
"""What the demo stream is, as the demo says before it starts."""

STAGES = {
    "retrieve_strategy": "retrieving strategies",
    "weak_answer": "weak model answering",
    "confidence_judge": "judging the weak answer",
    "strong_answer": "strong model answering",
    "distill_strategy": "strong model distilling a strategy",
}
"""What the cascade is doing, by node name, as the demo's progress line says it."""


class DemoProblem(BaseModel):
    """One problem of the demo stream, with its answer."""

    question: str
    answer: int


class DemoRow(BaseModel):
    """One answered problem, in Inter-Cascade and in the standard cascade.

    Attributes:
        question: The problem.
        route: Inter-Cascade's route.
        confidence: The judge's confidence in Inter-Cascade's weak answer.
        threshold: The acceptance threshold.
        strategies: Titles and scores of the strategies shown to the weak model.
        new_strategy: The title of the strategy stored from this problem.
        distill_skipped: Why the strong answer was not distilled, if it was not.
        answer: The last line of Inter-Cascade's answer.
        final: The number read from it (None when it holds none).
        correct: Whether Inter-Cascade's answer is right.
        standard_route: The standard cascade's route.
        standard_correct: Whether the standard cascade's answer is right.
        bank_size: Strategies in the bank after this problem.
        seconds: Wall time for the problem, both cascades.
        errors: Failures Inter-Cascade contained.
    """

    question: str
    route: Route | None
    confidence: float
    threshold: float
    strategies: list[tuple[str, float]]
    new_strategy: str | None
    distill_skipped: DistillSkip | None
    answer: str
    final: str | None
    correct: bool
    standard_route: Route | None
    standard_correct: bool
    bank_size: int
    seconds: float
    errors: list[str]


class DemoSummary(BaseModel):
    """What the strategies changed, over the problems run.

    Attributes:
        problems: Problems run.
        accepted: Weak answers Inter-Cascade accepted.
        standard_accepted: Weak answers the standard cascade accepted.
        strong_calls: Problems Inter-Cascade sent to the strong model.
        standard_strong_calls: Problems the standard cascade sent to it.
        correct: Inter-Cascade's right answers.
        standard_correct: The standard cascade's right answers.
        distilled: Strategies distilled (stored or merged).
        distill_skipped: Strong answers not distilled.
        seconds: Wall time of the whole stream.
    """

    problems: int
    accepted: int
    standard_accepted: int
    strong_calls: int
    standard_strong_calls: int
    correct: int
    standard_correct: int
    distilled: int
    distill_skipped: int
    seconds: float

    @property
    def strong_calls_saved(self) -> int:
        """Strong calls Inter-Cascade saved against the standard cascade (negative: extra)."""
        return self.standard_strong_calls - self.strong_calls

    @classmethod
    def of(cls, rows: list[DemoRow]) -> DemoSummary:
        """Sum up the rows.

        Args:
            rows: The answered problems.

        Returns:
            The summary.
        """
        return cls(
            problems=len(rows),
            accepted=sum(r.route == "weak" for r in rows),
            standard_accepted=sum(r.standard_route == "weak" for r in rows),
            strong_calls=sum(r.route not in ("weak", None) for r in rows),
            standard_strong_calls=sum(r.standard_route not in ("weak", None) for r in rows),
            correct=sum(r.correct for r in rows),
            standard_correct=sum(r.standard_correct for r in rows),
            distilled=sum(r.new_strategy is not None for r in rows),
            distill_skipped=sum(r.distill_skipped is not None for r in rows),
            seconds=sum(r.seconds for r in rows),
        )


def demo_problems() -> list[DemoProblem]:
    """The demo stream: structures interleaved, so each recurs after the other.

    Returns:
        Six problems with their answers.
    """
    return [
        DemoProblem(question=template.format(n=n, a=a, b=b), answer=solve(a, b))
        for i in range(3)
        for template, solve, instances in _STRUCTURES
        for n, a, b in [instances[i]]
    ]


class _Stages(BaseCallbackHandler):
    """Reports each node as it starts, for a progress line."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        stage = STAGES.get(kwargs.get("name") or "")
        if stage is not None:
            self.report(stage)


def _right(text: str, answer: int) -> tuple[str | None, bool]:
    predicted = extract_number(text)
    return predicted, predicted is not None and numbers_equal(predicted, str(answer))


def run_demo(
    weak: BaseChatModel,
    strong: BaseChatModel,
    bank: StrategyBank,
    *,
    limit: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    **option_values: Any,
) -> Iterator[DemoRow]:
    """Run the demo stream through Inter-Cascade and a standard cascade, one row per problem.

    Args:
        weak: The weak model.
        strong: The strong model.
        bank: Inter-Cascade's strategy bank (it learns into it).
        limit: Stop after this many problems.
        on_stage: Called with what the cascade is doing (see :data:`STAGES`),
            e.g. to update a progress line.
        **option_values: Fields of :class:`CascadeOptions` for both cascades
            (``judge``, ``threshold``, ...).

    Yields:
        One :class:`DemoRow` per problem, as soon as it is answered.
    """
    intercascade = create_intercascade(weak, strong, bank=bank, **option_values)
    standard = create_intercascade(weak, strong, bank=None, **option_values)
    config = RunnableConfig(callbacks=[_Stages(on_stage)] if on_stage else None)
    for problem in demo_problems()[:limit]:
        start = time.perf_counter()
        messages: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT), HumanMessage(problem.question)]
        turn = CascadeTurn.from_state(intercascade.invoke(messages, config))
        final, correct = _right(turn.answer, problem.answer)
        standard_route, standard_answer = turn.route, turn.answer
        if turn.strategies:  # otherwise the standard cascade's prompt is the same
            stopped = CascadeTurn.from_state(
                standard.invoke(messages, config, interrupt_before=["strong_answer"])
            )
            standard_route, standard_answer = stopped.route, stopped.answer
            if stopped.route != "weak":  # deferred: the strong model answers
                standard_route = "strong"
                if turn.route == "strong":  # the same prompt Inter-Cascade sent it
                    standard_answer = turn.answer
                else:
                    if on_stage:
                        on_stage("strong model answering (standard cascade)")
                    standard_answer = strong.invoke(messages).text
        yield DemoRow(
            question=problem.question,
            route=turn.route,
            confidence=turn.confidence,
            threshold=turn.threshold,
            strategies=[(s.record.strategy.title, s.score) for s in turn.strategies],
            new_strategy=turn.new_strategy.strategy.title if turn.new_strategy else None,
            distill_skipped=turn.distill_skipped,
            answer=turn.answer.strip().splitlines()[-1] if turn.answer.strip() else "",
            final=final,
            correct=correct,
            standard_route=standard_route,
            standard_correct=_right(standard_answer, problem.answer)[1],
            bank_size=len(bank),
            seconds=time.perf_counter() - start,
            errors=turn.errors,
        )
