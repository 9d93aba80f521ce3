"""The bank's summary: :class:`BankStats` and how :meth:`StrategyBank.stats` computes it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field

from langchain_intercascade.strategies import StrategyRecord


class BankStats(BaseModel):
    """A summary of a bank's contents, from :meth:`StrategyBank.stats`."""

    count: int = Field(description="Strategies in the scope asked for.")
    namespaces: dict[str, int] = Field(description="Strategies per namespace.")
    most_used: list[StrategyRecord] = Field(description="Most often retrieved first.")
    most_helpful: list[StrategyRecord] = Field(description="Highest usefulness first.")


def summarize(records: Sequence[StrategyRecord], top: int) -> BankStats:
    """The count, the count per namespace, and the ``top`` most used and most useful."""
    used = [r for r in records if r.times_retrieved or r.helpful or r.harmful]
    return BankStats(
        count=len(records),
        namespaces=dict(Counter(r.namespace for r in records)),
        most_used=sorted(used, key=lambda r: -r.times_retrieved)[:top],
        most_helpful=sorted(used, key=lambda r: (-r.usefulness, -r.times_retrieved))[:top],
    )
