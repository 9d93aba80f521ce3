"""The bank's own FAISS indexes: one per namespace, of the type asked for.

A namespace's search and dedup see only that namespace's index, so a tiny
namespace inside a big bank is searched exactly; HNSW and IVF banks write,
delete, save and load like flat ones.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.bank import faiss_backend, persistence
from langchain_intercascade.strategies import StrategyRecord

DIM = 32


class RandomEmbeddings(Embeddings):
    """A seeded random unit vector per text: unrelated texts are far apart."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM)
        return (vector / np.linalg.norm(vector)).tolist()


EMBEDDINGS = RandomEmbeddings()


def record(i: int, namespace: str) -> StrategyRecord:
    return StrategyRecord.create(
        Strategy(title=f"S{i}", applies_when=f"kind {i}", steps=["solve"]),
        namespace=namespace,
        source_query=f"question {i} in {namespace}",
    )


def saved(folder, counts: dict[str, int]) -> list[StrategyRecord]:
    records = [record(i, space) for space, n in counts.items() for i in range(n)]
    vectors = np.array(EMBEDDINGS.embed_documents([r.key_text for r in records]), np.float32)
    persistence.write_bank(folder, records, vectors)
    return records


def exact(records: list[StrategyRecord], query: str, k: int) -> list[str]:
    vector = np.array(EMBEDDINGS.embed_query(query))
    scores = [float(vector @ EMBEDDINGS.embed_query(r.key_text)) for r in records]
    return [records[i].id for i in np.argsort(scores)[::-1][:k]]


@pytest.fixture
def small_ivf(monkeypatch: pytest.MonkeyPatch) -> None:
    """IVF trains from 64 vectors instead of 4,096, to test it at a small size."""
    monkeypatch.setattr(faiss_backend, "_IVF_MIN_TRAIN", 64)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_a_tiny_namespace_in_a_big_bank_finds_exactly_its_nearest(tmp_path, index_type):
    records = saved(tmp_path / "bank", {"big": 3000, "tiny": 5})
    bank = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS, index_type=index_type)
    tiny = [r for r in records if r.namespace == "tiny"]
    for query in ("a question", "another one", "question 3 in tiny"):
        found = bank.search(query, k=3, namespace="tiny")
        assert [s.record.id for s in found] == exact(tiny, query, 3)
    assert len(bank.search("a question", k=10, namespace="tiny")) == 5


def test_dedup_compares_within_the_namespace_only(tmp_path):
    saved(tmp_path / "bank", {"big": 500})
    bank = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS)
    twin = record(7, "big")  # the same key text as a stored strategy, elsewhere
    stored = bank.add(twin.model_copy(update={"namespace": "other", "id": "other-7"}))
    assert stored.namespace == "other" and len(bank) == 501


@pytest.mark.usefixtures("small_ivf")
@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_banks_write_delete_save_and_load(tmp_path, index_type):
    records = saved(tmp_path / "bank", {"a": 150, "b": 20})
    bank = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS, index_type=index_type)
    added = [bank.add(record(i, "a")) for i in range(150, 200)]  # IVF trains again past 4x
    gone = [r.id for r in records[:30]]
    assert bank.delete(gone) == 30
    held = records[30:] + added
    for r in held[::7]:
        top = bank.search(r.key_text, k=1, namespace=r.namespace)[0]
        assert top.record.id == r.id and top.score == pytest.approx(1.0, abs=1e-5)
    found = bank.search("question 3 in a", k=20, namespace="a")
    assert len(found) == 20 and not {s.record.id for s in found} & set(gone)
    bank.save(tmp_path / "copy")
    copy = StrategyBank.load(tmp_path / "copy", embeddings=EMBEDDINGS, index_type=index_type)
    assert copy.records() == bank.records()
    query = "question 77 in a"
    assert [s.record.id for s in copy.search(query, namespace="a")] == [
        s.record.id for s in bank.search(query, namespace="a")
    ]


@pytest.mark.usefixtures("small_ivf")
def test_an_ivf_namespace_trains_once_it_is_large_enough(tmp_path):
    bank = StrategyBank(EMBEDDINGS, index_type="ivf", dedup_threshold=None)
    for i in range(70):
        bank.add(record(i, "a"))
    spaces = bank._backend._spaces  # type: ignore[attr-defined]
    assert spaces["a"].trained_at == 64 and type(spaces["a"].index).__name__ == "IndexIVFFlat"


def test_index_type_is_validated():
    with pytest.raises(ValueError, match="index_type must be one of 'flat', 'hnsw', 'ivf'"):
        StrategyBank(EMBEDDINGS, index_type="annoy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not to a vectorstore"):
        StrategyBank(EMBEDDINGS, vectorstore=InMemoryVectorStore(EMBEDDINGS), index_type="hnsw")


def test_a_large_hnsw_namespace_is_searched_with_a_wider_beam(tmp_path, monkeypatch):
    # One beam slot per 10 vectors here (per 2,000 in use): 64 would miss neighbours at 1M.
    monkeypatch.setattr(faiss_backend, "_HNSW_EF_SHARE", 10)
    records = saved(tmp_path / "bank", {"big": 1500, "small": 50})
    bank = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS, index_type="hnsw")
    spaces = bank._backend._spaces  # type: ignore[attr-defined]
    beam = {}
    for namespace in ("big", "small"):
        held = [r for r in records if r.namespace == namespace]
        found = bank.search("a question", k=3, namespace=namespace)
        assert [s.record.id for s in found] == exact(held, "a question", 3)
        graph = faiss_backend._faiss().downcast_index(spaces[namespace].index.index)
        beam[namespace] = graph.hnsw.efSearch
    assert beam == {"big": 150, "small": 64}
