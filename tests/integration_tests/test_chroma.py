"""The strategy bank on Chroma: an embedded folder, and a ``chroma run`` server on 127.0.0.1.

The server is started and stopped here. With it, banks in several processes share
one set of strategies: what one process adds, the others see, and dedup holds
across processes.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from loopback import free_port, serving

from langchain_intercascade import Strategy, StrategyBank, create_intercascade
from langchain_intercascade.bank import jsonl, persistence
from langchain_intercascade.strategies import StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("langchain_chroma") is None,
        reason="chromadb and langchain-chroma are not installed (the 'chroma' extra)",
    ),
    # The server is on loopback; every other host stays blocked.
    pytest.mark.allow_hosts(["127.0.0.1"]),
]

EMBEDDINGS = BagOfWordsEmbeddings(dim=4096)  # no two test words share a hash bucket
PROCESSES = 4
LETTERS = "abcdefgh"  # the embeddings ignore digits: names are built from letters


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def chroma_store(client: Any, collection: str) -> Any:
    from langchain_chroma import Chroma

    return Chroma(collection_name=collection, client=client, embedding_function=EMBEDDINGS)


def http_client(port: int) -> Any:
    import chromadb

    return chromadb.HttpClient(host="127.0.0.1", port=port, settings=_settings())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A ``chroma run`` server on a free loopback port; yields the port."""
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).with_name("chroma")
    with serving(
        [str(chroma), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(folder)],
        ready=lambda: bool(http_client(port).heartbeat()),
        log=folder / "server.log",
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    ):
        yield port


@pytest.fixture(params=["embedded", "server"])
def make_bank(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Builds banks on one fresh collection, as separate clients would."""
    collection = f"strategies-{uuid.uuid4().hex[:8]}"
    if request.param == "server":
        port = request.getfixturevalue("server")

        def client() -> Any:
            return http_client(port)
    else:
        import chromadb

        def client() -> Any:
            return chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=_settings())

    def make(**kwargs: Any) -> StrategyBank:
        return StrategyBank(EMBEDDINGS, vectorstore=chroma_store(client(), collection), **kwargs)

    return make


def strategy(word: str, detail: str = "") -> Strategy:
    return Strategy(
        title=word, applies_when=f"problems about {word}", steps=[f"use {word} {detail}"]
    )


def test_search_namespaces_and_inspection(make_bank):
    bank = make_bank()
    for word in ("apples", "trains", "paint"):
        bank.add(strategy(word), source_query=f"a question about {word}")
    bank.add(strategy("secret"), source_query="a question about apples", namespace="tenant-a")
    found = bank.search("apples question", k=2)
    assert found[0].record.strategy.title == "apples"
    assert found[0].score == pytest.approx(
        sum(
            a * b
            for a, b in zip(
                EMBEDDINGS.embed_query("apples question"),
                EMBEDDINGS.embed_query("a question about apples"),
                strict=True,
            )
        ),
        abs=1e-5,
    )  # a cosine, as on FAISS
    assert "secret" not in {s.record.strategy.title for s in bank.search("apples", k=10)}
    assert [s.record.strategy.title for s in bank.search("apples", namespace="tenant-a")] == [
        "secret"
    ]
    assert len(bank) == 4 and bank.stats().namespaces == {"default": 3, "tenant-a": 1}
    assert [r.strategy.title for r in bank.records("default")] == ["apples", "trains", "paint"]
    assert len(bank.search("apples question", k=2, search_type="mmr")) == 2
    trains = bank.records()[1]
    assert bank.delete([trains.id]) == 1 and bank.get(trains.id) is None and len(bank) == 3


def test_another_client_sees_the_same_records_and_counters(make_bank, tmp_path):
    writer = make_bank(max_size=3)
    stored = writer.add(strategy("apples"), source_query="apples in baskets")
    writer.record_outcome([stored.id], accepted=True)
    writer.rate(stored.id, helpful=True)
    for i in range(10):  # near-duplicates: same key, new wording
        writer.add(strategy("apples", f"variant {i}"), source_query=f"apples in {i} baskets")
    reader = make_bank()
    (record,) = reader.records()
    assert record.id == stored.id and record.variants == 10
    assert (record.times_accepted, record.helpful) == (1, 1)
    assert reader.search("apples baskets", k=1)[0].record == record
    for word in ("trains", "paint", "coins"):
        writer.add(strategy(word), source_query=f"about {word}")
    assert len(reader) == 3  # the size limit evicted the least useful
    assert reader.get(stored.id) is not None
    # The whole shared bank can be saved to a folder and loaded into FAISS.
    reader.save(tmp_path / "saved")
    copy = StrategyBank.load(tmp_path / "saved", embeddings=EMBEDDINGS)
    assert copy.records() == reader.records()


def test_a_bank_loads_into_chroma_in_batches_and_checks_widths(make_bank, tmp_path):
    small = BagOfWordsEmbeddings(dim=256)  # Chroma indexes 4096 dimensions slowly
    words = [a + b + c + d for a in LETTERS for b in LETTERS for c in LETTERS for d in LETTERS]
    jsonl.write_jsonl(
        tmp_path / "strategies.jsonl",
        [
            StrategyRecord.create(strategy(word), source_query=f"{word} question")
            for word in words[:1100]  # two of Chroma's batches
        ],
    )
    source = StrategyBank(small, dedup_threshold=None)
    source.import_jsonl(tmp_path / "strategies.jsonl")
    source.save(tmp_path / "saved")
    store = make_bank().vectorstore
    loaded = StrategyBank.load(tmp_path / "saved", embeddings=small, vectorstore=store)
    assert len(loaded) == 1100 and loaded.records() == source.records()
    loaded.save(tmp_path / "again")  # the vectors went in beside their records
    again = persistence.read_bank(tmp_path / "again")
    np.testing.assert_allclose(again.vectors, persistence.read_bank(tmp_path / "saved").vectors)
    # Another client learns the width from the collection and refuses another one.
    wide = make_bank()
    with pytest.raises(ValueError, match="4096-dimensional.*256-dimensional"):
        wide.add(strategy("ages"), source_query="ages question")
    with pytest.raises(ValueError, match="4096-dimensional.*256-dimensional"):
        wide.search("abcd question")
    assert len(wide) == 1100


def test_the_cascade_runs_on_a_chroma_bank_per_tenant(make_bank):
    bank = make_bank()

    def strong(messages: list) -> str:
        text = messages[-1].text
        if text.startswith("Problem:"):
            return '{"title": "Equal groups", "applies_when": "groups", "steps": ["multiply"]}'
        return "The total is 12."

    weak = ScriptedChatModel(respond=lambda m: "unsure", logprob=-3.0)
    cascade = create_intercascade(weak, ScriptedChatModel(respond=strong), bank=bank)
    tenant = {"configurable": {"strategy_namespace": "tenant-a"}}
    cascade.invoke("Sam has 3 baskets with 4 apples each. How many apples?", tenant)
    out = cascade.invoke("Ana has 5 baskets with 6 apples each. How many apples?", tenant)
    assert [s.record.namespace for s in out["strategies"]] == ["tenant-a"]
    assert cascade.invoke("Li has 2 baskets with 7 apples each. How many?")["strategies"] == []
    (record,) = bank.records("tenant-a")
    assert (record.times_retrieved, record.times_deferred) == (1, 1)


def _worker(port: int, collection: str, index: int, start: Any) -> None:
    """One process's writes: its own strategies, shared near-duplicates, one exact copy."""
    bank = StrategyBank(EMBEDDINGS, vectorstore=chroma_store(http_client(port), collection))
    start.wait()  # all processes write at once
    for letter in LETTERS:
        own = f"own{LETTERS[index]}{letter}"
        bank.add(strategy(own), source_query=f"{own} question")
        family = f"shared{letter}"
        bank.add(strategy(family, f"by process {index}"), source_query=f"{family} {index} question")
    bank.add(strategy("everyone"), source_query="everyone question")


def test_processes_share_one_bank_without_losing_or_duplicating(server):
    collection = f"strategies-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_worker, args=(server, collection, i, start))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    bank = StrategyBank(EMBEDDINGS, vectorstore=chroma_store(http_client(server), collection))
    titles = sorted(r.strategy.title for r in bank.records())
    own = [f"own{LETTERS[p]}{letter}" for p in range(PROCESSES) for letter in LETTERS]
    families = [f"shared{letter}" for letter in LETTERS]
    assert titles == sorted(own + families + ["everyone"])
    assert len(bank) == len(titles) == PROCESSES * 8 + 8 + 1
    for family in families:  # one copy kept, the others merged into it
        (found,) = bank.search(f"{family} question", k=1)
        assert found.record.strategy.title == family
        # Concurrent merges from several processes may lose a count, never a strategy.
        assert 1 <= found.record.variants <= PROCESSES - 1


def test_a_query_racing_another_writer_is_asked_again(make_bank, monkeypatch):
    """Chroma can fail a query while another client's first writes reach disk."""
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    query = Collection.query
    failures = iter([InternalError("Error creating hnsw segment reader: Nothing found on disk")])

    def racing(self: Any, *args: Any, **kwargs: Any) -> Any:
        for error in failures:
            raise error
        return query(self, *args, **kwargs)

    bank = make_bank()
    bank.add(strategy("apples"), source_query="apples in baskets")
    monkeypatch.setattr(Collection, "query", racing)
    # The dedup query fails once; the near-duplicate is still merged, not stored twice.
    bank.add(strategy("apples", "again"), source_query="apples in baskets")
    assert [r.variants for r in bank.records()] == [1]

    failures = iter([InternalError("broken index")] * 10)  # a lasting fault is raised
    with pytest.raises(InternalError, match="broken index"):
        bank.search("apples", k=1)
