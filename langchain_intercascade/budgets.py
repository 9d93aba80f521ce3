"""Strong-call budgets: how many strong calls, or how much money, a tenant may spend per window.

A :class:`StrongCallBudget` is one cascade option (``CascadeOptions(budget=...)``):
a limit in calls and/or money (tokens priced with a :class:`~.costs.ModelPrice`)
per tenant, the bank namespace of the run, and per hour or day (UTC windows), and
what a deferred turn over the limit gets: the weak answer (``route="weak_budget"``)
or a :class:`StrongCallBudgetExceeded` error.

:class:`BudgetLedger` keeps the spending in a LangGraph ``BaseStore``, so every
process on one store (``PostgresStore``; the LangGraph server's own) shares one
budget. Before the strong model is called, a turn *reserves* the call: it adds an
item for it, reads the tenant's window, and keeps the reservation only if the
window is within the limit with it counted (else it deletes it again). So of calls
reserved concurrently, the last one to be written sees all the others: a calls
limit is never exceeded, in one process or several; at worst two racing turns
both refuse the last call. After the call the reservation is settled with its
actual cost. A money limit admits a call while the money spent, plus the mean
cost of the window's calls for each call in flight (this one included), stays
within it: it can be exceeded only by what the calls in flight cost beyond that
mean (before the window's first call is settled, by all of what they cost).

Each reservation is one store item (and each later charge, such as a
distillation's, another); a reservation reads its tenant's window whole, in one
store call. Items carry no index (nothing is embedded) and, on a store with TTL
support, expire two windows after they were written.

Example:
    ```python
    from langgraph.store.memory import InMemoryStore

    from langchain_intercascade.budgets import BudgetLedger, StrongCallBudget

    budget = StrongCallBudget(calls=2, window="hour", store=InMemoryStore())
    ledger = BudgetLedger(budget.store, budget)
    first, second, third = (ledger.reserve("tenant-a") for _ in range(3))
    assert (first.admitted, second.admitted, third.admitted) == (True, True, False)
    ledger.settle(first, {})
    assert ledger.use("tenant-a").calls == 2 and ledger.use("tenant-b").calls == 0
    ```
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from datetime import datetime, timezone
from typing import Annotated, Any, Literal
from urllib.parse import unquote
from weakref import WeakKeyDictionary

from langgraph.store.base import BaseStore, SearchItem
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    model_validator,
)

from langchain_intercascade.bank.namespaces import store_label
from langchain_intercascade.costs import ModelPrice, Usage, total_usage

BudgetWindow = Literal["hour", "day"]
"""The span a budget's limit holds for: a UTC clock hour or a UTC day."""

OverBudget = Literal["weak", "raise"]
"""A deferred turn over budget: ``"weak"`` answers it with the weak answer; ``"raise"`` raises."""

BUDGET_PREFIX = "intercascade_budget"
"""The first label of every budget item's store namespace (apart from the bank's items)."""

_SECONDS: dict[str, int] = {"hour": 3600, "day": 86400}
_LABEL = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
_FIRST_READ = 256  # items read by a reservation's first store call; doubled while full

_Number = StrictFloat | StrictInt


class StrongCallBudget(BaseModel):
    """A limit on a tenant's strong calls per hour or day, in calls and/or money.

    Attributes:
        calls: Strong calls a tenant may make per window (0: none); None: no
            limit in calls.
        money: What a tenant's strong calls may cost per window, in the price's
            currency; None: no limit in money. Needs ``price``.
        price: The strong model's token prices; each call's cost is its strong
            tokens (answer, strong judge, distillation) at these prices.
        window: ``"hour"`` or ``"day"``, in UTC.
        over: What a deferred turn over budget gets: ``"weak"``, the weak answer
            with ``route="weak_budget"``; ``"raise"``, a
            :class:`StrongCallBudgetExceeded` error.
        store: The LangGraph store the spending is kept in. None: the store the
            cascade runs with (``create_intercascade(store=...)``, the LangGraph
            server's), else the bank's store.
        clock: Seconds since the epoch (``time.time``); tests pass their own.

    Example:
        ```python
        from langchain_intercascade.budgets import StrongCallBudget
        from langchain_intercascade.costs import ModelPrice

        price = ModelPrice(input_per_million=2.5, output_per_million=10.0)
        budget = StrongCallBudget(money=5.0, price=price, window="day")
        try:
            StrongCallBudget(money=5.0)
        except ValueError as error:
            assert "price" in str(error)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    calls: StrictInt | None = Field(default=None, ge=0)
    money: _Number | None = Field(default=None, ge=0)
    price: ModelPrice | None = None
    window: BudgetWindow = "day"
    over: OverBudget = "weak"
    store: Annotated[BaseStore | None, Field(exclude=True, repr=False)] = None
    clock: Annotated[Callable[[], float], Field(exclude=True, repr=False)] = time.time

    @model_validator(mode="after")
    def _a_limit(self) -> StrongCallBudget:
        if self.calls is None and self.money is None:
            raise ValueError("a budget needs a limit: calls, money or both")
        if self.money is not None and self.price is None:
            raise ValueError("a money limit needs the strong model's price (price=ModelPrice(...))")
        if self.money is not None and not math.isfinite(self.money):
            raise ValueError(f"money must be finite, got {self.money}")
        return self

    def cost(self, usage: Usage) -> float:
        """What a usage's strong tokens cost at :attr:`price` (0 without one).

        Args:
            usage: Tokens per model and role.

        Returns:
            The cost.
        """
        return self.price.cost(total_usage(usage, "strong")) if self.price is not None else 0.0

    def window_start(self, now: float) -> float:
        """The start of the window holding ``now`` (seconds since the epoch)."""
        span = _SECONDS[self.window]
        return now // span * span


class BudgetUse(BaseModel):
    """A tenant's use of its budget in one window.

    Attributes:
        tenant: The tenant (the bank namespace).
        window: ``"hour"`` or ``"day"``.
        window_start: When the window began (UTC).
        calls: Strong calls reserved in the window, finished or in flight.
        in_flight: Those not settled yet.
        spent: What the settled calls cost.
        calls_limit: The budget's limit in calls, or None.
        money_limit: The budget's limit in money, or None.
    """

    model_config = ConfigDict(frozen=True)

    tenant: str
    window: BudgetWindow
    window_start: datetime
    calls: int
    in_flight: int
    spent: float
    calls_limit: int | None
    money_limit: float | None

    def describe(self) -> str:
        """The use against the limits, in words.

        Returns:
            E.g. ``"3 of 10 calls, 0.0120 of 0.5000 spent this day (since
            2025-01-31 00:00 UTC)"``.
        """
        parts = [] if self.calls_limit is None else [f"{self.calls} of {self.calls_limit} calls"]
        if self.money_limit is not None:
            parts.append(f"{self.spent:.4f} of {self.money_limit:.4f} spent")
        elif self.spent:
            parts.append(f"{self.spent:.4f} spent")
        if self.in_flight:
            parts.append(f"{self.in_flight} in flight")
        since = self.window_start.strftime("%Y-%m-%d %H:%M UTC")
        return f"{', '.join(parts)} this {self.window} (since {since})"


class StrongCallBudgetExceeded(RuntimeError):
    """A deferred turn was refused its strong call: its tenant is over budget.

    Attributes:
        use: The tenant's use of the window the turn fell in.
    """

    def __init__(self, use: BudgetUse) -> None:
        super().__init__(f"tenant {use.tenant!r} is over its strong-call budget: {use.describe()}")
        self.use = use


class Reservation(BaseModel):
    """A reserved strong call (or a refused one).

    Attributes:
        admitted: Whether the call may be made.
        use: The tenant's window as the reservation saw it (this call counted when
            admitted).
        namespace: The store namespace of the tenant's window.
        key: The reservation's item key.
    """

    model_config = ConfigDict(frozen=True)

    admitted: bool
    use: BudgetUse
    namespace: tuple[str, ...]
    key: str


class _Tally(BaseModel):
    calls: int = 0
    in_flight: int = 0
    spent: float = 0.0
    settled_calls: int = 0

    @classmethod
    def of(cls, values: Iterable[dict[str, Any]]) -> _Tally:
        tally = cls()
        for value in values:
            calls, cost = int(value.get("calls", 0)), value.get("cost")
            tally.calls += calls
            tally.spent += float(cost or 0.0)
            if calls and cost is None:
                tally.in_flight += 1
            elif calls:
                tally.settled_calls += 1
        return tally

    @property
    def mean_cost(self) -> float:
        return self.spent / self.settled_calls if self.settled_calls else 0.0


_locks: WeakKeyDictionary[BaseStore, threading.Lock] = WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock(store: BaseStore) -> threading.Lock:
    # One process's reservations on a store take turns: exact in the process, and
    # InMemoryStore must not be read while another thread writes it.
    with _locks_guard:
        return _locks.setdefault(store, threading.Lock())


class BudgetLedger:
    """A budget's spending, per tenant and window, in a LangGraph store.

    Args:
        store: Where the spending is kept (shared by every process on it).
        budget: The limits.

    Attributes:
        store: The store.
        budget: The budget.
    """

    def __init__(self, store: BaseStore, budget: StrongCallBudget) -> None:
        if not isinstance(store, BaseStore):
            raise TypeError(f"a budget ledger needs a LangGraph BaseStore, got {type(store)}")
        self.store = store
        self.budget = budget
        self._ttl = 2 * _SECONDS[budget.window] / 60 if store.supports_ttl else None

    def _window(self, tenant: str, now: float) -> tuple[tuple[str, ...], float]:
        start = self.budget.window_start(now)
        label = datetime.fromtimestamp(start, timezone.utc).strftime(_LABEL[self.budget.window])
        return (BUDGET_PREFIX, store_label(tenant), f"{self.budget.window}-{label}"), start

    def _use(self, tenant: str, start: float, tally: _Tally) -> BudgetUse:
        return BudgetUse(
            tenant=tenant,
            window=self.budget.window,
            window_start=datetime.fromtimestamp(start, timezone.utc),
            calls=tally.calls,
            in_flight=tally.in_flight,
            spent=tally.spent,
            calls_limit=self.budget.calls,
            money_limit=self.budget.money,
        )

    def _read(self, namespace: tuple[str, ...]) -> list[SearchItem]:
        # One store call per read: a page read while others write could skip an item.
        # No TTL refresh: on Postgres it updates every row read, and two processes'
        # reads then deadlock each other.
        limit = _FIRST_READ
        while True:
            items = self.store.search(namespace, limit=limit, refresh_ttl=False)
            if len(items) < limit:
                return items
            limit *= 2

    def _put(self, namespace: tuple[str, ...], key: str, value: dict[str, Any]) -> None:
        if self._ttl is None:
            self.store.put(namespace, key, value, index=False)
        else:
            self.store.put(namespace, key, value, index=False, ttl=self._ttl)

    def _admits(self, tally: _Tally) -> bool:
        budget = self.budget
        if budget.calls is not None and tally.calls > budget.calls:
            return False
        if budget.money is not None:
            projected = tally.spent + tally.mean_cost * tally.in_flight
            return tally.spent < budget.money and projected <= budget.money
        return True

    def reserve(self, tenant: str) -> Reservation:
        """Reserve one strong call for ``tenant`` in the current window.

        Args:
            tenant: The tenant (the run's bank namespace).

        Returns:
            The reservation: admitted, or refused (and then not kept).
        """
        now = self.budget.clock()
        namespace, start = self._window(tenant, now)
        key = uuid.uuid4().hex
        with _lock(self.store):
            self._put(namespace, key, {"calls": 1, "cost": None, "at": now})
            try:
                tally = _Tally.of(item.value for item in self._read(namespace))
            except BaseException:
                # A call that was never admitted must not stay counted in flight.
                with suppress(Exception):
                    self.store.delete(namespace, key)
                raise
            admitted = self._admits(tally)
            if not admitted:
                self.store.delete(namespace, key)
                tally.calls -= 1
                tally.in_flight -= 1
        return Reservation(
            admitted=admitted, use=self._use(tenant, start, tally), namespace=namespace, key=key
        )

    async def areserve(self, tenant: str) -> Reservation:
        """Async :meth:`reserve` (the store is called on a worker thread)."""
        return await asyncio.to_thread(self.reserve, tenant)

    def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Record an admitted call's actual cost: its strong tokens at the budget's price.

        Args:
            reservation: The admitted reservation.
            usage: The tokens the call used (those of the strong model count).
        """
        value = {"calls": 1, "cost": self.budget.cost(usage), "at": self.budget.clock()}
        with _lock(self.store):
            self._put(reservation.namespace, reservation.key, value)

    async def asettle(self, reservation: Reservation, usage: Usage) -> None:
        """Async :meth:`settle`."""
        await asyncio.to_thread(self.settle, reservation, usage)

    def charge(self, tenant: str, usage: Usage) -> None:
        """Add the cost of strong tokens spent after a call was settled (a distillation).

        Args:
            tenant: The tenant.
            usage: The tokens (those of the strong model count).
        """
        cost = self.budget.cost(usage)
        if cost:
            now = self.budget.clock()
            namespace, _ = self._window(tenant, now)
            with _lock(self.store):
                self._put(namespace, uuid.uuid4().hex, {"calls": 0, "cost": cost, "at": now})

    async def acharge(self, tenant: str, usage: Usage) -> None:
        """Async :meth:`charge`."""
        await asyncio.to_thread(self.charge, tenant, usage)

    def use(self, tenant: str) -> BudgetUse:
        """A tenant's use of the current window.

        Args:
            tenant: The tenant.

        Returns:
            Its calls and spending so far.
        """
        namespace, start = self._window(tenant, self.budget.clock())
        with _lock(self.store):
            tally = _Tally.of(item.value for item in self._read(namespace))
        return self._use(tenant, start, tally)

    def tenants(self) -> list[BudgetUse]:
        """Every tenant's use of the current window, for those that used it.

        Returns:
            One use per tenant, by tenant.
        """
        _, start = self._window("", self.budget.clock())
        found: list[tuple[str, ...]] = []
        with _lock(self.store):
            while True:
                page = self.store.list_namespaces(
                    prefix=(BUDGET_PREFIX,), max_depth=3, limit=100, offset=len(found)
                )
                found += page
                if len(page) < 100:
                    break
        window_label = self._window("", start)[0][2]
        tenants = sorted({unquote(ns[1]) for ns in found if len(ns) == 3 and ns[2] == window_label})
        return [self.use(tenant) for tenant in tenants]
