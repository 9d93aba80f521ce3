"""A node's steps run the same under ``run`` and ``arun``: calls, failures and results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from langchain_intercascade.graph.steps import Call, Steps, arun, run


class Fault(Exception):
    """The injected failure."""


def both(value: Any) -> Call:
    """A call whose sync side returns ``value`` and async side ``-value``."""

    async def negated(v: Any) -> Any:
        return -v

    return Call(lambda v: v, negated, value)


def failing() -> Call:
    def fail() -> None:
        raise Fault("sync")

    async def afail() -> None:
        raise Fault("async")

    return Call(fail, afail)


def contained_steps() -> Steps[list[Any]]:
    seen: list[Any] = [(yield both(2))]
    try:
        yield failing()
    except Fault as exc:  # the steps see the failure where they made the call
        seen.append(str(exc))
    seen.append((yield both(3)))
    return seen


def test_run_uses_the_sync_side_and_arun_the_async_side() -> None:
    assert run(contained_steps()) == [2, "sync", 3]
    assert asyncio.run(arun(contained_steps())) == [-2, "async", -3]


def test_steps_without_calls_return_at_once() -> None:
    def nothing() -> Steps[str]:
        return "done"
        yield  # a generator all the same

    assert run(nothing()) == "done"
    assert asyncio.run(arun(nothing())) == "done"


def test_a_failure_the_steps_do_not_catch_reaches_the_caller() -> None:
    def uncaught() -> Steps[None]:
        yield failing()

    with pytest.raises(Fault, match="sync"):
        run(uncaught())
    with pytest.raises(Fault, match="async"):
        asyncio.run(arun(uncaught()))


def test_cancellation_is_not_a_failure_to_contain() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    def steps() -> Steps[str]:
        try:
            yield Call(lambda: None, cancelled)
        except Exception:
            return "contained"
        return "answered"

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(arun(steps()))


def test_keyword_arguments_reach_both_sides() -> None:
    async def apair(a: int, *, b: int) -> tuple[int, int]:
        return (a, b)

    def steps() -> Steps[Any]:
        return (yield Call(lambda a, *, b: (a, b), apair, 1, b=2))

    assert run(steps()) == asyncio.run(arun(steps())) == (1, 2)
