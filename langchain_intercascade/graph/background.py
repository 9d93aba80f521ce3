"""Distillations that finish after the answer was returned (``distill_in_background``)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Any


class BackgroundDistillations:
    """A queue of distillations run on worker threads, off the answer's critical path.

    A finished distillation's update (``usage``, ``new_strategy``, ``errors``) is
    kept until :meth:`wait` hands it out, so its tokens can still be counted.
    Pending work finishes before the interpreter exits (the workers are joined).

    Args:
        max_workers: Distillations that run at once.
    """

    def __init__(self, max_workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="intercascade-distill")
        self._lock = threading.Lock()
        self._pending: set[Future[dict[str, Any]]] = set()
        self._done: list[dict[str, Any]] = []

    def submit(self, distill: Callable[..., dict[str, Any]], *args: Any) -> None:
        """Run ``distill(*args)`` on a worker, in the caller's context (tracing, callbacks)."""
        future = self._pool.submit(contextvars.copy_context().run, distill, *args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: Future[dict[str, Any]]) -> None:
        with self._lock:
            self._pending.discard(future)
            # distill contains its own failures; anything else is a bug worth surfacing.
            self._done.append(future.result())

    @property
    def pending(self) -> int:
        """How many distillations have not finished."""
        with self._lock:
            return len(self._pending)

    def wait(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for the pending distillations, then hand out every finished update.

        Args:
            timeout: Seconds to wait at most; None waits for all.

        Returns:
            The updates of the distillations finished since the last call, each
            with ``usage`` and ``new_strategy`` or ``errors``.
        """
        with self._lock:
            pending = list(self._pending)
        wait_all(pending, timeout)
        with self._lock:
            done, self._done = self._done, []
        return done
