"""The FAISS backend's dedup check: a sign-bit prefilter, then exact scores, as a scan finds."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_intercascade.bank.backend import BankBackend
from langchain_intercascade.bank.faiss_backend import _FaissBackend, hamming_radius
from langchain_intercascade.strategies import Strategy, StrategyRecord

DIM = 64


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def at_cosine(base: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly this cosine similarity to ``base``."""
    noise = rng.standard_normal(base.shape[0]).astype(np.float32)
    noise -= (noise @ base) * base
    return unit(cosine * base + np.sqrt(1 - cosine**2) * unit(noise))


def records(n: int, namespace: str = "default", start: int = 0) -> list[StrategyRecord]:
    return [
        StrategyRecord.create(
            Strategy(title=f"s{i}", applies_when="w", steps=["x"]), namespace=namespace
        )
        for i in range(start, start + n)
    ]


def exact(backend: _FaissBackend, vector: np.ndarray, k: int, threshold: float) -> list[str]:
    # The base class's answer: filter the exact nearest records.
    return [
        h.record.id
        for h in BankBackend.near_duplicates(backend, vector, k, "default", "", threshold)
    ]


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_near_duplicates_match_an_exact_scan(index_type: str) -> None:
    rng = np.random.default_rng(0)
    backend = _FaissBackend(index_type)  # type: ignore[arg-type]
    vectors = unit(rng.standard_normal((5000, DIM)))
    backend.insert(records(5000), vectors)
    if index_type == "ivf":
        assert backend._spaces["default"].trained_at == 5000  # the retrained path keeps codes
    found = 0
    for i, cosine in enumerate(np.linspace(0.85, 1.0, 200)):
        query = at_cosine(vectors[i * 7], float(cosine), rng)
        hits = backend.near_duplicates(query, 3, "default", "", 0.9)
        found += bool(hits)
        assert [h.record.id for h in hits] == exact(backend, query, 3, 0.9)
    assert found >= 120  # the queries at cosine >= 0.9 (a little slack for the index's recall)


def test_deleted_records_leave_the_codes_too() -> None:
    rng = np.random.default_rng(1)
    backend = _FaissBackend()
    vectors = unit(rng.standard_normal((50, DIM)))
    stored = records(50)
    backend.insert(stored, vectors)
    query = at_cosine(vectors[3], 0.95, rng)
    assert [h.record.id for h in backend.near_duplicates(query, 1, "default", "", 0.9)] == [
        stored[3].id
    ]
    backend.delete([stored[3].id])
    assert backend.near_duplicates(query, 1, "default", "", 0.9) == []
    assert backend._spaces["default"].codes.index.ntotal == 49


def test_other_namespaces_are_not_duplicates() -> None:
    rng = np.random.default_rng(2)
    backend = _FaissBackend()
    vector = unit(rng.standard_normal((1, DIM)))
    backend.insert(records(1, namespace="tenant-a"), vector)
    assert backend.near_duplicates(vector[0], 1, "tenant-b", "", 0.9) == []
    assert len(backend.near_duplicates(vector[0], 1, "tenant-a", "", 0.9)) == 1


def test_the_radius_follows_the_threshold_and_gives_up_near_orthogonal() -> None:
    assert hamming_radius(1.0) == 0
    assert hamming_radius(0.95) < hamming_radius(0.9) < 128  # type: ignore[operator]
    assert hamming_radius(0.5) is None  # no radius would exclude unrelated vectors


def test_a_low_threshold_falls_back_to_the_exact_scan() -> None:
    rng = np.random.default_rng(3)
    backend = _FaissBackend()
    vectors = unit(rng.standard_normal((200, DIM)))
    backend.insert(records(200), vectors)
    query = at_cosine(vectors[0], 0.6, rng)
    assert [h.record.id for h in backend.near_duplicates(query, 2, "default", "", 0.5)] == exact(
        backend, query, 2, 0.5
    )
