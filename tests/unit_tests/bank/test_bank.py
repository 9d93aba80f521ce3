"""The strategy bank and its retriever: search, records, inspection, persistence."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_intercascade import Strategy, StrategyBank, StrategyRetriever
from langchain_intercascade.bank import FORMAT_VERSION
from langchain_intercascade.strategies import StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings


def strategy(title: str, when: str, pitfalls: list[str] | None = None) -> Strategy:
    return Strategy(
        title=title, applies_when=when, steps=[f"solve {title}"], pitfalls=pitfalls or []
    )


PROBLEMS = [
    ("Equal groups", "baskets of apples each basket"),
    ("Unit price", "price of apples per kilogram"),
    ("Speed", "train speed distance time"),
    ("Percent", "percent discount on a price"),
]


def filled_bank(**kwargs) -> StrategyBank:
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings(), **kwargs)
    for title, query in PROBLEMS:
        bank.add(strategy(title, query), source_query=query)
    return bank


def in_memory_bank() -> StrategyBank:
    embeddings = BagOfWordsEmbeddings()
    return StrategyBank(embeddings=embeddings, vectorstore=InMemoryVectorStore(embeddings))


class MinimalStore(VectorStore):
    """A third-party store that knows only the base API and dict filters."""

    def __init__(self, embeddings: BagOfWordsEmbeddings) -> None:
        self.embedder = embeddings
        self.rows: dict[str, tuple[Document, list[float]]] = {}

    def add_texts(self, texts, metadatas=None, *, ids=None, **kwargs):
        vectors = self.embedder.embed_documents(list(texts))
        for text, meta, id_, vector in zip(texts, metadatas, ids, vectors, strict=True):
            self.rows[id_] = (Document(page_content=text, metadata=meta, id=id_), vector)
        return list(ids)

    def delete(self, ids=None, **kwargs):
        for id_ in ids or []:
            self.rows.pop(id_, None)

    def similarity_search_by_vector(self, embedding, k=4, filter=None, **kwargs):
        rows = [
            (float(np.dot(vector, embedding)), doc)
            for doc, vector in self.rows.values()
            if all(doc.metadata.get(key) == value for key, value in (filter or {}).items())
        ]
        return [doc for _, doc in sorted(rows, key=lambda row: -row[0])[:k]]

    def similarity_search(self, query, k=4, **kwargs):
        return self.similarity_search_by_vector(self.embedder.embed_query(query), k, **kwargs)

    @classmethod
    def from_texts(cls, texts, embedding, metadatas=None, **kwargs):
        raise NotImplementedError


def minimal_store_bank() -> StrategyBank:
    embeddings = BagOfWordsEmbeddings()
    return StrategyBank(embeddings=embeddings, vectorstore=MinimalStore(embeddings))


STORES = pytest.mark.parametrize(
    "make", [filled_bank, in_memory_bank, minimal_store_bank], ids=["faiss", "in_memory", "other"]
)


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


# -- search ---------------------------------------------------------------------------


@STORES
def test_search_ranks_by_cosine_similarity_on_any_store(make):
    bank = make()
    if not len(bank):
        for title, query in PROBLEMS:
            bank.add(strategy(title, query), source_query=query)
    found = bank.search("apples in each basket", k=2)
    assert found[0].record.strategy.title == "Equal groups"
    assert 0 < found[1].score <= found[0].score <= 1.0 + 1e-6
    embeddings = BagOfWordsEmbeddings()
    cosine = float(
        np.dot(
            embeddings.embed_query("apples in each basket"),
            embeddings.embed_query("baskets of apples each basket"),
        )
    )
    assert found[0].score == pytest.approx(cosine, abs=1e-5)
    assert bank.search("apples in each basket", k=4, score_threshold=0.99) == []


def test_empty_bank_and_bad_arguments():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    assert bank.search("anything") == []
    with pytest.raises(ValueError, match="k must be at least 1"):
        filled_bank().search("x", k=0)
    with pytest.raises(ValueError, match="lambda_mult"):
        filled_bank().search("x", search_type="mmr", lambda_mult=2.0)
    with pytest.raises(ValueError, match="search_type"):
        filled_bank().search("x", search_type="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        filled_bank().search("x", namespace="")
    with pytest.raises(ValueError, match="max_size"):
        StrategyBank(embeddings=BagOfWordsEmbeddings(), max_size=0)
    with pytest.raises(ValueError, match="dedup_policy"):
        StrategyBank(embeddings=BagOfWordsEmbeddings(), dedup_policy="keep-all")  # type: ignore[arg-type]


def test_bank_needs_real_embeddings():
    with pytest.raises(TypeError, match="Embeddings"):
        StrategyBank(embeddings="text-embedding-3-small")  # type: ignore[arg-type]


def test_mmr_trades_similarity_for_diversity():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings(), dedup_threshold=None)
    bank.add(strategy("Apples A", "a"), source_query="apples baskets apples baskets")
    bank.add(strategy("Apples B", "b"), source_query="apples baskets apples baskets each")
    bank.add(strategy("Trains", "c"), source_query="apples trains speed")
    query = "apples baskets"
    similar = [s.record.strategy.title for s in bank.search(query, k=2)]
    mmr = bank.search(query, k=2, search_type="mmr", lambda_mult=0.25)
    diverse = [s.record.strategy.title for s in mmr]
    assert similar == ["Apples A", "Apples B"]
    assert diverse == ["Apples A", "Trains"]
    # Scores stay cosine similarities to the query whatever the ranking.
    assert mmr[1].score == pytest.approx(bank.search(query, k=3)[2].score)


def test_usefulness_breaks_ties_in_ranking():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings(), dedup_threshold=None)
    first = bank.add(strategy("First", "x"), source_query="apples baskets")
    second = bank.add(strategy("Second", "y"), source_query="apples baskets")
    bank.record_outcome([first.id], accepted=False)
    bank.record_outcome([second.id], accepted=True)
    assert [s.record.id for s in bank.search("apples baskets", k=1)] == [second.id]
    for _ in range(4):  # usefulness (1 + 1) / (5 + 2) falls below the other's 1 / 3
        bank.rate(second.id, helpful=False)
    assert [s.record.id for s in bank.search("apples baskets", k=1)] == [first.id]


def test_retriever_documents_carry_strategy_and_score():
    docs = filled_bank().as_retriever(k=1).invoke("apples in baskets")
    assert len(docs) == 1
    meta = docs[0].metadata
    assert meta["title"] == "Equal groups" and meta["namespace"] == "default"
    assert 0 < meta["score"] <= 1.0 + 1e-6
    assert docs[0].page_content.startswith("Equal groups")
    mmr = filled_bank().as_retriever(k=2, search_type="mmr").invoke("apples in baskets")
    assert len(mmr) == 2


# -- records, namespaces, inspection --------------------------------------------------


def test_the_same_strategy_is_stored_once_with_a_content_hash_id():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    first = bank.add(strategy("A", "a"))
    assert bank.add(strategy("A", "a")) == first
    assert len(bank) == 1
    assert StrategyRecord.create(strategy("A", "a")).id == first.id
    assert StrategyRecord.create(strategy("A", "a"), namespace="other").id != first.id


@STORES
def test_one_namespace_never_sees_another(make):
    bank = make()
    secret = strategy("Tenant A secret", "apples baskets")
    bank.add(secret, namespace="tenant-a", source_query="apples baskets")
    bank.add(strategy("Tenant B", "apples baskets"), namespace="tenant-b", source_query="apples")
    a = bank.search("apples baskets", k=10, namespace="tenant-a")
    assert [s.record.strategy.title for s in a] == ["Tenant A secret"]
    b = bank.search("apples baskets", k=10, namespace="tenant-b")
    assert [s.record.strategy.title for s in b] == ["Tenant B"]
    default = bank.search("apples baskets", k=10)
    assert "Tenant A secret" not in {s.record.strategy.title for s in default}
    # The same strategy in two namespaces is two strategies, never merged across.
    bank.add(secret, namespace="tenant-b", source_query="apples baskets")
    assert len(bank.records("tenant-a")) == 1 and len(bank.records("tenant-b")) == 2


def test_a_small_namespace_is_searched_in_full_beside_a_large_one():
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings(), dedup_threshold=None)
    for i in range(300):  # all closer to the query than the small namespace's strategy
        bank.add(strategy(f"Big {i}", "x"), source_query="apples baskets", namespace="big")
    bank.add(strategy("Small", "x"), source_query="apples trains", namespace="small")
    found = bank.search("apples baskets", k=2, namespace="small")
    assert [s.record.strategy.title for s in found] == ["Small"]


def test_records_list_get_delete_and_len():
    bank = filled_bank()
    bank.add(strategy("Other", "x"), namespace="tenant-a", source_query="a tenant query")
    assert len(bank) == 5 == len(bank.records())
    assert [r.strategy.title for r in bank.records()][:4] == [t for t, _ in PROBLEMS]
    assert [r.strategy.title for r in bank.records("tenant-a")] == ["Other"]
    speed = bank.records()[2]
    assert bank.get(speed.id) == speed and bank.get("nope") is None
    assert bank.delete([speed.id, "nope"]) == 1
    assert len(bank) == 4 and bank.get(speed.id) is None
    assert all(s.record.id != speed.id for s in bank.search("train speed", k=4))


def test_outcomes_and_ratings_update_counters_and_stats():
    bank = filled_bank()
    apples, price = bank.records()[:2]
    bank.record_outcome([apples.id, price.id], accepted=True)
    bank.record_outcome([apples.id], accepted=False)
    bank.record_outcome([apples.id], accepted=True)
    bank.rate(price.id, helpful=True)
    assert bank.rate("nope", helpful=True) is None
    apples = bank.get(apples.id)
    assert (apples.times_retrieved, apples.times_accepted, apples.times_deferred) == (3, 2, 1)
    assert apples.last_used_at is not None and apples.last_used_at >= apples.created_at
    assert apples.usefulness == pytest.approx(3 / 5)
    stats = bank.stats(top=1)
    assert stats.count == 4 and stats.namespaces == {"default": 4}
    assert [r.id for r in stats.most_used] == [apples.id]
    assert [r.id for r in stats.most_helpful] == [price.id]  # (1 + 1 + 1) / (2 + 2)
    assert bank.stats("elsewhere").count == 0


def test_a_record_is_a_pydantic_model_with_counters():
    record = StrategyRecord.create(strategy("A", "a"), source_query="q", model="m")
    assert record.usefulness == 0.5 and record.last_active == record.created_at
    with pytest.raises(ValueError, match="not a strategy counter"):
        record.with_counts(likes=1)
    with pytest.raises(ValueError):
        StrategyRecord(id="x", strategy=strategy("A", "a"), times_accepted=-1)
    assert StrategyRecord.model_validate_json(record.model_dump_json()) == record
    naive = StrategyRecord.model_validate({**record.model_dump(), "created_at": "2025-01-01T00:00"})
    assert naive.created_at.tzinfo is not None and naive.last_active < record.last_active


# -- persistence ----------------------------------------------------------------------


def test_save_and_load_round_trip_keeps_records_counters_and_scores(tmp_path):
    bank = filled_bank()
    bank.add(strategy("Private", "secret"), namespace="tenant-a")
    bank.record_outcome([bank.records()[0].id], accepted=True)
    bank.save(tmp_path / "bank")
    assert not list((tmp_path / "bank").glob("*.pkl"))
    loaded = StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())
    assert len(loaded) == len(bank) == 5
    assert loaded.records() == bank.records()
    query = "apples in each basket"
    assert [(s.record.id, round(s.score, 5)) for s in loaded.search(query, k=3)] == [
        (s.record.id, round(s.score, 5)) for s in bank.search(query, k=3)
    ]
    assert loaded.search("secret", namespace="tenant-a")[0].record.strategy.title == "Private"
    manifest = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 3
    assert manifest["count"] == 5 and manifest["dim"] == 256


def test_saving_over_a_bank_replaces_it_and_leaves_no_old_files(tmp_path):
    filled_bank().save(tmp_path / "bank")
    small = StrategyBank(embeddings=BagOfWordsEmbeddings())
    small.add(strategy("Only", "one"))
    small.save(tmp_path / "bank")
    assert len(StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())) == 1
    assert len(list((tmp_path / "bank").iterdir())) == 3


@pytest.mark.parametrize("crash_in", ["numpy.save", "manifest"])
def test_a_crash_mid_save_leaves_the_previous_bank_intact(tmp_path, monkeypatch, crash_in):
    filled_bank().save(tmp_path / "bank")
    before = sorted(p.name for p in (tmp_path / "bank").iterdir())
    bigger = filled_bank()
    bigger.add(strategy("Fifth", "five"))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    if crash_in == "numpy.save":
        monkeypatch.setattr(np, "save", crash)
    else:  # the data files are written; the manifest's rename fails
        monkeypatch.setattr("langchain_intercascade.bank.persistence.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(tmp_path / "bank")
    monkeypatch.undo()
    assert len(StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())) == 4
    assert sorted(p.name for p in (tmp_path / "bank").iterdir()) == before


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved strategy bank"):
        StrategyBank.load(tmp_path, embeddings=BagOfWordsEmbeddings())
    filled_bank().save(tmp_path / "bank")
    with pytest.raises(ValueError, match="256-dimensional"):
        StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings(dim=64))
    manifest = tmp_path / "bank" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())


def test_export_edit_and_import_jsonl(tmp_path):
    bank = filled_bank()
    bank.record_outcome([bank.records()[0].id], accepted=True)
    path = tmp_path / "strategies.jsonl"
    assert bank.export_jsonl(path) == 4
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["strategy"]["title"] for line in lines] == [t for t, _ in PROBLEMS]
    # A reviewer edits one strategy, deletes another and hand-writes a new one.
    lines[0]["strategy"]["steps"] = ["Multiply the groups by the size of a group"]
    del lines[3]
    lines.append({"title": "Ages", "applies_when": "ages now and later", "steps": ["Set up"]})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    fresh = StrategyBank(embeddings=BagOfWordsEmbeddings())
    imported = fresh.import_jsonl(path)
    assert [r.strategy.title for r in fresh.records()] == [
        "Equal groups",
        "Unit price",
        "Speed",
        "Ages",
    ]
    edited = imported[0]
    recreated = StrategyRecord.create(edited.strategy, source_query=edited.source_query)
    assert edited.id == recreated.id != lines[0]["id"]
    assert edited.times_accepted == 1  # counters travel with the record
    assert fresh.search("apples in each basket", k=1)[0].record.id == edited.id
    # Importing again changes nothing: ids are content hashes.
    fresh.import_jsonl(path)
    assert len(fresh) == 4
    other = StrategyBank(embeddings=BagOfWordsEmbeddings())
    other.import_jsonl(path, namespace="tenant-a")
    assert {r.namespace for r in other.records()} == {"tenant-a"}


def test_import_names_a_bad_line_and_imports_nothing(tmp_path):
    path = tmp_path / "strategies.jsonl"
    path.write_text('{"title": "Ok", "applies_when": "x", "steps": ["a"]}\n{"title": ""}\n')
    bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
    with pytest.raises(ValueError, match="line 2"):
        bank.import_jsonl(path)
    assert len(bank) == 0


# -- async ------------------------------------------------------------------------------


def test_async_add_search_and_feedback():
    async def run():
        bank = StrategyBank(embeddings=BagOfWordsEmbeddings())
        words = ["apples", "trains", "paint", "ages", "coins", "tanks", "rent", "pizza"]
        stored = await asyncio.gather(
            *(bank.aadd(strategy(w, w), source_query=f"{w} problem") for w in words)
        )
        found = await bank.asearch("apples problem", k=3)
        await bank.arecord_outcome([found[0].record.id], accepted=True)
        return bank, stored, found

    bank, stored, found = asyncio.run(run())
    assert len(bank) == 8 == len({r.id for r in stored}) and len(found) == 3
    assert bank.get(found[0].record.id).times_accepted == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_size": "3"}, "max_size"),
        ({"max_size": 2.5}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"dedup_threshold": "0.9"}, "dedup_threshold"),
        ({"dedup_threshold": True}, "dedup_threshold"),
        ({"store_prefix": "intercascade"}, "store_prefix"),
    ],
)
def test_bank_options_of_the_wrong_type_are_refused_at_construction_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StrategyBank(BagOfWordsEmbeddings(), **kwargs)
