"""Short streams of recurring queries through the cascade, beside a standard cascade.

Two :class:`DemoTask` streams: ``support``, tickets for a support desk's queues
whose intents recur with skewed frequencies (the intents benchmark's regime, where
the small models copy the strong model's labels), and ``math``, word problems of
two recurring structures (the regime map's best case, where they mostly do not
learn). Each query is also put to a standard cascade (same models, judge and
threshold, no strategies), so the summary can say what the strategies changed on
the same queries: :class:`DemoSummary`.

The standard cascade costs little extra: where no strategy was shown its prompt
is Inter-Cascade's, so its turn is Inter-Cascade's; otherwise its weak model
answers and is judged, and its strong model is asked only when Inter-Cascade did
not ask it the same question already.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict

from langchain_intercascade.answers import extract_number, numbers_equal
from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.graph import CascadeTurn, create_intercascade
from langchain_intercascade.graph.state import DistillSkip, Route
from langchain_intercascade.judges import LogprobJudge
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.options import CascadeOptions

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

MATH_ABOUT = (
    "Two kinds of problem recur, each needing a fact the 0.5B model skips and the 1.5B "
    "model states (a week has 7 days, a dozen is 12). That is the best case the regime "
    "map found for these two models; on most problems they do not learn from strategies "
    "(README, 'Where the cascade learns')."
)

# Written for the demo in the style of Banking77's messages, under ten of its intent
# names; intent i recurs about 1/i as often (Zipf, as in benchmarks/intents).
_TICKETS: dict[str, list[str]] = {
    "card_arrival": [
        "I ordered a card two weeks ago and it still has not come.",
        "How long does a new card take to get to me?",
        "My card was supposed to be delivered by now, where is it?",
        "Still waiting for the card in the post, is that normal?",
        "When should I expect my new card to arrive?",
        "The card you sent me never turned up.",
        "Can you tell me if my card has been posted yet?",
        "It has been ten days and no card in my mailbox.",
    ],
    "lost_or_stolen_card": [
        "Someone took my wallet with my card in it.",
        "I cannot find my card anywhere, I think I dropped it.",
        "My card was stolen last night, please block it.",
        "I lost my card on holiday, what do I do?",
    ],
    "exchange_rate": [
        "What rate do you use to convert pounds to euros?",
        "How is the currency conversion rate worked out?",
        "Is your exchange rate the same as the market one?",
    ],
    "top_up_failed": [
        "I tried to add money to my account and it did not go through.",
        "Adding funds from my bank card keeps failing.",
    ],
    "pin_blocked": [
        "I typed the wrong code three times and now my card is locked.",
        "My PIN is blocked, how do I unblock it?",
    ],
    "transfer_not_received_by_recipient": [
        "I sent money to my friend yesterday and she has not got it.",
    ],
    "card_payment_fee_charged": [
        "Why was I charged an extra fee when I paid in a shop?",
    ],
    "cash_withdrawal_charge": [
        "I took cash out at an ATM and you charged me for it.",
    ],
    "change_pin": [
        "How can I set a new PIN for my card?",
    ],
    "refund_not_showing_up": [
        "The shop refunded me a week ago but I do not see the money.",
    ],
}

SUPPORT_ABOUT = (
    "Support tickets for ten queues; their intents recur, a few often (the intents "
    "benchmark's regime). The strong model's label is distilled as a strategy; the weak "
    "model is shown the labels of similar past tickets. In benchmarks/intents (Banking77, "
    "77 labels) see the README, 'Where the cascade learns', for what this buys."
)

STAGES = {
    "retrieve_strategy": "retrieving strategies",
    "weak_answer": "weak model answering",
    "confidence_judge": "judging the weak answer",
    "strong_answer": "strong model answering",
    "distill_strategy": "strong model distilling a strategy",
}
"""What the cascade is doing, by node name, as the demo's progress line says it."""


class DemoProblem(BaseModel):
    """One query of a demo stream, with its answer (a number or a label)."""

    question: str
    answer: int | str


class DemoTask(BaseModel):
    """A demo stream and how to ask and grade it.

    Attributes:
        name: The task's name (``intercascade demo --task NAME``).
        about: What the stream is, as the demo says before it starts.
        problems: The stream.
        system_prompt: A system message before each query (None: none).
        labels: A label task's labels (None: answers are numbers).
        threshold: The demo's acceptance threshold (a demo setting, not calibrated).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    about: str
    problems: tuple[DemoProblem, ...]
    system_prompt: str | None = None
    labels: LabelSet | None = None
    threshold: float

    def messages(self, problem: DemoProblem) -> list[BaseMessage]:
        """The conversation that asks ``problem``."""
        question = HumanMessage(problem.question)
        return [SystemMessage(self.system_prompt), question] if self.system_prompt else [question]

    def grade(self, text: str, answer: int | str) -> tuple[str | None, bool]:
        """The answer read from ``text``, and whether it is right."""
        if self.labels is not None:
            return self.labels.extract(text), self.labels.grade(text, str(answer))
        predicted = extract_number(text)
        return predicted, predicted is not None and numbers_equal(predicted, str(answer))

    def options(self, **values: Any) -> CascadeOptions:
        """Both cascades' options: the task's defaults under ``values``."""
        values = {"threshold": self.threshold, **values}
        if self.labels is not None:
            return self.labels.options(**values)
        # LogprobJudge("min") separated the 0.5B model's right and wrong GSM8K answers
        # best (benchmarks/judges).
        return CascadeOptions.model_validate({"judge": LogprobJudge("min"), **values})


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


def math_task() -> DemoTask:
    """The word-problem stream of :func:`demo_problems`, judged on the weakest token."""
    return DemoTask(
        name="math",
        about=MATH_ABOUT,
        problems=tuple(demo_problems()),
        system_prompt=SYSTEM_PROMPT,
        # The weakest-token probability of the 0.5B model's answers was 0.08-0.28 on GSM8K.
        threshold=0.2,
    )


def support_task() -> DemoTask:
    """Twenty-four support tickets over ten intents, in one fixed shuffled order."""
    tickets = [DemoProblem(question=t, answer=label) for label, ts in _TICKETS.items() for t in ts]
    random.Random(0).shuffle(tickets)  # fixed once, not picked by how the demo turns out
    return DemoTask(
        name="support",
        about=SUPPORT_ABOUT,
        problems=tuple(tickets),
        labels=LabelSet(labels=tuple(_TICKETS)),
        # Accept a label whose tokens the weak model gives probability 0.5 or more.
        threshold=0.5,
    )


DEMO_TASKS: dict[str, Callable[[], DemoTask]] = {"support": support_task, "math": math_task}
"""The demo's streams by name; the first is the default."""


class _Stages(BaseCallbackHandler):
    """Reports each node as it starts, for a progress line."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        stage = STAGES.get(kwargs.get("name") or "")
        if stage is not None:
            self.report(stage)


def run_demo(
    weak: BaseChatModel,
    strong: BaseChatModel,
    bank: StrategyBank,
    *,
    task: DemoTask,
    limit: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    **option_values: Any,
) -> Iterator[DemoRow]:
    """Run a demo stream through Inter-Cascade and a standard cascade, one row per query.

    Args:
        weak: The weak model.
        strong: The strong model.
        bank: Inter-Cascade's strategy bank (it learns into it).
        task: The stream, e.g. ``support_task()``.
        limit: Stop after this many problems.
        on_stage: Called with what the cascade is doing (see :data:`STAGES`),
            e.g. to update a progress line.
        **option_values: Fields of :class:`CascadeOptions` for both cascades
            (``judge``, ``threshold``, ...), over the task's own
            (:meth:`DemoTask.options`); ``threshold`` defaults to the task's.

    Yields:
        One :class:`DemoRow` per problem, as soon as it is answered.
    """
    options = task.options(**option_values)
    intercascade = create_intercascade(weak, strong, bank=bank, options=options)
    standard = create_intercascade(weak, strong, bank=None, options=options)
    config = RunnableConfig(callbacks=[_Stages(on_stage)] if on_stage else None)
    for problem in task.problems[:limit]:
        start = time.perf_counter()
        messages = task.messages(problem)
        turn = CascadeTurn.from_state(intercascade.invoke(messages, config))
        final, correct = task.grade(turn.answer, problem.answer)
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
                    standard_answer = strong.invoke(options.prompts.with_task(messages)).text
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
            standard_correct=task.grade(standard_answer, problem.answer)[1],
            bank_size=len(bank),
            seconds=time.perf_counter() - start,
            errors=turn.errors,
        )
