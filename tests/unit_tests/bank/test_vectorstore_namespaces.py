"""A LangChain vector store given to the bank: a small namespace is searched without the store.

LangChain's ``FAISS`` filters a namespace after its search, and
``InMemoryVectorStore`` calls a Python filter per document, so the backend scans
the namespace's own vectors instead whenever that costs less, and gets what an
exact scan of the namespace finds.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_intercascade.bank.vectorstore_backend import _VectorStoreBackend
from langchain_intercascade.strategies import Strategy, StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


_titles = itertools.count()


def records(n: int, namespace: str) -> list[StrategyRecord]:
    # Ids hash the content: each record gets a title of its own.
    return [
        StrategyRecord.create(
            Strategy(title=f"strategy {next(_titles)}", applies_when="w", steps=["x"]),
            namespace=namespace,
        )
        for _ in range(n)
    ]


def faiss_store() -> Any:
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    return FAISS(
        None,  # type: ignore[arg-type]  # the backend hands FAISS vectors, never text
        faiss.IndexFlatIP(DIM),
        InMemoryDocstore(),
        {},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )


def in_memory_store() -> InMemoryVectorStore:
    # It embeds the key texts itself; the backend scores with the vectors it was given.
    return InMemoryVectorStore(BagOfWordsEmbeddings(dim=DIM))


class Searches:
    """Counts the store's own searches."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("similarity_search_by_vector", "similarity_search_with_score_by_vector"):
            original = getattr(store, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, counted)


def exact(
    backend: _VectorStoreBackend, vector: np.ndarray, k: int, namespace: str
) -> list[tuple[str, float]]:
    held = backend.records(namespace)
    scores = backend.vectors(held) @ vector
    best = sorted(zip((r.id for r in held), scores.tolist(), strict=True), key=lambda p: -p[1])
    return [(i, round(s, 5)) for i, s in best[:k]]


@pytest.mark.parametrize("make_store", [faiss_store, in_memory_store])
def test_a_small_namespace_is_scanned_alone_and_exactly(make_store, monkeypatch):
    rng = np.random.default_rng(0)
    backend = _VectorStoreBackend(make_store())
    big, small = records(200, "big"), records(7, "small")
    backend.insert(big + small, unit(rng.standard_normal((207, DIM))))
    searches = Searches(backend.store, monkeypatch)
    for _ in range(20):
        query = unit(rng.standard_normal(DIM))
        hits = backend.nearest(query, 3, "small", "")
        assert [(h.record.id, round(h.score, 5)) for h in hits] == exact(backend, query, 3, "small")
        assert all(h.record.namespace == "small" for h in hits)
        assert np.allclose(backend.vectors([h.record for h in hits]), [h.vector for h in hits])
    assert searches.count == 0
    assert backend.nearest(unit(rng.standard_normal(DIM)), 3, "absent", "") == []


def test_a_large_namespace_of_a_faiss_store_is_searched_by_the_store(monkeypatch):
    rng = np.random.default_rng(1)
    backend = _VectorStoreBackend(faiss_store())
    held = records(150, "big") + records(50, "other")
    backend.insert(held, unit(rng.standard_normal((200, DIM))))
    searches = Searches(backend.store, monkeypatch)
    query = unit(rng.standard_normal(DIM))
    hits = backend.nearest(query, 3, "big", "")
    assert [(h.record.id, round(h.score, 5)) for h in hits] == exact(backend, query, 3, "big")
    assert searches.count >= 1


@pytest.mark.parametrize("make_store", [faiss_store, in_memory_store])
def test_deletes_and_growth_keep_each_namespace_searchable(make_store):
    rng = np.random.default_rng(2)
    backend = _VectorStoreBackend(make_store())
    held: list[StrategyRecord] = []
    for step in range(30):
        batch = records(int(rng.integers(1, 9)), f"ns{step % 3}")
        backend.insert(batch, unit(rng.standard_normal((len(batch), DIM))))
        held += batch
        doomed = [held.pop(int(i)) for i in sorted(rng.choice(len(held), 3), reverse=True)]
        backend.delete([r.id for r in doomed])
    backend.insert(records(300, "filler"), unit(rng.standard_normal((300, DIM))))
    assert backend.count() == len(held) + 300
    for namespace in ("ns0", "ns1", "ns2"):
        assert {r.id for r in backend.records(namespace)} == {
            r.id for r in held if r.namespace == namespace
        }
        query = unit(rng.standard_normal(DIM))
        hits = backend.nearest(query, 4, namespace, "")
        assert [(h.record.id, round(h.score, 5)) for h in hits] == exact(
            backend, query, 4, namespace
        )
