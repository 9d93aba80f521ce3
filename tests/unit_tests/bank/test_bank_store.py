"""The bank on a LangGraph store: item layout, scores, checks, shared writers, the factory.

The behaviour every backend shares is in test_bank_backends.py.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.store.base import Op, PutOp, Result
from langgraph.store.memory import InMemoryStore

from langchain_intercascade import Strategy, StrategyBank, create_intercascade
from langchain_intercascade.bank import jsonl, store_backend
from langchain_intercascade.strategies import StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings, fake_models

EMBEDDINGS = BagOfWordsEmbeddings()
SAM = "Sam has 3 boxes with 4 pens in each box. How many pens?"
ANA = "Ana has 5 boxes with 6 pens in each box. How many pens?"


def indexed_store() -> InMemoryStore:
    return InMemoryStore(index={"embed": EMBEDDINGS, "dims": EMBEDDINGS.dim})


def strategy(title: str, detail: str = "") -> Strategy:
    return Strategy(title=title, applies_when="problems", steps=[f"solve {title} {detail}"])


def test_each_strategy_is_an_item_with_its_counters():
    store = indexed_store()
    bank = StrategyBank.from_store(store)
    record = bank.add(strategy("Speed"), namespace="physics", source_query="train speed")
    bank.record_outcome([record.id], accepted=False)
    item = store.get(("intercascade", "physics"), record.id)
    assert item is not None
    assert item.value["key_text"] == "train speed" and item.value["times_deferred"] == 1
    assert item.value["strategy"]["title"] == "Speed" and item.value["namespace"] == "physics"
    vector = np.frombuffer(base64.b64decode(item.value["vector"]), dtype="<f4")
    assert vector == pytest.approx(np.asarray(EMBEDDINGS.embed_query("train speed")), abs=1e-6)
    assert store.list_namespaces(prefix=("intercascade",)) == [("intercascade", "physics")]
    assert repr(bank) == "StrategyBank(1 strategies, store=InMemoryStore)"
    assert bank.store is store and bank.vectorstore is None


def test_the_bank_score_is_the_cosine_the_store_returns():
    store = indexed_store()
    bank = StrategyBank(EMBEDDINGS, store=store, dedup_threshold=None)
    for query in ("apples in baskets", "price of apples", "train speed"):
        bank.add(strategy(query), source_query=query)
    query = "apples in each basket"
    by_bank = {s.record.id: s.score for s in bank.search(query, k=3)}
    by_store = {i.key: i.score for i in store.search(("intercascade", "default"), query=query)}
    assert by_bank == pytest.approx(by_store, abs=1e-6)


def test_a_namespace_label_escapes_what_the_store_forbids():
    store = indexed_store()
    bank = StrategyBank.from_store(store)
    bank.add(strategy("Dots"), namespace="acme.com", source_query="apples")
    bank.add(strategy("Percent"), namespace="50%", source_query="apples")
    assert set(store.list_namespaces(prefix=("intercascade",))) == {
        ("intercascade", "acme%2Ecom"),
        ("intercascade", "50%25"),
    }
    assert [r.namespace for r in bank.records("acme.com")] == ["acme.com"]


def test_the_prefix_is_configurable_and_other_items_are_left_alone():
    store = indexed_store()
    store.put(("intercascade", "notes"), "memo", {"text": "not a strategy"})
    mine = StrategyBank.from_store(store, store_prefix=("apps", "mine"))
    theirs = StrategyBank.from_store(store)
    assert len(theirs) == 0 and theirs.search("not a strategy") == []
    mine.add(strategy("Mine"), source_query="apples")
    theirs.add(strategy("Theirs"), source_query="apples")
    assert [r.strategy.title for r in mine.records()] == ["Mine"]
    assert [r.strategy.title for r in theirs.records()] == ["Theirs"] and len(theirs) == 1
    assert store.get(("apps", "mine", "default"), mine.records()[0].id) is not None
    assert store.get(("intercascade", "notes"), "memo") is not None


def test_a_store_must_search_by_cosine_with_the_banks_width():
    with pytest.raises(ValueError, match="no semantic index"):
        StrategyBank(EMBEDDINGS, store=InMemoryStore())
    with pytest.raises(ValueError, match="no semantic index"):
        StrategyBank.from_store(InMemoryStore())
    l2 = InMemoryStore(index={"embed": EMBEDDINGS, "dims": 256, "distance_type": "l2"})
    with pytest.raises(ValueError, match="distance_type='cosine'"):
        StrategyBank(EMBEDDINGS, store=l2)
    with pytest.raises(ValueError, match="not vectorstore and store"):
        StrategyBank(EMBEDDINGS, store=indexed_store(), vectorstore=InMemoryVectorStore(EMBEDDINGS))
    with pytest.raises(ValueError, match="at least one label"):
        StrategyBank(EMBEDDINGS, store=indexed_store(), store_prefix=())
    narrow = StrategyBank(BagOfWordsEmbeddings(dim=64), store=indexed_store())
    with pytest.raises(ValueError, match=r"64-dimensional.*256-dimensional"):
        narrow.add(strategy("A"))
    assert len(narrow) == 0


def test_banks_on_one_store_share_strategies_and_take_turns_writing():
    store = indexed_store()
    banks = [StrategyBank.from_store(store) for _ in range(4)]
    start = threading.Barrier(len(banks))
    first = banks[0].add(strategy("Everyone"), source_query="everyone question")

    def write(index: int) -> None:
        bank = banks[index]
        start.wait()
        for family in ("apples", "trains", "paint"):
            bank.add(strategy(family, f"by {index}"), source_query=f"{family} question {index}")
            bank.record_outcome([first.id], accepted=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(banks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = {r.strategy.title: r for r in banks[1].records()}
    assert sorted(records) == ["Everyone", "apples", "paint", "trains"]
    assert [records[f].variants for f in ("apples", "trains", "paint")] == [3, 3, 3]
    assert records["Everyone"].times_accepted == 12  # no increment lost


def test_a_record_deleted_by_another_bank_is_not_brought_back():
    store = indexed_store()
    writer, deleter = StrategyBank.from_store(store), StrategyBank.from_store(store)
    record = writer.add(strategy("Gone"), source_query="apples")
    writer.search("apples")
    assert deleter.delete([record.id]) == 1
    assert writer.rate(record.id, helpful=True) is None
    writer.record_outcome([record.id], accepted=True)
    assert len(writer) == 0 and store.search(("intercascade",)) == []


def test_create_intercascade_learns_into_a_store_with_an_index():
    weak, strong, embeddings = fake_models()
    store = InMemoryStore(index={"embed": embeddings, "dims": embeddings.dim})
    cascade = create_intercascade(weak, strong, store=store)
    assert (cascade.invoke(SAM)["route"], cascade.invoke(ANA)["route"]) == ("strong", "weak")
    (item,) = store.search(("intercascade", "default"))
    assert item.value["strategy"]["title"] == "Total from equal groups"
    assert item.value["times_accepted"] == 1


def test_a_store_without_an_index_leaves_the_cascade_standard():
    weak, strong, _ = fake_models()
    store = InMemoryStore()
    cascade = create_intercascade(weak, strong, store=store)
    assert "distill_strategy" not in cascade.get_graph().nodes
    assert cascade.invoke(SAM)["route"] == "strong" and cascade.store is store
    assert store.list_namespaces() == []


class Fault(Exception):
    """The injected failure."""


class FlakyStore(InMemoryStore):
    """Counts its batches of new items; the ``fail_on``-th is written, then raises."""

    def __init__(self, fail_on: int = 0) -> None:
        super().__init__(index={"embed": EMBEDDINGS, "dims": EMBEDDINGS.dim})
        self.fail_on = fail_on
        self.pages: list[int] = []

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        result = super().batch(ops)
        if any(isinstance(op, PutOp) and op.value is not None and op.index for op in ops):
            self.pages.append(len(ops))
            if len(self.pages) == self.fail_on:
                raise Fault("injected after the page was written")
        return result


def test_a_bulk_write_that_fails_halfway_stores_none_of_it(tmp_path, monkeypatch):
    store = FlakyStore()
    bank = StrategyBank.from_store(store)
    kept = bank.add(strategy("Kept"), source_query="apples in baskets")
    words = ["trains", "paint", "coins", "ages", "rent"]
    path = tmp_path / "import.jsonl"
    jsonl.write_jsonl(
        path, [StrategyRecord.create(strategy(w), source_query=f"{w} puzzle") for w in words]
    )
    monkeypatch.setattr(store_backend, "_BATCH", 2)
    store.fail_on, store.pages = 2, []  # three pages; the second fails
    with pytest.raises(Fault):
        bank.import_jsonl(path)
    assert store.pages == [2, 2]
    assert bank.records() == [kept] and len(store.search(("intercascade",))) == 1
    assert [s.record for s in bank.search("trains puzzle", k=5)] == [kept]
    store.fail_on = 0  # the fault is gone: the import stores every strategy
    assert len(bank.import_jsonl(path)) == 5 and len(bank) == 6
    assert bank.search("coins puzzle", k=1)[0].record.strategy.title == "coins"


def test_load_into_a_store_checks_and_writes_in_one_batch(tmp_path):
    saved = StrategyBank(EMBEDDINGS)
    for word in ("apples", "trains", "paint"):
        saved.add(strategy(word), namespace="tenant", source_query=f"{word} question")
    saved.save(tmp_path / "bank")
    store = FlakyStore()
    loaded = StrategyBank.load(tmp_path / "bank", embeddings=EMBEDDINGS, store=store)
    assert store.pages == [3] and loaded.records() == saved.records()
    (found,) = loaded.search("trains question", k=1, namespace="tenant")
    (expected,) = saved.search("trains question", k=1, namespace="tenant")
    assert found.record == expected.record and found.score == pytest.approx(expected.score)
    narrow = InMemoryStore(index={"embed": BagOfWordsEmbeddings(dim=64), "dims": 64})
    with pytest.raises(ValueError, match="256-dimensional"):
        StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings(dim=64), store=narrow)
    assert narrow.search(("intercascade",)) == []


def test_a_corrupt_stored_vector_is_named_not_scored():
    store = indexed_store()
    bank = StrategyBank.from_store(store)
    record = bank.add(strategy("Zero"), source_query="apples in baskets")
    item = store.get(("intercascade", "default"), record.id)
    assert item is not None
    zero = base64.b64encode(np.zeros(EMBEDDINGS.dim, dtype="<f4").tobytes()).decode("ascii")
    store.put(item.namespace, item.key, {**item.value, "vector": zero}, index=False)
    with pytest.raises(ValueError, match=f"stored strategy {record.id}: .*all-zero"):
        bank.search("apples in baskets")


def test_banks_importing_one_file_at_once_store_it_once(tmp_path):
    store = indexed_store()
    banks = [StrategyBank.from_store(store) for _ in range(3)]
    lines = [
        StrategyRecord.create(strategy(w, "x"), source_query=f"{w} question {n}")
        for n in range(3)
        for w in ("apples", "trains", "paint", "coins")
    ]
    path = tmp_path / "import.jsonl"
    jsonl.write_jsonl(path, lines)
    start = threading.Barrier(len(banks))
    returned: list[list[StrategyRecord]] = [[] for _ in banks]

    def run(index: int) -> None:
        start.wait()
        returned[index] = banks[index].import_jsonl(path)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(banks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each family's variants merged into one strategy, by whichever bank came first.
    assert sorted(r.strategy.title for r in banks[0].records()) == [
        "apples",
        "coins",
        "paint",
        "trains",
    ]
    assert len(store.search(("intercascade",), limit=100)) == 4
    ids = [[r.id for r in found] for found in returned]
    assert ids[0] == ids[1] == ids[2] and set(ids[0]) == {r.id for r in banks[0].records()}
