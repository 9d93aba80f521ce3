"""The strategy bank and its retriever."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_intercascade import Strategy, StrategyBank, StrategyRecord, StrategyRetriever
from langchain_intercascade.testing import BagOfWordsEmbeddings


def strategy(title: str, when: str) -> Strategy:
    return Strategy(title=title, applies_when=when, steps=[f"solve {title}"])


def filled_bank(**kwargs) -> StrategyBank:
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings(), **kwargs)
    for title, query in [
        ("Equal groups", "baskets of apples each basket"),
        ("Unit price", "price of apples per kilogram"),
        ("Speed", "train speed distance time"),
        ("Percent", "percent discount on a price"),
    ]:
        bank.add(strategy(title, query), source_query=query)
    return bank


class TestStrategyRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[StrategyRetriever]:
        return StrategyRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"bank": filled_bank(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how many apples in the baskets"


def test_search_ranks_by_similarity_with_cosine_scores():
    bank = filled_bank()
    found = bank.search("apples in each basket", k=2)
    assert found[0].record.strategy.title == "Equal groups"
    assert 0 < found[1].score <= found[0].score <= 1.0 + 1e-6
    assert bank.search("apples in each basket", k=4, score_threshold=0.99) == []


def test_the_same_strategy_is_stored_once():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    first = bank.add(strategy("A", "a"))
    assert bank.add(strategy("A", "a")) is first
    assert len(bank) == 1
    assert StrategyRecord.create(strategy("A", "a")).id == first.id


def test_empty_bank_and_bad_k():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    assert bank.search("anything") == []
    with pytest.raises(ValueError, match="k must be at least 1"):
        filled_bank().search("x", k=0)


def test_bank_needs_real_embeddings():
    with pytest.raises(TypeError, match="Embeddings"):
        StrategyBank(embeddings="text-embedding-3-small")  # type: ignore[arg-type]


def test_retriever_documents_carry_strategy_and_score():
    docs = filled_bank().as_retriever(k=1).invoke("apples in baskets")
    assert len(docs) == 1
    meta = docs[0].metadata
    assert meta["title"] == "Equal groups" and meta["namespace"] == "default"
    assert 0 < meta["score"] <= 1.0 + 1e-6
    assert docs[0].page_content.startswith("Equal groups")


def test_save_and_load_round_trip(tmp_path):
    bank = filled_bank()
    bank.add(strategy("Private", "secret"), namespace="tenant-a")
    bank.save(tmp_path / "bank")
    assert not list((tmp_path / "bank").glob("*.pkl"))
    loaded = StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())
    assert len(loaded) == len(bank) == 5
    assert [r.id for r in loaded.records()] == [r.id for r in bank.records()]
    query = "apples in each basket"
    assert [(s.record.id, round(s.score, 5)) for s in loaded.search(query, k=3)] == [
        (s.record.id, round(s.score, 5)) for s in bank.search(query, k=3)
    ]
    assert loaded.search("secret", namespace="tenant-a")[0].record.strategy.title == "Private"
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert manifest == {"format_version": 1, "count": 5, "dim": 256}


def test_saving_over_a_bank_replaces_it(tmp_path):
    filled_bank().save(tmp_path / "bank")
    small = StrategyBank(embeddings=BagOfWordsEmbeddings())
    small.add(strategy("Only", "one"))
    small.save(tmp_path / "bank")
    assert len(StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())) == 1


def test_a_crash_mid_save_leaves_the_previous_bank_intact(tmp_path, monkeypatch):
    filled_bank().save(tmp_path / "bank")
    bigger = filled_bank()
    bigger.add(strategy("Fifth", "five"))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(tmp_path / "bank")
    monkeypatch.undo()
    assert len(StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved strategy bank"):
        StrategyBank.load(tmp_path, embeddings=BagOfWordsEmbeddings())
    filled_bank().save(tmp_path / "bank")
    with pytest.raises(ValueError, match="256-dimensional"):
        StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings(dim=64))
    manifest = tmp_path / "bank" / "manifest.json"
    manifest.write_text(json.dumps({"format_version": 99, "count": 4, "dim": 256}))
    with pytest.raises(ValueError, match="format version 99"):
        StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())


def test_any_vectorstore_works():
    embeddings = BagOfWordsEmbeddings()
    bank = StrategyBank(embeddings=embeddings, vectorstore=InMemoryVectorStore(embeddings))
    bank.add(strategy("Equal groups", "x"), source_query="baskets of apples")
    bank.add(strategy("Speed", "y"), source_query="train speed", namespace="other")
    found = bank.search("apples in baskets", k=2)
    assert [s.record.strategy.title for s in found] == ["Equal groups"]


def test_async_add_and_search():
    async def run():
        bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
        await asyncio.gather(
            *(bank.aadd(strategy(f"S{i}", f"w{i}"), source_query=f"apples {i}") for i in range(8))
        )
        return bank, await bank.asearch("apples", k=3)

    bank, found = asyncio.run(run())
    assert len(bank) == 8 and len(found) == 3


def test_concurrent_writes_lose_nothing():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: bank.add(strategy(f"S{i % 50}", "w")), range(200)))
    assert len(bank) == 50
    assert bank.vectorstore.index.ntotal == 50  # type: ignore[union-attr]
