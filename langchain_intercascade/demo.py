"""A short stream of recurring word problems through the cascade, on local models.

Problems of the same structure come back with new names and numbers, which is
where Inter-Cascade helps: the first of a kind goes to the strong model, whose
strategy the weak model then gets for the next ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel

from langchain_intercascade.answers import extract_number, numbers_equal
from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.graph import CascadeTurn, InterCascadeGraph

SYSTEM_PROMPT = (
    "Solve the math word problem. Think step by step, then give the final number "
    "on its own last line as 'Answer: <number>'."
)

# Each structure: a template, how to solve it, and three (name, a, b, c) instances.
_STRUCTURES: list[tuple[str, Callable[[int, int, int], int], list[tuple[str, int, int, int]]]] = [
    (
        "{n} buys {a} notebooks at ${b} each and pays with a ${c} bill. "
        "How much change does {n} get?",
        lambda a, b, c: c - a * b,
        [("Tom", 3, 4, 20), ("Maria", 5, 3, 50), ("Kenji", 4, 6, 30)],
    ),
    (
        "A farm has {a} pens with {b} sheep in each pen. The farmer {n} sells {c} sheep. "
        "How many sheep are left?",
        lambda a, b, c: a * b - c,
        [("Ada", 6, 8, 10), ("Ben", 7, 9, 20), ("Cleo", 5, 12, 15)],
    ),
]


class DemoProblem(BaseModel):
    """One problem of the demo stream, with its answer."""

    question: str
    answer: int


def demo_problems() -> list[DemoProblem]:
    """The demo stream: structures interleaved, so each recurs after the other.

    Returns:
        Six problems with their answers.
    """
    return [
        DemoProblem(question=template.format(n=n, a=a, b=b, c=c), answer=solve(a, b, c))
        for i in range(3)
        for template, solve, instances in _STRUCTURES
        for n, a, b, c in [instances[i]]
    ]


def run_demo(
    cascade: InterCascadeGraph, bank: StrategyBank, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Run the demo stream, yielding one row per problem as it is answered.

    Args:
        cascade: The cascade to run.
        bank: Its strategy bank (for the bank size column).
        limit: Stop after this many problems.

    Yields:
        Rows with the question, route, confidence, threshold, strategies used,
        the new strategy's title, the answer's last line, the final number read
        from the answer (None when it holds none) and whether it is right.
    """
    for problem in demo_problems()[:limit]:
        turn = CascadeTurn.from_state(
            cascade.invoke([SystemMessage(SYSTEM_PROMPT), HumanMessage(problem.question)])
        )
        predicted = extract_number(turn.answer)
        yield {
            "question": problem.question,
            "route": turn.route,
            "confidence": turn.confidence,
            "threshold": turn.threshold,
            "strategies": [(s.record.strategy.title, s.score) for s in turn.strategies],
            "new_strategy": turn.new_strategy.strategy.title if turn.new_strategy else None,
            "answer": turn.answer.strip().splitlines()[-1] if turn.answer.strip() else "",
            "final": predicted,
            "correct": predicted is not None and numbers_equal(predicted, str(problem.answer)),
            "bank_size": len(bank),
            "errors": turn.errors,
        }
