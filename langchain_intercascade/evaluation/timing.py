"""Model-call latency that survives the call cache: :class:`CallTimes` and the per-query timer."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumps
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult


class CallTimes:
    """Seconds each distinct model call took when it was actually made.

    A cached call returns in microseconds; reporting that as latency would make
    whichever configuration ran a prompt second look free. The ledger keeps the
    first measured duration per (prompt, parameters) and reports it for every
    later identical call. With a ``path`` it persists next to the call cache.

    Args:
        path: A SQLite file to keep the durations in; None keeps them in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS intercascade_call_seconds "
            "(key TEXT PRIMARY KEY, seconds REAL NOT NULL)"
        )
        self._db.commit()

    def seconds(self, key: str, measured: float) -> float:
        """The call's duration: the stored one if the call was made before, else ``measured``."""
        with self._lock:
            row = self._db.execute(
                "SELECT seconds FROM intercascade_call_seconds WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                return float(row[0])
            self._db.execute(
                "INSERT INTO intercascade_call_seconds (key, seconds) VALUES (?, ?)",
                (key, measured),
            )
            self._db.commit()
            return measured

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class _QueryTimer(BaseCallbackHandler):
    """Sums the (ledger) durations of the model calls made for one query."""

    def __init__(self, ledger: CallTimes) -> None:
        self.ledger = ledger
        self.total = 0.0
        self._started: dict[UUID, tuple[str, float]] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        params = json.dumps(kwargs.get("invocation_params") or {}, sort_keys=True, default=str)
        # Message ids differ between runs; like LangChain's cache, key on content only.
        prompt = dumps([[m.model_copy(update={"id": None}) for m in ms] for ms in messages])
        key = hashlib.sha256(f"{prompt}\x00{params}".encode()).hexdigest()
        self._started[run_id] = (key, time.perf_counter())

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            key, start = started
            self.total += self.ledger.seconds(key, time.perf_counter() - start)
