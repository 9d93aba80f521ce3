"""One body for a node's sync and async entries: the node's steps yield the calls they need.

A node's decision is plain code over plain values; what differs between
``invoke`` and ``ainvoke`` is only how a model, judge or bank is called. So a
node writes its turn once, as a generator that yields a :class:`Call` for each
model, judge or bank call and receives its result (or, at the ``yield``, the
exception it raised); :func:`run` and :func:`arun` drive it with the sync or the
async side of each call. The node's two LangGraph entries are one line each, and
a failure is contained in one ``try`` around the ``yield``, not in two copies.

Example:
    ```python
    from langchain_intercascade.graph.steps import Call, arun, run

    async def ahalf(n: int) -> float:
        return n / 2

    def halved(n: int):
        try:
            got = yield Call(lambda m: m / 2, ahalf, n)
        except ZeroDivisionError:
            return None
        return got

    assert run(halved(3)) == 1.5

    import asyncio
    assert asyncio.run(arun(halved(4))) == 2
    ```
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")


class Call:
    """A call a node's steps need: its sync and async sides and their arguments.

    Attributes:
        sync: Called by :func:`run`.
        async_: Awaited by :func:`arun`.
        args: Positional arguments of either side.
        kwargs: Keyword arguments of either side.
    """

    __slots__ = ("args", "async_", "kwargs", "sync")

    def __init__(
        self,
        sync: Callable[..., Any],
        async_: Callable[..., Awaitable[Any]],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.sync, self.async_, self.args, self.kwargs = sync, async_, args, kwargs


Steps = Generator[Call, Any, R]
"""A node's turn: yields the calls it needs, returns its state update."""


def run(steps: Steps[R]) -> R:
    """Drive ``steps`` with the sync side of each call.

    Args:
        steps: The node's generator.

    Returns:
        What the generator returns.
    """
    try:
        call = next(steps)
        while True:
            try:
                result = call.sync(*call.args, **call.kwargs)
            except Exception as exc:  # the steps decide what a failure means
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration as done:
        value: R = done.value
        return value


async def arun(steps: Steps[R]) -> R:
    """Drive ``steps`` with the async side of each call, as :func:`run` does.

    Args:
        steps: The node's generator.

    Returns:
        What the generator returns.
    """
    try:
        call = next(steps)
        while True:
            try:
                result = await call.async_(*call.args, **call.kwargs)
            except Exception as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration as done:
        value: R = done.value
        return value
