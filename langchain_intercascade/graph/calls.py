"""How the nodes call a model: with the role's timeout, retries of transient faults, usage.

A transient fault (a rate limit, a dropped connection, a 5xx from the provider) is
retried with exponential backoff up to ``max_retries`` times. The first attempt runs
outside tenacity, which is entered only after a transient fault: its state is
cyclic garbage the collector would otherwise sweep after every call. A call that has not
answered within its role's timeout raises ``TimeoutError`` (not retried: a hung
model would only delay the answer more), nor is an exception a callback handler with
``raise_error=True`` raised (the user's, not the model's). Tokens a provider reports only to
callbacks are put on the reply (see :func:`~langchain_intercascade.costs.invoke_counted`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from langchain_intercascade.costs import ainvoke_counted, invoke_counted

T = TypeVar("T")

_SERVER_ERRORS = frozenset({429, 500, 502, 503, 504})
_CALLBACK_MANAGER = os.path.join("langchain_core", "callbacks", "manager.py")
_DISPATCH = frozenset({"handle_event", "_ahandle_event_for_handler"})


def is_rate_limit(exc: BaseException) -> bool:
    """Whether a provider refused a call for its rate limit (HTTP 429)."""
    return getattr(exc, "status_code", None) == 429 or "RateLimit" in type(exc).__name__


def raised_by_callback(exc: BaseException) -> bool:
    """Whether a callback handler with ``raise_error=True`` raised ``exc``, not the model.

    LangChain lets only such a handler's exception out of its event dispatch, so
    the dispatch is on the traceback exactly when a callback raised.
    """
    traceback = exc.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        if code.co_name in _DISPATCH and code.co_filename.endswith(_CALLBACK_MANAGER):
            return True
        traceback = traceback.tb_next
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed when repeated (a callback's error never does)."""
    if isinstance(exc, TimeoutError) or raised_by_callback(exc):
        return False
    return (
        isinstance(exc, ConnectionError)
        or getattr(exc, "status_code", None) in _SERVER_ERRORS
        or is_rate_limit(exc)
        or type(exc).__name__ in ("APIConnectionError", "InternalServerError")
    )


@functools.cache
def _retrying(max_retries: int) -> dict[str, Any]:
    return {
        "stop": stop_after_attempt(max_retries + 1),
        "wait": wait_exponential(multiplier=0.5, max=8.0) + wait_random(0, 0.5),
        "retry": retry_if_exception(is_transient),
        "reraise": True,
    }


def _in_time(call: Callable[[], T], timeout: float | None, role: str) -> T:
    if timeout is None:
        return call()
    # A thread of its own, so a hung call can be abandoned; it keeps the caller's context.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"intercascade-{role}")
    future = pool.submit(contextvars.copy_context().run, call)
    pool.shutdown(wait=False)
    try:
        return future.result(timeout)
    except FutureTimeout:
        raise TimeoutError(f"the {role} call did not answer within {timeout} s") from None


def call_model(
    runnable: Runnable[Any, Any],
    value: Any,
    config: RunnableConfig,
    *,
    role: str,
    timeout: float | None,
    max_retries: int,
    patch: RunnableConfig | None = None,
) -> Any:
    """Invoke a model with a timeout, retries of transient faults and usage capture.

    Args:
        runnable: The model (or a Runnable around one).
        value: Its input.
        config: The run's config.
        role: The call's role, for error messages.
        timeout: Seconds to wait for an answer; None waits.
        max_retries: How often a transient fault is retried.
        patch: Config for this call alone (its run name and tags in traces).

    Returns:
        The reply.

    Raises:
        TimeoutError: If the model did not answer in time.
        Exception: The model's own error, once retries are spent.
    """

    def once() -> Any:
        return _in_time(lambda: invoke_counted(runnable, value, config, patch), timeout, role)

    try:
        return once()
    except Exception as exc:
        if not (max_retries and is_transient(exc)):
            raise
        failed: Exception | None = exc

    def attempt() -> Any:
        nonlocal failed
        if failed is not None:
            exc, failed = failed, None
            raise exc
        return once()

    return Retrying(**_retrying(max_retries))(attempt)


async def acall_model(
    runnable: Runnable[Any, Any],
    value: Any,
    config: RunnableConfig,
    *,
    role: str,
    timeout: float | None,
    max_retries: int,
    patch: RunnableConfig | None = None,
) -> Any:
    """Async :func:`call_model`."""

    async def once() -> Any:
        try:
            return await asyncio.wait_for(ainvoke_counted(runnable, value, config, patch), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the {role} call did not answer within {timeout} s") from None

    try:
        return await once()
    except Exception as exc:
        if not (max_retries and is_transient(exc)):
            raise
        failed: Exception | None = exc

    async def attempt() -> Any:
        nonlocal failed
        if failed is not None:
            exc, failed = failed, None
            raise exc
        return await once()

    return await AsyncRetrying(**_retrying(max_retries))(attempt)
