"""The bank under faults and corruption: bad vectors, failed writes, hostile or damaged
files, killed and concurrent saves."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

import langchain_intercascade
from langchain_intercascade import Strategy, StrategyBank
from langchain_intercascade.bank import BankCorruptedError, jsonl, persistence
from langchain_intercascade.bank.faiss_backend import _FaissBackend
from langchain_intercascade.strategies import StrategyRecord
from langchain_intercascade.testing import BagOfWordsEmbeddings

PROBLEMS = [
    ("Equal groups", "baskets of apples each basket"),
    ("Unit price", "price of apples per kilogram"),
    ("Speed", "train speed distance time"),
    ("Percent", "percent discount on a price"),
]


def strategy(title: str, when: str = "x", pitfalls: list[str] | None = None) -> Strategy:
    return Strategy(
        title=title, applies_when=when, steps=[f"solve {title}"], pitfalls=pitfalls or []
    )


def filled_bank(**kwargs) -> StrategyBank:
    bank = StrategyBank(BagOfWordsEmbeddings(), **kwargs)
    for title, query in PROBLEMS:
        bank.add(strategy(title), source_query=query)
    bank.add(strategy("Private", "secret"), namespace="tenant-a", source_query="a tenant secret")
    return bank


def top_titles(bank: StrategyBank, query: str, k: int = 4) -> list[str]:
    return [s.record.strategy.title for s in bank.search(query, k=k)]


def assert_consistent(bank: StrategyBank) -> None:
    """Every stored strategy is found by its own key, and the index holds exactly them."""
    for record in bank.records():
        found = bank.search(record.key_text, k=1, namespace=record.namespace)
        assert found and found[0].score == pytest.approx(1.0, abs=1e-5)
    spaces = getattr(bank._backend, "_spaces", {})
    assert all(s.index.ntotal == len(s.ids) for s in spaces.values())
    assert sum(len(s.ids) for s in spaces.values()) in (0, len(bank))


class Fault(Exception):
    """The injected failure."""


def fail(*args, **kwargs):
    raise Fault("injected")


class FixedEmbeddings(Embeddings):
    """Returns one given vector for every text."""

    def __init__(self, vector: list[float]) -> None:
        self.vector = vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(self.vector) for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.vector)


# -- 6. vectors are checked before anything is stored -----------------------------------


def test_embeddings_of_another_width_give_a_clear_error_on_add_and_search():
    bank = filled_bank()
    bank.embeddings = BagOfWordsEmbeddings(dim=64)
    with pytest.raises(ValueError, match=r"64-dimensional.*256-dimensional"):
        bank.add(strategy("Ages"), source_query="ages now and later")
    with pytest.raises(ValueError, match=r"64-dimensional.*256-dimensional"):
        bank.search("apples in each basket")
    assert len(bank) == 5
    bank.embeddings = BagOfWordsEmbeddings()
    assert top_titles(bank, "apples in each basket")[0] == "Equal groups"
    assert_consistent(bank)


BAD_VECTORS = {
    "nan": [float("nan")] + [0.5] * 7,
    "inf": [float("inf")] + [0.5] * 7,
    "zero": [0.0] * 8,
    "empty": [],
    "ragged": [[1.0], [1.0, 2.0]],
    "text": ["a"] * 8,
}


@pytest.mark.parametrize("bad", BAD_VECTORS, ids=list(BAD_VECTORS))
def test_nan_infinite_zero_and_empty_vectors_are_refused_before_storing(bad, tmp_path):
    bank = StrategyBank(FixedEmbeddings(BAD_VECTORS[bad]))
    with pytest.raises(ValueError, match="embeddings returned|numeric vectors"):
        bank.add(strategy("A"))
    path = tmp_path / "strategies.jsonl"
    path.write_text(json.dumps({"title": "B", "applies_when": "b", "steps": ["b"]}) + "\n")
    with pytest.raises(ValueError, match="embeddings returned|numeric vectors"):
        bank.import_jsonl(path)
    assert len(bank) == 0 and not bank._backend._spaces
    # The same vector as a query, against a bank that holds strategies.
    good = StrategyBank(FixedEmbeddings([1.0] * 8))
    good.add(strategy("A"))
    good.embeddings = FixedEmbeddings(BAD_VECTORS[bad])
    with pytest.raises(ValueError, match="the query"):
        good.search("anything")


def test_embeddings_that_return_too_few_vectors_are_refused():
    class Forgetful(BagOfWordsEmbeddings):
        def embed_documents(self, texts):
            return []

    bank = StrategyBank(Forgetful())
    with pytest.raises(ValueError, match="expected 1 vectors"):
        bank.add(strategy("A"))
    assert len(bank) == 0


# -- 7. a failed write leaves the bank as it was ------------------------------------------


def faiss_fault(bank: StrategyBank, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    space = bank._backend._spaces["default"]
    if where == "index":
        monkeypatch.setattr(space.index, "add_with_ids", then_fail(space.index.add_with_ids))
    else:  # the write's second namespace fails after the first was written
        original = type(space).add

        def fail_in_default(self, vectors, labels):
            if self is space:
                raise Fault("injected in the second namespace")
            original(self, vectors, labels)

        monkeypatch.setattr(type(space), "add", fail_in_default)


def then_fail(method: Callable) -> Callable:
    """A FAISS index's method that does its work and then fails."""

    def done_then_fail(*args):
        method(*args)
        raise Fault("injected after the index was written")

    return done_then_fail


@pytest.mark.parametrize("where", ["index", "second namespace"])
def test_a_faiss_write_failing_halfway_is_rolled_back(monkeypatch, tmp_path, where):
    bank = filled_bank()
    before = bank.records()
    faiss_fault(bank, monkeypatch, where)
    with pytest.raises(Fault):
        if where == "index":
            bank.add(strategy("Ages"), source_query="ages now and later")
        else:
            path = tmp_path / "import.jsonl"
            jsonl.write_jsonl(  # a new namespace first, then the failing one
                path,
                [
                    StrategyRecord.create(strategy("Ages"), namespace="new"),
                    StrategyRecord.create(strategy("Ages"), source_query="ages now and later"),
                ],
            )
            bank.import_jsonl(path)
    monkeypatch.undo()
    assert "new" not in bank._backend._spaces
    assert bank.records() == before
    assert top_titles(bank, "apples in each basket")[0] == "Equal groups"
    assert_consistent(bank)
    # The strategy can be stored once the fault is gone.
    bank.add(strategy("Ages"), source_query="ages now and later")
    assert top_titles(bank, "ages later", k=1) == ["Ages"]
    assert_consistent(bank)


def in_memory_bank() -> StrategyBank:
    embeddings = BagOfWordsEmbeddings()
    bank = StrategyBank(embeddings, vectorstore=InMemoryVectorStore(embeddings))
    for title, query in PROBLEMS:
        bank.add(strategy(title), source_query=query)
    return bank


def test_a_failed_write_to_another_store_is_rolled_back(monkeypatch):
    bank = in_memory_bank()
    store = bank.vectorstore
    original = store.add_documents

    def add_then_fail(documents, **kwargs):
        original(documents, **kwargs)
        raise Fault("injected after the write")

    monkeypatch.setattr(store, "add_documents", add_then_fail)
    with pytest.raises(Fault):
        bank.add(strategy("Ages"), source_query="ages now and later")
    monkeypatch.undo()
    assert len(bank) == 4 == len(store.store)
    assert top_titles(bank, "ages now and later", k=4)[0] != "Ages"


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_a_faiss_delete_failing_halfway_leaves_every_strategy_searchable(monkeypatch, index_type):
    bank = filled_bank(index_type=index_type)
    speed = next(r for r in bank.records() if r.strategy.title == "Speed")
    space = bank._backend._spaces["default"]
    if index_type == "flat":  # FAISS removed the vectors, then failed
        monkeypatch.setattr(space.index, "remove_ids", then_fail(space.index.remove_ids))
    else:  # a graph is rebuilt on removal: it fails while adding the kept vectors
        monkeypatch.setattr(type(space), "_rebuild", fail)
    with pytest.raises(Fault):
        bank.delete([speed.id])
    monkeypatch.undo()
    assert bank.get(speed.id) == speed
    assert top_titles(bank, "train speed", k=1) == ["Speed"]
    assert_consistent(bank)
    assert bank.delete([speed.id]) == 1
    assert_consistent(bank)


def test_deleting_one_id_twice_deletes_it_once():
    bank = filled_bank()
    speed = next(r for r in bank.records() if r.strategy.title == "Speed")
    assert bank.delete([speed.id, speed.id]) == 1
    assert len(bank) == 4
    assert_consistent(bank)


def fail_once(original: Callable) -> Callable:
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise Fault("injected once")
        return original(*args, **kwargs)

    return flaky


def test_an_eviction_that_fails_refuses_the_add(monkeypatch):
    bank = filled_bank(max_size=4)
    before = bank.records()
    monkeypatch.setattr(bank._backend, "delete", fail_once(bank._backend.delete))
    with pytest.raises(Fault):
        bank.add(strategy("Ages"), source_query="ages now and later")
    monkeypatch.undo()
    # Not stored, nothing evicted, max_size holds.
    assert bank.records() == before and len(bank.records("default")) == 4
    assert_consistent(bank)
    bank.add(strategy("Ages"), source_query="ages now and later")
    assert len(bank.records("default")) == 4 and "Ages" in top_titles(bank, "ages later")


def test_an_eviction_that_keeps_failing_is_raised_with_the_bank_consistent(monkeypatch):
    bank = filled_bank(max_size=4)
    monkeypatch.setattr(bank._backend, "delete", fail)
    for title in ("Ages", "Coins"):
        with pytest.raises(Fault):
            bank.add(strategy(title), source_query=f"{title} puzzle")
        assert_consistent(bank)
    monkeypatch.undo()
    # The next write evicts down to max_size again.
    bank.add(strategy("Rent"), source_query="monthly rent split")
    assert len(bank.records("default")) == 4
    assert_consistent(bank)


def test_a_failed_import_takes_back_its_merges_and_new_strategies(tmp_path, monkeypatch):
    bank = filled_bank(max_size=4)
    bank.rate(bank.records()[0].id, helpful=True)  # "Equal groups" is not evicted
    before = bank.records()
    lines = [
        # Merged into the stored "Equal groups" (same key), then a new strategy
        # whose eviction fails.
        StrategyRecord.create(
            strategy("Groups again", pitfalls=["Count every basket"]),
            source_query="baskets of apples each basket",
        ),
        StrategyRecord.create(strategy("Ages"), source_query="ages now and later"),
    ]
    path = tmp_path / "import.jsonl"
    jsonl.write_jsonl(path, lines)
    monkeypatch.setattr(bank._backend, "delete", fail_once(bank._backend.delete))
    with pytest.raises(Fault):
        bank.import_jsonl(path)
    monkeypatch.undo()
    assert bank.records() == before
    assert_consistent(bank)
    imported = bank.import_jsonl(path)
    groups = next(r for r in bank.records() if r.strategy.title == "Equal groups")
    assert imported[0] == groups and groups.variants == 1
    assert groups.strategy.pitfalls == ["Count every basket"]
    assert len(bank.records("default")) == 4 and "Ages" in top_titles(bank, "ages later")


# -- 9. load and import in bulk ----------------------------------------------------------


def test_load_and_import_write_the_store_once(tmp_path, monkeypatch):
    filled_bank().save(tmp_path / "bank")
    calls = []
    original = _FaissBackend.insert

    def counting_insert(self, records, vectors):
        calls.append(len(records))
        return original(self, records, vectors)

    monkeypatch.setattr(_FaissBackend, "insert", counting_insert)
    loaded = StrategyBank.load(tmp_path / "bank", embeddings=BagOfWordsEmbeddings())
    assert calls == [5] and len(loaded) == 5
    loaded.export_jsonl(tmp_path / "all.jsonl")
    calls.clear()
    fresh = StrategyBank(BagOfWordsEmbeddings())
    fresh.import_jsonl(tmp_path / "all.jsonl")
    assert calls == [5] and len(fresh) == 5


def variants(count: int, seed: int) -> list[StrategyRecord]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        groups, size = rng.randint(2, 99), rng.randint(2, 99)
        topic = rng.choice(["apples in baskets", "eggs in boxes", "pens in packs"])
        records.append(
            StrategyRecord.create(
                Strategy(
                    title=f"Equal groups {groups} {size}",
                    applies_when="Groups each hold the same number of items",
                    steps=[f"Multiply {groups} by {size}"],
                    pitfalls=[rng.choice(["Do not add", "Check units", "Count all"])],
                ),
                namespace=rng.choice(["a", "b"]),
                source_query=f"{groups} {topic} with {size} each",
            )
        )
    return records


@pytest.mark.parametrize("policy", ["merge", "skip"])
def test_an_import_deduplicates_as_adding_one_by_one_would(tmp_path, policy):
    records = variants(60, seed=3)
    path = tmp_path / "variants.jsonl"
    jsonl.write_jsonl(path, records)
    stored = StrategyRecord.create(
        strategy("Stored first"), source_query="eggs in boxes with each", namespace="a"
    )
    at_once = StrategyBank(BagOfWordsEmbeddings(), dedup_policy=policy)
    one_by_one = StrategyBank(BagOfWordsEmbeddings(), dedup_policy=policy)
    at_once.add(stored), one_by_one.add(stored)
    returned = at_once.import_jsonl(path)
    expected = []
    for i, record in enumerate(records):
        single = tmp_path / f"line-{i}.jsonl"
        jsonl.write_jsonl(single, [record])
        expected += one_by_one.import_jsonl(single)
    assert at_once.records() == one_by_one.records()
    assert returned == [one_by_one.get(r.id) for r in expected]
    assert 2 < len(at_once) < 10  # the variants of each topic merged per namespace


def test_an_import_past_max_size_keeps_the_most_useful(tmp_path):
    bank = StrategyBank(BagOfWordsEmbeddings(), dedup_threshold=None, max_size=3)
    useful = bank.add(strategy("Useful"), source_query="a useful strategy")
    bank.rate(useful.id, helpful=True)
    path = tmp_path / "import.jsonl"
    lines = [StrategyRecord.create(strategy(f"S{i}"), source_query=f"query {i}") for i in "abcde"]
    jsonl.write_jsonl(path, lines)
    assert len(bank.import_jsonl(path)) == 5
    assert [r.strategy.title for r in bank.records()] == ["Useful", "Sd", "Se"]
    assert_consistent(bank)


# -- 8. only the bank's own files, inside its folder ---------------------------------------


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_save_never_removes_a_file_a_manifest_names(tmp_path):
    folder = tmp_path / "bank"
    filled_bank().save(folder)
    victims = [tmp_path / "victim.txt", tmp_path / "victim.npy", folder / "notes.txt"]
    for victim in victims:
        victim.write_text("keep me")
    edit_manifest(folder, records=str(victims[0]), vectors="../victim.npy")
    filled_bank().save(folder)
    assert all(v.read_text() == "keep me" for v in victims)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 4 and "notes.txt" in names and "manifest.json" in names
    assert len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())) == 5


def test_save_overwrites_a_bank_whose_manifest_is_corrupt(tmp_path):
    folder = tmp_path / "bank"
    filled_bank().save(folder)
    (folder / "manifest.json").write_text("{not json")
    filled_bank().save(folder)
    assert len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())) == 5
    assert len(list(folder.iterdir())) == 3


@pytest.mark.parametrize("name", ["absolute", "../secret.txt", "strategies-0123456789ab.jsonl/.."])
def test_load_never_opens_a_path_outside_the_folder_nor_shows_its_contents(tmp_path, name):
    folder = tmp_path / "bank"
    filled_bank().save(folder)
    secret = tmp_path / "secret.txt"
    secret.write_text('{"token": "SECRET-TOKEN-42"}\n')
    edit_manifest(folder, records=str(secret) if name == "absolute" else name)
    with pytest.raises(BankCorruptedError, match="manifest.json: 'records' is not") as caught:
        StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())
    assert "SECRET" not in str(caught.value) and "SECRET" not in repr(caught.value.__cause__)


# -- 10. every corruption is detected --------------------------------------------------------


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def data_file(folder: Path, key: str) -> Path:
    return folder / manifest_of(folder)[key]


def resign(folder: Path) -> None:
    """Recompute the checksums, as a buggy writer would that wrote bad data."""
    manifest = manifest_of(folder)
    manifest["sha256"] = {
        key: hashlib.sha256(data_file(folder, key).read_bytes()).hexdigest()
        for key in ("records", "vectors")
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def flip_bit(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x04
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_by_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def rewrite_vectors(change: Callable[[np.ndarray], object]) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        path = data_file(folder, "vectors")
        vectors = np.load(path)
        with open(path, "wb") as fh:
            np.save(fh, change(vectors), allow_pickle=True)
        resign(folder)

    return corrupt


def rewrite_records(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def corrupt(folder: Path) -> None:
        path = data_file(folder, "records")
        path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))
        resign(folder)

    return corrupt


def with_nan(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.copy()
    vectors[2, 7] = np.nan
    return vectors


def with_zero(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.copy()
    vectors[1] = 0.0
    return vectors


def edit_line(index: int, change: Callable[[dict], None]) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        record = json.loads(lines[index])
        change(record)
        return lines[:index] + [json.dumps(record)] + lines[index + 1 :]

    return edit


def to_tenant_b(folder: Path) -> None:
    path = data_file(folder, "records")
    path.write_text(path.read_text().replace('"tenant-a"', '"tenant-b"'))


# Each corruption with the file its error must name and words of the problem.
CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str, str]] = {
    # the manifest
    "manifest not json": (lambda f: (f / "manifest.json").write_text("{oops"), "manifest", "JSON"),
    "manifest truncated": (lambda f: truncate(f / "manifest.json"), "manifest", "JSON"),
    "manifest a list": (lambda f: (f / "manifest.json").write_text("[]"), "manifest", "object"),
    "manifest a folder": (lambda f: replace_by_folder(f / "manifest.json"), "manifest", "read"),
    "unknown version": (lambda f: edit_manifest(f, format_version=99), "manifest", "version 99"),
    "count not a number": (lambda f: edit_manifest(f, count="5"), "manifest", "'count'"),
    "negative dim": (lambda f: edit_manifest(f, dim=-1), "manifest", "'dim'"),
    "no records entry": (lambda f: edit_manifest(f, records=None), "manifest", "'records'"),
    "no checksums": (lambda f: edit_manifest(f, sha256=None), "manifest", "sha256"),
    "count edited": (lambda f: edit_manifest(f, count=4), "strategies-", "manifest says 4"),
    "dim edited": (lambda f: edit_manifest(f, dim=128), "vectors-", "shape"),
    "checksum edited": (
        lambda f: edit_manifest(f, sha256={**manifest_of(f)["sha256"], "vectors": "0" * 64}),
        "vectors-",
        "checksum",
    ),
    # the records
    "records missing": (lambda f: data_file(f, "records").unlink(), "strategies-", "missing"),
    "records a folder": (
        lambda f: replace_by_folder(data_file(f, "records")),
        "strategies-",
        "cannot be read",
    ),
    "records bit flip": (lambda f: flip_bit(data_file(f, "records")), "strategies-", "checksum"),
    "records truncated": (lambda f: truncate(data_file(f, "records")), "strategies-", "checksum"),
    "namespace edited": (to_tenant_b, "strategies-", "checksum"),
    "records line not json": (
        rewrite_records(lambda lines: lines[:2] + ["{oops"] + lines[3:]),
        "strategies-",
        "line 3",
    ),
    "records line dropped": (rewrite_records(lambda lines: lines[1:]), "strategies-", "holds 4"),
    "records line twice": (
        rewrite_records(lambda lines: lines[:4] + lines[:1]),
        "strategies-",
        "more than once",
    ),
    "negative counter": (
        rewrite_records(edit_line(1, lambda r: r.update(times_accepted=-3))),
        "strategies-",
        "line 2",
    ),
    "blank namespace": (
        rewrite_records(edit_line(0, lambda r: r.update(namespace="  "))),
        "strategies-",
        "namespace",
    ),
    "records not utf-8": (
        lambda f: (data_file(f, "records").write_bytes(b"\xff\xfe{}\n"), resign(f)),
        "strategies-",
        "line 1",
    ),
    # the vectors
    "vectors missing": (lambda f: data_file(f, "vectors").unlink(), "vectors-", "missing"),
    "vectors a folder": (
        lambda f: replace_by_folder(data_file(f, "vectors")),
        "vectors-",
        "cannot be read",
    ),
    "vectors bit flip": (lambda f: flip_bit(data_file(f, "vectors"), 0.8), "vectors-", "checksum"),
    "vectors truncated": (lambda f: truncate(data_file(f, "vectors")), "vectors-", "checksum"),
    "vectors wider": (rewrite_vectors(lambda v: np.hstack([v, v])), "vectors-", "shape"),
    "vectors one fewer": (rewrite_vectors(lambda v: v[1:]), "vectors-", "shape"),
    "vectors flat": (rewrite_vectors(np.ravel), "vectors-", "shape"),
    "vectors NaN": (rewrite_vectors(with_nan), "vectors-", "vector 2"),
    "vectors zero": (rewrite_vectors(with_zero), "vectors-", "vector 1"),
    "vectors not unit": (rewrite_vectors(lambda v: 2 * v), "vectors-", "unit"),
    "vectors integers": (rewrite_vectors(lambda v: v.astype(np.int64)), "vectors-", "int64"),
    "vectors pickled": (
        rewrite_vectors(lambda v: np.array([{"x": 1}], dtype=object)),
        "vectors-",
        "object",
    ),
    "vectors not npy": (
        lambda f: (data_file(f, "vectors").write_bytes(b"PK\x03\x04 zip"), resign(f)),
        "vectors-",
        "not a NumPy",
    ),
    "vectors header cut": (
        lambda f: (truncate_to(data_file(f, "vectors"), 20), resign(f)),
        "vectors-",
        "not a NumPy",
    ),
    "vectors body cut": (
        lambda f: (truncate_to(data_file(f, "vectors"), -8), resign(f)),
        "vectors-",
        "bytes of vectors",
    ),
}


def truncate_to(path: Path, size: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:size])


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_every_corruption_is_detected_naming_the_file_and_the_problem(tmp_path, corruption):
    corrupt, file, problem = CORRUPTIONS[corruption]
    folder = tmp_path / "bank"
    filled_bank().save(folder)
    corrupt(folder)
    with pytest.raises(BankCorruptedError) as caught:
        StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())
    message = str(caught.value)
    assert str(folder) in message and file in message and problem in message, message
    assert "solve" not in message  # never a strategy's text


def test_a_format_2_bank_loads_when_the_user_allows_unverified_banks(tmp_path):
    folder = tmp_path / "bank"
    bank = filled_bank()
    bank.save(folder)
    to_format_2(folder)
    loaded = StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings(), allow_unverified=True)
    assert loaded.records() == bank.records()
    with pytest.raises(BankCorruptedError, match="vector 0 is not a finite unit vector"):
        rewrite_vectors(lambda v: v * np.nan)(folder)
        to_format_2(folder)  # rewrite_vectors signed it again
        StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings(), allow_unverified=True)


def to_format_2(folder: Path) -> None:
    """The manifest as format 2 wrote it: no checksums."""
    manifest = manifest_of(folder)
    del manifest["sha256"]
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))


def test_a_folder_without_a_manifest_is_not_a_bank(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved strategy bank"):
        StrategyBank.load(tmp_path, embeddings=BagOfWordsEmbeddings())
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="not a saved strategy bank"):
        StrategyBank.load(tmp_path / "file", embeddings=BagOfWordsEmbeddings())


# -- 11. killed and concurrent saves ------------------------------------------------------------


def bank_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("killed_in", ["records", "vectors", "manifest", "cleanup"])
def test_the_save_after_a_killed_one_removes_what_it_left(tmp_path, monkeypatch, killed_in):
    folder = tmp_path / "bank"
    filled_bank().save(folder)
    bigger = filled_bank()
    bigger.add(strategy("Sixth"), source_query="a sixth problem")

    class Killed(BaseException):
        pass

    def kill(*args, **kwargs):
        raise Killed

    # A killed process runs no cleanup: nothing is unlinked on the way out.
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    if killed_in == "records":
        monkeypatch.setattr(persistence, "_write_new", _write_then(kill, persistence._write_new, 1))
    elif killed_in == "vectors":
        monkeypatch.setattr(persistence, "_write_new", _write_then(kill, persistence._write_new, 2))
    elif killed_in == "manifest":  # its temporary file is written, not yet renamed
        monkeypatch.setattr(persistence.os, "replace", kill)
    else:  # the new manifest is in place, the old files not yet removed
        monkeypatch.setattr(Path, "iterdir", kill)
    with pytest.raises(Killed):
        bigger.save(folder)
    monkeypatch.undo()
    assert len(bank_files(folder)) > 3  # what the killed save left
    assert len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())) in (5, 6)
    bigger.save(folder)
    assert len(bank_files(folder)) == 3
    assert (
        StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings()).records() == bigger.records()
    )


def _write_then(kill, write_new, after: int):
    calls = []

    def write(*args, **kwargs):
        digest = write_new(*args, **kwargs)
        calls.append(digest)
        if len(calls) == after:
            kill()
        return digest

    return write


_KILLED_SAVER = """
import sys
import numpy as np
from langchain_intercascade.bank import persistence
from langchain_intercascade.strategies import Strategy, StrategyRecord

records = [
    StrategyRecord.create(Strategy(title=f"S{i}", applies_when="x", steps=["y"]))
    for i in range(4000)
]
vectors = np.random.default_rng(0).standard_normal((4000, 256), dtype=np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
print("ready", flush=True)
while True:
    persistence.write_bank(sys.argv[1], records, vectors)
"""


def test_a_save_killed_by_sigkill_leaks_nothing_after_the_next_save(tmp_path):
    folder = tmp_path / "bank"
    bank = filled_bank()
    bank.save(folder)
    package = Path(langchain_intercascade.__file__).parents[1]
    saver = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVER, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(package)},
    )
    assert saver.stdout is not None and saver.stdout.readline() == "ready\n"
    time.sleep(random.uniform(0.2, 0.6))  # somewhere in a save of the loop
    saver.send_signal(signal.SIGKILL)
    saver.wait()
    assert len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())) in (5, 4000)
    bank.save(folder)
    assert len(bank_files(folder)) == 3
    assert StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings()).records() == bank.records()


def test_a_load_during_saves_reads_the_old_or_the_new_bank(tmp_path):
    folder = tmp_path / "bank"
    small, big = filled_bank(), filled_bank()
    big.add(strategy("Sixth"), source_query="a sixth problem")
    small.save(folder)
    stop = threading.Event()
    errors: list[BaseException] = []

    def save_in_a_loop() -> None:
        try:
            while not stop.is_set():
                for bank in (big, small):
                    bank.save(folder)
        except BaseException as exc:
            errors.append(exc)

    saver = threading.Thread(target=save_in_a_loop)
    saver.start()
    sizes = []
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            sizes.append(len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())))
    finally:
        stop.set()
        saver.join()
    assert not errors and set(sizes) <= {5, 6} and len(sizes) > 20
    assert len(bank_files(folder)) == 3


def test_concurrent_saves_leak_no_files(tmp_path):
    folder = tmp_path / "bank"
    banks = [filled_bank(), filled_bank()]
    banks[1].add(strategy("Sixth"), source_query="a sixth problem")
    errors: list[BaseException] = []

    def save_often(bank: StrategyBank) -> None:
        try:
            for _ in range(25):
                bank.save(folder)
        except BaseException as exc:
            errors.append(exc)

    savers = [threading.Thread(target=save_often, args=(bank,)) for bank in banks]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join()
    assert not errors
    assert len(bank_files(folder)) == 3
    assert len(StrategyBank.load(folder, embeddings=BagOfWordsEmbeddings())) in (5, 6)
