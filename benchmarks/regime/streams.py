"""Streams of recurring word problems for the regime map (issue 12).

``recurring_easy_stream``: 2-3-step templates like the demo's (change after buying
items; sheep left after selling), each recurring with new names and numbers.
``recurring_convention_stream``: 1-2-step templates whose answer hinges on one
convention a small model tends to skip (round a partial box up, count both ends of a
date range or a row of posts, a week has 7 days, a dozen is 12). That is what a
strategy can carry; the templates were written before any model saw them, and are
not filtered on results. Answers come from each template's own function, never from
a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from langchain_intercascade.demo import DOZENS, WEEKS
from langchain_intercascade.evaluation import Example

_NAMES = [
    "Tom", "Maria", "Kenji", "Ada", "Ben", "Cleo", "Omar", "Lena", "Ravi", "Sofia",
    "Yuki", "Diego", "Nora", "Ivan", "Amara", "Felix", "Hana", "Luis", "Mei", "Theo",
    "Zara", "Paul", "Ines", "Kofi", "Elsa", "Raj", "Tara", "Hugo", "Lily", "Sam",
]  # fmt: skip

# name, template, numbers drawn per instance (a, b, c, d), answer from them
_Template = tuple[str, str, Callable[[random.Random], dict[str, int]], Callable[..., int]]


def _change(r: random.Random) -> dict[str, int]:
    a, b = r.randint(2, 9), r.randint(2, 12)
    bills = [x for x in (20, 50, 100) if x > a * b]
    # A bill of 200 only where no smaller one covers the cost (a draw seed 0 never made).
    return {"a": a, "b": b, "c": r.choice(bills) if bills else 200}


def _sheep(r: random.Random) -> dict[str, int]:
    a, b = r.randint(3, 9), r.randint(5, 15)
    return {"a": a, "b": b, "c": r.randint(2, a * b - 1)}


def _bags(r: random.Random) -> dict[str, int]:
    c = r.randint(3, 8)
    a = r.randint(2, 9)
    b = c * r.randint(2, 6)  # so that a * b is a multiple of c
    return {"a": a, "b": b, "c": c}


def _wage(r: random.Random) -> dict[str, int]:
    return {"a": r.randint(8, 25), "b": r.randint(2, 9), "c": r.randint(2, 9)}


def _tickets(r: random.Random) -> dict[str, int]:
    a = r.randint(8, 20)
    return {"a": a, "b": r.randint(3, a - 2), "c": r.randint(1, 5), "d": r.randint(1, 6)}


TEMPLATES: list[_Template] = [
    (
        "change",
        "{n} buys {a} notebooks at ${b} each and pays with a ${c} bill. "
        "How much change does {n} get?",
        _change,
        lambda a, b, c: c - a * b,
    ),
    (
        "sheep",
        "A farm has {a} pens with {b} sheep in each pen. The farmer {n} sells {c} sheep. "
        "How many sheep are left?",
        _sheep,
        lambda a, b, c: a * b - c,
    ),
    (
        "bags",
        "{n} bakes {a} trays of cookies with {b} cookies on each tray, then packs all the "
        "cookies into bags of {c}. How many bags does {n} fill?",
        _bags,
        lambda a, b, c: a * b // c,
    ),
    (
        "wage",
        "{n} earns ${a} per hour, works {b} hours on Monday and {c} hours on Tuesday. "
        "How much does {n} earn in total?",
        _wage,
        lambda a, b, c: a * (b + c),
    ),
    (
        "tickets",
        "Tickets cost ${a} for an adult and ${b} for a child. {n} buys {c} adult tickets "
        "and {d} child tickets. How much does {n} pay?",
        _tickets,
        lambda a, b, c, d: a * c + b * d,
    ),
]


def _boxes(r: random.Random) -> dict[str, int]:
    b = r.randint(4, 12)
    return {"a": b * r.randint(2, 9) + r.randint(1, b - 1), "b": b}  # never a whole number of boxes


def _dates(r: random.Random) -> dict[str, int]:
    a = r.randint(1, 15)
    return {"a": a, "b": a + r.randint(3, 14)}


def _posts(r: random.Random) -> dict[str, int]:
    b = r.randint(2, 6)
    return {"a": b * r.randint(4, 15), "b": b}


def _weeks(r: random.Random) -> dict[str, int]:
    return {"a": r.randint(2, 9), "b": r.randint(2, 6)}


def _dozens(r: random.Random) -> dict[str, int]:
    a = r.randint(2, 6)
    return {"a": a, "b": r.randint(3, 12 * a - 2)}


CONVENTION_TEMPLATES: list[_Template] = [
    (
        "boxes",
        "{n} packs {a} books into boxes that hold {b} books each. "
        "How many boxes does {n} need to pack all the books?",
        _boxes,
        lambda a, b: -(-a // b),
    ),
    (
        "dates",
        "A fair runs every day from May {a} to May {b}, including both days. "
        "{n} has to staff it each day. On how many days does {n} work?",
        _dates,
        lambda a, b: b - a + 1,
    ),
    (
        "posts",
        "{n} builds a straight fence {a} meters long and puts a post every {b} meters, "
        "with a post at both ends. How many posts does {n} use?",
        _posts,
        lambda a, b: a // b + 1,
    ),
    (
        "weeks",
        WEEKS,
        _weeks,
        lambda a, b: a * 7 * b,
    ),
    (
        "dozens",
        DOZENS,
        _dozens,
        lambda a, b: 12 * a - b,
    ),
]


def recurring_easy_stream(per_template: int = 6, seed: int = 0) -> list[Example]:
    """2-3-step templates, interleaved: round i holds instance i of every template.

    Each instance gets a new name and new numbers (seeded), so every template
    recurs once per round, ``len(TEMPLATES)`` questions apart.

    Args:
        per_template: Instances of each template.
        seed: Seeds names and numbers.

    Returns:
        ``len(TEMPLATES) * per_template`` examples, ids ``<template>-<i>``.
    """
    return _interleaved(TEMPLATES, per_template, seed)


def recurring_convention_stream(per_template: int = 6, seed: int = 0) -> list[Example]:
    """``CONVENTION_TEMPLATES``, interleaved as in :func:`recurring_easy_stream`."""
    return _interleaved(CONVENTION_TEMPLATES, per_template, seed)


STREAMS = {"easy": recurring_easy_stream, "convention": recurring_convention_stream}


def _interleaved(templates: list[_Template], per_template: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    total = len(templates) * per_template
    names = rng.sample(_NAMES * (1 + total // len(_NAMES)), total)  # distinct up to 30
    examples = []
    for i in range(per_template):
        for kind, text, draw, solve in templates:
            numbers = draw(rng)
            examples.append(
                Example(
                    id=f"{kind}-{i}",
                    question=text.format(n=names.pop(), **numbers),
                    answer=str(solve(**numbers)),
                )
            )
    return examples
