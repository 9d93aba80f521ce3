"""The teacher's answers as data: deferred turns kept for fine-tuning the weak model later.

The cascade pays for every strong answer; the bank keeps only the strategy distilled
from it. With ``CascadeOptions(record_to=recorder)`` each turn the strong model
answered (route ``"strong"``) is kept as a :class:`TeacherRecord`: the conversation
as the strong model was asked it, its answer, the judge's decision, the strategy
distilled (or why none), the tenant, the time and the models. The graph's own steps
record it, where the run's bank namespace (the tenant) is known.

Two recorders are built in: :class:`StoreTeacherRecorder`, items of a LangGraph
``BaseStore`` (one store namespace per tenant, so that replicas share the records
and tenants stay apart), and :class:`JsonlTeacherRecorder`, lines of one file (a
process of its own). ``intercascade export`` and
:func:`~langchain_intercascade.finetuning.export_finetuning` write the records as
chat fine-tuning files.

Example:
    ```python
    from langgraph.store.memory import InMemoryStore

    from langchain_intercascade import create_intercascade
    from langchain_intercascade.teacher_records import StoreTeacherRecorder
    from langchain_intercascade.testing import fake_models

    weak, strong, _ = fake_models()
    recorder = StoreTeacherRecorder(InMemoryStore())
    cascade = create_intercascade(weak, strong, record_to=recorder)
    cascade.invoke("Sam has 3 boxes with 4 pens in each box. How many pens?")
    cascade.invoke("What is the capital of France?")  # accepted: not recorded
    (record,) = recorder.read()
    assert record.answer.endswith("the total is 12.")
    assert (record.tenant, record.strong_model, record.no_strategy) == (
        "default", "strong-fake", "no bank"
    )
    ```
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.store.base import BaseStore, SearchOp, validate_op_namespace
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from langchain_intercascade.bank.namespaces import store_items, store_label
from langchain_intercascade.strategies import Strategy

logger = logging.getLogger("langchain_intercascade.teacher_records")

DEFAULT_PREFIX = ("intercascade_teacher",)
"""The store namespace teacher records live under: ``(*prefix, <tenant>)``.

Not under the bank's ``("intercascade",)``: a tenant named like a bank namespace
must not share its items."""


def _aware(value: datetime) -> datetime:
    # A naive time is taken as UTC, so that every time compares with every other.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class TeacherRecord(BaseModel):
    """One deferred turn: what the strong model was asked, its answer and the cascade's decisions.

    Attributes:
        id: A random id, the record's store key.
        tenant: The run's bank namespace (``configurable["strategy_namespace"]``).
        created_at: When the turn was recorded (UTC).
        messages: The conversation as the strong model was asked it (the task's
            system prompt first, when the prompts have one), as LangChain
            messages, without providers' metadata.
        answer: The strong model's answer, as the user got it.
        weak_answer: The weak model's answer that was deferred (None: it failed).
        confidence: The judge's confidence in the weak answer.
        judge_signal: Which signal the judge used.
        threshold: The acceptance threshold in force; None when it was
            ``math.inf`` (every turn deferred).
        threshold_calibrated: Whether that threshold was calibrated.
        route: How the turn was answered: ``"strong"``.
        strong_confidence: The strong judge's confidence, when it judged.
        strategy: The strategy distilled from the answer and stored (or the
            stored one it was merged into), or None.
        strategy_id: That strategy's id in the bank.
        no_strategy: Why there is no strategy: ``"no bank"``, ``"distill off"``,
            ``"untrusted"``, ``"near_duplicate"`` or the contained error; None
            when there is one.
        weak_model: The weak model's name.
        strong_model: The strong model's name.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    tenant: str = Field(min_length=1)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    messages: list[AnyMessage] = Field(min_length=1)
    answer: str = Field(min_length=1)
    weak_answer: str | None = None
    confidence: float
    judge_signal: str = ""
    threshold: float | None
    threshold_calibrated: bool = False
    route: str = "strong"
    strong_confidence: float | None = None
    strategy: Strategy | None = None
    strategy_id: str | None = None
    no_strategy: str | None = None
    weak_model: str
    strong_model: str

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)

    @field_validator("messages")
    @classmethod
    def _without_metadata(cls, value: list[AnyMessage]) -> list[AnyMessage]:
        # Logprobs and token counts of earlier replies are bookkeeping, not conversation.
        return [
            m.model_copy(update={"response_metadata": {}, "usage_metadata": None})
            if isinstance(m, AIMessage)
            else m
            for m in value
        ]


def _chosen(
    records: Iterable[TeacherRecord], tenant: str | None, since: datetime | None
) -> list[TeacherRecord]:
    """The records of ``tenant`` (None: all) from ``since`` on, oldest first."""
    start = _aware(since) if since is not None else None
    kept = [
        r
        for r in records
        if tenant in (None, r.tenant) and (start is None or r.created_at >= start)
    ]
    return sorted(kept, key=lambda r: (r.created_at, r.id))


class TeacherRecorder(ABC):
    """Where the cascade keeps its teacher records, and reads them back.

    Subclass it to record elsewhere: :meth:`write` (and, for a native async
    path, :meth:`awrite`) and :meth:`read`. The cascade counts here what it did
    not record (:attr:`skipped`, :attr:`failed`), and a write that raises never
    reaches the user's turn: the turn's ``errors`` say so.
    """

    def __init__(self) -> None:
        self._counts_lock = threading.Lock()
        self._skipped: Counter[str] = Counter()
        self._failed = 0

    @abstractmethod
    def write(self, record: TeacherRecord) -> None:
        """Keep one record.

        Args:
            record: The record.
        """

    async def awrite(self, record: TeacherRecord) -> None:
        """Async :meth:`write`; by default :meth:`write` in a worker thread.

        Args:
            record: The record.
        """
        await asyncio.to_thread(self.write, record)

    @abstractmethod
    def read(
        self, *, tenant: str | None = None, since: datetime | None = None
    ) -> list[TeacherRecord]:
        """The records kept, oldest first.

        Args:
            tenant: Only this tenant's (None: every tenant's).
            since: Only those recorded at this time or later (a naive time is UTC).

        Returns:
            The records.
        """

    def count_skipped(self, reason: str) -> None:
        """Count a turn not recorded because the strategy filter rejected its answer.

        Args:
            reason: The filter's reason.
        """
        with self._counts_lock:
            self._skipped[reason] += 1

    def count_failed(self) -> None:
        """Count a turn whose write failed."""
        with self._counts_lock:
            self._failed += 1

    @property
    def skipped(self) -> dict[str, int]:
        """Turns not recorded because the strategy filter rejected the answer, by reason."""
        with self._counts_lock:
            return dict(self._skipped)

    @property
    def failed(self) -> int:
        """Turns whose write failed (each also in its turn's ``errors``)."""
        with self._counts_lock:
            return self._failed


class StoreTeacherRecorder(TeacherRecorder):
    """Teacher records as items of a LangGraph ``BaseStore``, one namespace per tenant.

    A record is the item ``(*prefix, <tenant>) / <record id>``, its value the
    record's JSON fields, never embedded (``index=False``, so a store with a
    semantic index does not pay for it). Tenants with a ``.`` in their name are
    percent-encoded into their label. Reads check each record's own tenant too:
    isolation does not rest on how a store matches prefixes.

    Args:
        store: The store: ``InMemoryStore`` for one process, ``PostgresStore``
            for several (the LangGraph server's own store works too).
        prefix: The namespace the records live under.

    Raises:
        ValueError: If the prefix is empty, starts with ``"langgraph"`` or holds
            a label the store refuses.
    """

    def __init__(self, store: BaseStore, prefix: tuple[str, ...] = DEFAULT_PREFIX) -> None:
        super().__init__()
        if not isinstance(store, BaseStore):
            raise TypeError(f"store must be a LangGraph BaseStore, got {type(store).__name__}")
        if not prefix:
            raise ValueError("the store prefix must hold at least one label")
        validate_op_namespace(SearchOp(tuple(prefix)))
        if prefix[0] == "langgraph":
            raise ValueError("the store prefix must not start with 'langgraph', which it keeps")
        self.store = store
        self.prefix = tuple(prefix)

    def _namespace(self, tenant: str) -> tuple[str, ...]:
        return (*self.prefix, store_label(tenant))

    def write(self, record: TeacherRecord) -> None:
        """Put the record into its tenant's namespace."""
        value = record.model_dump(mode="json")
        self.store.put(self._namespace(record.tenant), record.id, value, index=False)

    async def awrite(self, record: TeacherRecord) -> None:
        """Async :meth:`write`, with the store's own ``aput``."""
        value = record.model_dump(mode="json")
        await self.store.aput(self._namespace(record.tenant), record.id, value, index=False)

    def read(
        self, *, tenant: str | None = None, since: datetime | None = None
    ) -> list[TeacherRecord]:
        """The records kept, oldest first (see :meth:`TeacherRecorder.read`).

        Raises:
            ValueError: If an item under the prefix is not a teacher record.
        """
        where = self.prefix if tenant is None else self._namespace(tenant)
        records = []
        for item in store_items(self.store, where):
            try:
                records.append(TeacherRecord.model_validate(item.value))
            except ValidationError as exc:
                path = "/".join((*item.namespace, item.key))
                raise ValueError(f"store item {path} is not a teacher record: {exc}") from exc
        return _chosen(records, tenant, since)


class JsonlTeacherRecorder(TeacherRecorder):
    """Teacher records as lines of one JSONL file, every tenant's, each line naming its tenant.

    Lines are appended under a lock, one write each, so the threads of one
    process may share the file; replicas should share a store
    (:class:`StoreTeacherRecorder`) instead.

    Args:
        path: The file; created on the first record. Its folder must exist.

    Raises:
        ValueError: If the path's folder does not exist or the path is a folder.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ValueError(f"no folder {self.path.parent} to keep teacher records in")
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder, not a JSONL file")
        self._lock = threading.Lock()

    def write(self, record: TeacherRecord) -> None:
        """Append the record as one line."""
        line = record.model_dump_json() + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line)

    def read(
        self, *, tenant: str | None = None, since: datetime | None = None
    ) -> list[TeacherRecord]:
        """The records kept, oldest first (see :meth:`TeacherRecorder.read`).

        A last line cut short (a process stopped while writing it) is skipped
        with a warning.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If a line is not a teacher record (naming the line).
        """
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(TeacherRecord.model_validate(json.loads(line)))
            except (ValueError, ValidationError) as exc:
                if number == len(lines) and not text.endswith("\n"):
                    logger.warning("%s:%d: a record cut short is skipped", self.path, number)
                    continue
                raise ValueError(f"{self.path}:{number}: not a teacher record: {exc}") from exc
        return _chosen(records, tenant, since)


__all__ = [
    "DEFAULT_PREFIX",
    "JsonlTeacherRecorder",
    "StoreTeacherRecorder",
    "TeacherRecord",
    "TeacherRecorder",
]
