"""Distillations that finish after the answer was returned (``distill_in_background``)."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

logger = logging.getLogger("langchain_intercascade.graph")

Update = dict[str, Any]


class BackgroundDistillations:
    """A queue of distillations run on worker threads, off the answer's critical path.

    A finished distillation's update (``usage``, ``new_strategy``, ``errors``) is
    handed to ``on_finished`` or, without one, kept until :meth:`wait` hands it
    out, so its tokens can still be counted. At most ``keep`` updates are kept: past
    that the oldest is dropped and counted in :attr:`dropped`, so a server nobody
    waits on does not grow. Pending work finishes before the interpreter exits (the
    workers are joined).

    Args:
        max_workers: Distillations that run at once.
        keep: Finished updates kept for :meth:`wait`.
        on_finished: Called on the worker thread with each finished update,
            instead of keeping it; an update it raises on counts as dropped.
    """

    def __init__(
        self,
        max_workers: int = 1,
        *,
        keep: int = 1000,
        on_finished: Callable[[Update], Any] | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="intercascade-distill")
        self._lock = threading.Lock()
        # Signalled when a distillation's update is handled: a future counts as done
        # before its done-callbacks have run, so waiting on futures would miss updates.
        self._handled = threading.Condition(self._lock)
        self._pending: set[Future[Update]] = set()
        self._done: deque[Update] = deque()
        self._keep = keep
        self._on_finished = on_finished
        self._dropped = 0

    def submit(self, distill: Callable[..., Update], *args: Any) -> None:
        """Run ``distill(*args)`` on a worker, in the caller's context (tracing, callbacks)."""
        future = self._pool.submit(contextvars.copy_context().run, distill, *args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future: Future[Update]) -> None:
        # distill contains its own failures; anything else is a bug worth surfacing.
        update = future.result()
        refused = False
        if self._on_finished is not None:
            try:
                self._on_finished(update)
            except Exception:
                logger.exception("on_distilled failed; the distillation's update is dropped")
                refused = True
        # One lock for both, so that wait() never sees it neither pending nor done.
        with self._lock:
            self._pending.discard(future)
            self._handled.notify_all()
            if refused:
                self._dropped += 1
            elif self._on_finished is None:
                self._done.append(update)
                if len(self._done) > self._keep:
                    self._done.popleft()
                    self._dropped += 1

    @property
    def pending(self) -> int:
        """How many distillations have not finished."""
        with self._lock:
            return len(self._pending)

    @property
    def dropped(self) -> int:
        """Finished updates dropped unread: past ``keep``, or refused by ``on_finished``."""
        with self._lock:
            return self._dropped

    def wait(self, timeout: float | None = None) -> list[Update]:
        """Wait for the pending distillations, then hand out every kept update.

        Args:
            timeout: Seconds to wait at most; None waits for all.

        Returns:
            The kept updates of the distillations finished since the last call,
            each with ``usage`` and ``new_strategy`` or ``errors`` (none when
            ``on_finished`` takes them).
        """
        with self._lock:
            self._handled.wait_for(lambda: not self._pending, timeout)
            done, self._done = list(self._done), deque()
        return done
