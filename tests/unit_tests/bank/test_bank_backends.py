"""One behavioural suite for every backend of the strategy bank.

``BankBehaviour`` runs here on the example backend of docs/bank.md ("Adding a
backend"), FAISS (the bank's own indexes, and LangChain's
``FAISS`` store given as ``vectorstore``), ``InMemoryVectorStore``, embedded Chroma
(when installed) and LangGraph's ``InMemoryStore``; the integration tests run
it on ``PostgresStore`` with pgvector (tests/integration_tests/test_postgres.py).
A backend is a ``make_bank`` fixture: ``make_bank(**options)`` builds a bank on
an empty store.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.store.memory import InMemoryStore

from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.bank import jsonl
from langchain_intercascade.strategies import StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings

# 2000 dimensions: pgvector's HNSW index takes no more, and no two words of these
# tests (nor of the Postgres multi-process test) share a hash bucket.
EMBEDDINGS = BagOfWordsEmbeddings(dim=2000)

MakeBank = Callable[..., StrategyBank]

PROBLEMS = [
    ("Equal groups", "baskets of apples each basket"),
    ("Unit price", "price of apples per kilogram"),
    ("Speed", "train speed distance time"),
    ("Percent", "percent discount on a price"),
]
# Namespaces that share prefixes or hold dots must still be kept apart.
NAMESPACES = ["tenant", "tenant-b", "a.b", "a", "100%"]


def strategy(title: str, when: str = "problems", pitfalls: list[str] | None = None) -> Strategy:
    return Strategy(
        title=title, applies_when=when, steps=[f"solve {title}"], pitfalls=pitfalls or []
    )


def fill(bank: StrategyBank, namespace: str = "default") -> list[StrategyRecord]:
    return [
        bank.add(strategy(title, query), source_query=query, namespace=namespace)
        for title, query in PROBLEMS
    ]


def baskets(n: int) -> str:
    # The embeddings ignore digits: every such query embeds alike.
    return f"Sam has {n} baskets with {n + 1} apples in each basket"


# What an import holds: near-duplicates of a stored strategy, of each other (in two
# namespaces), an exact copy of an earlier line, and distinct strategies.
IMPORTED = [
    ("Equal groups", "default", baskets(2), "Do not add"),
    ("Speed", "default", "train speed distance time", "Check units"),
    ("Equal groups", "tenant", baskets(4), "Count"),
    ("Equal groups", "default", baskets(6), "Check units"),
    ("Equal groups", "default", baskets(2), "Do not add"),
    ("Percent", "tenant", "percent discount on a price", "Round last"),
    ("Equal groups", "tenant", baskets(8), "Do NOT add"),
]


class Fault(Exception):
    """The injected failure."""


def cosine(a: str, b: str) -> float:
    return float(np.dot(EMBEDDINGS.embed_query(a), EMBEDDINGS.embed_query(b)))


class BankBehaviour:
    """What every backend does alike."""

    def test_add_and_search_score_cosine_similarities(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        fill(bank)
        found = bank.search("apples in each basket", k=2)
        assert [s.record.strategy.title for s in found] == ["Equal groups", "Unit price"]
        assert found[0].score == pytest.approx(
            cosine("apples in each basket", "baskets of apples each basket"), abs=1e-5
        )
        assert found[1].score == pytest.approx(
            cosine("apples in each basket", "price of apples per kilogram"), abs=1e-5
        )
        assert bank.search("apples in each basket", k=4, score_threshold=0.99) == []
        mmr = bank.search("apples in each basket", k=2, search_type="mmr")
        assert len(mmr) == 2 and mmr[0].record.strategy.title == "Equal groups"

    def test_namespaces_never_see_each_other(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        for namespace in NAMESPACES:
            bank.add(strategy(f"Secret of {namespace}"), namespace=namespace, source_query="apples")
        for namespace in NAMESPACES:
            found = bank.search("apples", k=10, namespace=namespace)
            assert [s.record.strategy.title for s in found] == [f"Secret of {namespace}"]
            assert [r.namespace for r in bank.records(namespace)] == [namespace]
        assert bank.search("apples", k=10) == []
        assert bank.stats().namespaces == dict.fromkeys(NAMESPACES, 1)
        # One strategy in two namespaces is two strategies, never merged across.
        shared = strategy("Shared")
        one = bank.add(shared, namespace="tenant", source_query="trains")
        two = bank.add(shared, namespace="tenant-b", source_query="trains")
        assert one.id != two.id and len(bank) == len(NAMESPACES) + 2

    def test_the_same_strategy_is_stored_once(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        first = bank.add(strategy("A"), source_query="apples")
        assert bank.add(strategy("A"), source_query="apples") == first
        assert first.id == StrategyRecord.create(strategy("A"), source_query="apples").id
        assert len(bank) == 1

    def test_the_same_strategy_from_another_query_is_found_by_both(
        self, make_bank: MakeBank
    ) -> None:
        bank = make_bank(dedup_threshold=None)
        first = bank.add(strategy("A"), source_query="apples in baskets")
        second = bank.add(strategy("A"), source_query="train timetables")
        assert first.id != second.id and len(bank) == 2
        assert bank.search("train timetables", k=1)[0].record.id == second.id

    def test_near_duplicates_merge_into_the_first(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        returned = [
            bank.add(
                strategy("Equal groups", pitfalls=[pitfall]),
                source_query=f"Sam has {n} baskets with {n + 1} apples in each basket",
            )
            for n, pitfall in enumerate(["Do not add", "Check units", "Do NOT add", "Count"])
        ]
        (kept,) = bank.records()
        assert {r.id for r in returned} == {kept.id} and kept.variants == 3
        assert kept.strategy.pitfalls == ["Do not add", "Check units", "Count"]
        assert bank.search("baskets of apples", k=1)[0].record == kept

    def test_skip_policy_and_no_threshold(self, make_bank: MakeBank) -> None:
        skipping = make_bank(dedup_policy="skip")
        first = skipping.add(strategy("First"), source_query="apples baskets")
        assert skipping.add(strategy("Second"), source_query="apples baskets") == first
        assert skipping.records() == [first]
        keeping = make_bank(dedup_threshold=None)
        keeping.add(strategy("First"), source_query="apples baskets")
        keeping.add(strategy("Second"), source_query="apples baskets")
        assert len(keeping) == 2

    def test_counters_are_kept_with_the_strategy(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        apples, price = fill(bank)[:2]
        bank.record_outcome([apples.id, price.id], accepted=True)
        bank.record_outcome([apples.id], accepted=False)
        bank.record_outcome([apples.id, "nope"], accepted=True)
        assert bank.rate(price.id, helpful=True) is not None
        assert bank.rate("nope", helpful=True) is None
        stored = bank.get(apples.id)
        assert stored is not None and stored.last_used_at is not None
        counts = (stored.times_retrieved, stored.times_accepted, stored.times_deferred)
        assert counts == (3, 2, 1)
        assert bank.search("baskets of apples", k=1)[0].record == stored
        stats = bank.stats(top=1)
        assert [r.id for r in stats.most_used] == [apples.id]
        assert [r.id for r in stats.most_helpful] == [price.id]

    def test_records_get_delete_and_len(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        assert len(bank) == 0 and bank.records() == [] and bank.search("apples") == []
        stored = fill(bank)
        other = bank.add(strategy("Other"), namespace="tenant", source_query="a tenant query")
        assert len(bank) == 5
        assert bank.records() == [*stored, other]  # oldest first
        assert bank.records("tenant") == [other]
        speed = stored[2]
        assert bank.get(speed.id) == speed and bank.get("nope") is None
        assert bank.delete([speed.id, "nope"]) == 1
        assert len(bank) == 4 and bank.get(speed.id) is None
        assert speed.id not in {s.record.id for s in bank.search("train speed", k=4)}

    def test_eviction_keeps_the_most_useful_per_namespace(self, make_bank: MakeBank) -> None:
        bank = make_bank(max_size=2)
        bank.add(strategy("Other"), source_query="elsewhere")
        liked = bank.add(strategy("Liked"), source_query="apples", namespace="tenant")
        disliked = bank.add(strategy("Disliked"), source_query="trains", namespace="tenant")
        bank.record_outcome([liked.id], accepted=True)
        bank.record_outcome([disliked.id], accepted=False)
        bank.add(strategy("New"), source_query="paint", namespace="tenant")
        assert {r.strategy.title for r in bank.records("tenant")} == {"Liked", "New"}
        bank.add(strategy("Newer"), source_query="coins", namespace="tenant")
        assert {r.strategy.title for r in bank.records("tenant")} == {"Liked", "Newer"}
        assert [r.strategy.title for r in bank.records("default")] == ["Other"]

    def test_async_methods(self, make_bank: MakeBank) -> None:
        async def run() -> tuple[int, int]:
            bank = make_bank()
            speed = Strategy(title="Speed", applies_when="distance and time", steps=["d / t"])
            record = await bank.aadd(speed, namespace="physics", source_query="train speed")
            found = await bank.asearch("train speed", namespace="physics")
            await bank.arecord_outcome([f.record.id for f in found], accepted=True)
            stored = bank.get(record.id)
            assert stored is not None
            return len(found), stored.times_accepted

        assert asyncio.run(run()) == (1, 1)

    @pytest.mark.parametrize("policy", ["merge", "skip"])
    def test_an_import_deduplicates_as_adding_one_by_one(
        self, make_bank: MakeBank, tmp_path: Any, policy: str
    ) -> None:
        lines = [
            StrategyRecord.create(
                strategy(title, pitfalls=[pitfall]), namespace=namespace, source_query=query
            )
            for title, namespace, query, pitfall in IMPORTED
        ]
        path = tmp_path / "import.jsonl"
        jsonl.write_jsonl(path, lines)
        stored = StrategyRecord.create(strategy("Stored groups"), source_query=baskets(1))
        at_once, one_by_one = make_bank(dedup_policy=policy), make_bank(dedup_policy=policy)
        at_once.add(stored), one_by_one.add(stored)
        returned = at_once.import_jsonl(path)
        expected = []
        for i, line in enumerate(lines):
            single = tmp_path / f"line-{i}.jsonl"
            jsonl.write_jsonl(single, [line])
            expected += one_by_one.import_jsonl(single)
        assert at_once.records() == one_by_one.records()
        assert returned == [one_by_one.get(r.id) for r in expected]
        titles = {(r.namespace, r.strategy.title) for r in at_once.records()}
        assert titles == {
            ("default", "Stored groups"),
            ("default", "Speed"),
            ("tenant", "Equal groups"),
            ("tenant", "Percent"),
        }
        groups = at_once.get(stored.id)
        assert groups is not None
        if policy == "merge":
            assert groups.variants == 3 and groups.strategy.pitfalls == [
                "Do not add",
                "Check units",
            ]
        else:
            assert groups == stored

    def test_embeddings_of_another_width_are_refused(self, make_bank: MakeBank) -> None:
        bank = make_bank()
        stored = fill(bank)
        bank.embeddings = BagOfWordsEmbeddings(dim=64)
        with pytest.raises(ValueError, match=r"64-dimensional.*2000-dimensional"):
            bank.add(strategy("Ages"), source_query="ages now and later")
        with pytest.raises(ValueError, match=r"64-dimensional.*2000-dimensional"):
            bank.search("apples in each basket")
        bank.embeddings = EMBEDDINGS
        assert bank.records() == stored
        assert bank.search("apples in each basket", k=1)[0].record == stored[0]

    def test_a_write_whose_eviction_fails_is_taken_back(
        self, make_bank: MakeBank, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
    ) -> None:
        bank = make_bank(max_size=4)
        fill(bank)
        before = bank.records()
        lines = [  # merged into a stored strategy, then a new one past max_size
            StrategyRecord.create(
                strategy("Groups again", pitfalls=["New pitfall"]), source_query=PROBLEMS[0][1]
            ),
            StrategyRecord.create(strategy("Ages"), source_query="ages now and later"),
        ]
        path = tmp_path / "import.jsonl"
        jsonl.write_jsonl(path, lines)
        backend = bank._backend
        delete = backend.delete
        calls: list[object] = []

        def fail_first(ids: Any) -> None:
            calls.append(list(ids))
            if len(calls) == 1:  # the eviction; taking the new strategy back then works
                raise Fault("injected")
            delete(ids)

        monkeypatch.setattr(backend, "delete", fail_first)
        with pytest.raises(Fault):
            bank.import_jsonl(path)
        monkeypatch.undo()
        assert calls[1] == [lines[1].id]
        assert bank.records() == before  # the merge undone, the new strategy taken back
        found = bank.search("ages now and later", k=4)
        assert lines[1].id not in {s.record.id for s in found}
        merged, ages = bank.import_jsonl(path)
        assert merged.id == before[0].id and merged.strategy.pitfalls == ["New pitfall"]
        assert len(bank) == 4 and bank.get(ages.id) == ages

    def test_save_and_load_into_faiss(self, make_bank: MakeBank, tmp_path: Any) -> None:
        bank = make_bank()
        fill(bank)
        fill(bank, namespace="tenant")
        bank.record_outcome([bank.records()[0].id], accepted=True)
        bank.save(tmp_path / "bank")
        copy = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS)
        assert copy.records() == bank.records()
        query = "apples in each basket"
        assert [(s.record, round(s.score, 5)) for s in copy.search(query, k=2)] == [
            (s.record, round(s.score, 5)) for s in bank.search(query, k=2)
        ]


def chroma_bank(**options: Any) -> StrategyBank:
    import chromadb
    from chromadb.config import Settings
    from langchain_chroma import Chroma

    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    store = Chroma(
        collection_name=f"strategies-{uuid.uuid4().hex[:8]}",
        client=client,
        embedding_function=EMBEDDINGS,
    )
    return StrategyBank(EMBEDDINGS, vectorstore=store, **options)


def langchain_faiss_bank(**options: Any) -> StrategyBank:
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    store = FAISS(
        EMBEDDINGS,
        faiss.IndexFlatIP(EMBEDDINGS.dim),
        InMemoryDocstore(),
        {},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )
    return StrategyBank(EMBEDDINGS, vectorstore=store, **options)


def docs_example_backend() -> type:
    """The ``DictBackend`` of docs/bank.md's "Adding a backend", defined as the page does."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "bank.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, re.DOTALL) if "DictBackend" in b]
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    exec(block, namespace)
    backend: type = namespace["DictBackend"]
    return backend


BACKENDS: dict[str, MakeBank] = {
    "docs_example": lambda **options: StrategyBank(
        EMBEDDINGS, backend=docs_example_backend()(), **options
    ),
    "faiss": lambda **options: StrategyBank(EMBEDDINGS, **options),
    "langchain_faiss": langchain_faiss_bank,
    "faiss_hnsw": lambda **options: StrategyBank(EMBEDDINGS, index_type="hnsw", **options),
    "in_memory_vectorstore": lambda **options: StrategyBank(
        EMBEDDINGS, vectorstore=InMemoryVectorStore(EMBEDDINGS), **options
    ),
    "chroma": chroma_bank,
    "langgraph_store": lambda **options: StrategyBank(
        EMBEDDINGS,
        store=InMemoryStore(index={"embed": EMBEDDINGS, "dims": EMBEDDINGS.dim}),
        **options,
    ),
}
_NO_CHROMA = pytest.mark.skipif(
    importlib.util.find_spec("langchain_chroma") is None,
    reason="chromadb and langchain-chroma are not installed (the 'chroma' extra)",
)


@pytest.fixture(
    params=[pytest.param(name, marks=[_NO_CHROMA] if name == "chroma" else []) for name in BACKENDS]
)
def make_bank(request: pytest.FixtureRequest) -> MakeBank:
    return BACKENDS[request.param]


class TestBankBackends(BankBehaviour):
    pass


def test_a_bank_takes_one_backend() -> None:
    backend = docs_example_backend()()
    with pytest.raises(ValueError, match="not backend and vectorstore"):
        StrategyBank(EMBEDDINGS, backend=backend, vectorstore=InMemoryVectorStore(EMBEDDINGS))
    with pytest.raises(ValueError, match="not to a backend"):
        StrategyBank(EMBEDDINGS, backend=backend, index_type="hnsw")
    with pytest.raises(TypeError, match="backend must be a BankBackend, got dict"):
        StrategyBank(EMBEDDINGS, backend={})  # type: ignore[arg-type]
