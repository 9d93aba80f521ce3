"""The bank's search path: options checked, nearest strategies found and ranked.

:func:`search_backend` carries out one search of a
:class:`~langchain_intercascade.bank.StrategyBank` (``search``, ``asearch``) on
its backend, once the query is embedded: the namespace's nearest strategies,
cut at ``score_threshold``, then ranked by similarity (the more useful strategy
first among equal scores) or picked by maximal marginal relevance.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal

import numpy as np
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_intercascade.bank.backend import BankBackend, _check_namespace, _check_width
from langchain_intercascade.strategies import RetrievedStrategy

SearchType = Literal["similarity", "mmr"]
# Scores equal to this many decimals are a tie, which the more useful strategy wins.
_TIE_DECIMALS = 4


def check_search(k: int, namespace: str, search_type: str, lambda_mult: float) -> None:
    """Raise ``ValueError`` if a search option is out of range."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must lie in [0, 1], got {lambda_mult}")
    if search_type not in ("similarity", "mmr"):
        raise ValueError(f"search_type must be 'similarity' or 'mmr', got {search_type!r}")
    _check_namespace(namespace)


def search_backend(
    backend: BankBackend,
    lock: AbstractContextManager[object],
    query: str,
    vector: np.ndarray,
    k: int,
    score_threshold: float | None,
    namespace: str,
    search_type: SearchType,
    fetch_k: int,
    lambda_mult: float,
) -> list[RetrievedStrategy]:
    """Up to ``k`` strategies near a unit query vector, best (or MMR's pick) first."""
    # Similarity fetches past k so that a tie at the k-th place can go to usefulness.
    with lock:
        _check_width(vector, backend.dim, "the query")
        hits = backend.nearest(
            vector, max(fetch_k, k) if search_type == "mmr" else 2 * k, namespace, query
        )
    if score_threshold is not None:
        hits = [h for h in hits if h.score >= score_threshold]
    if search_type == "mmr" and hits:
        picked = maximal_marginal_relevance(
            vector, [h.vector.tolist() for h in hits], lambda_mult=lambda_mult, k=k
        )
        hits = [hits[i] for i in picked]
    else:
        hits = sorted(hits, key=lambda h: (-round(h.score, _TIE_DECIMALS), -h.record.usefulness))[
            :k
        ]
    return [RetrievedStrategy(record=h.record, score=h.score) for h in hits]
