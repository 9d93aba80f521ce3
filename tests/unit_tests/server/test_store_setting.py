"""The served bank in the server's store (``INTERCASCADE_BANK=store``), without a server.

``make_graph`` is entered as the LangGraph server enters it, with the run's
config and a runtime holding the server's store (an ``InMemoryStore`` here,
indexed as langgraph.store.json indexes the server's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import APPLES, APPLES_SIBLING, forget_served
from langgraph.store.memory import InMemoryStore
from typer.testing import CliRunner

from langchain_intercascade.cli import app
from langchain_intercascade.server import make_graph, store_index
from langchain_intercascade.server.store import ServerStore, served_embeddings
from langchain_intercascade.settings import CascadeSettings, ConfigurationError
from langchain_intercascade.testing import BagOfWordsEmbeddings

ROOT = Path(__file__).resolve().parents[3]


# -- the setting ---------------------------------------------------------------


def test_the_bank_is_local_unless_the_store_is_named() -> None:
    assert CascadeSettings.from_env({}).bank == "local"
    assert CascadeSettings.from_env({"INTERCASCADE_BANK": "store"}).bank == "store"


def test_an_unknown_bank_place_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'local' or 'store'"):
        CascadeSettings.from_env({"INTERCASCADE_BANK": "chroma"})


def test_a_store_bank_has_no_bank_folder(tmp_path: Path) -> None:
    env = {"INTERCASCADE_BANK": "store", "INTERCASCADE_BANK_DIR": str(tmp_path)}
    with pytest.raises(ConfigurationError, match="give it no bank folder"):
        CascadeSettings.from_env(env)
    with pytest.raises(ValueError, match="give it no bank folder"):
        CascadeSettings(bank="store", bank_dir=tmp_path)
    settings = tmp_path / "cascade.json"
    settings.write_text(json.dumps({"bank": "store", "bank_dir": "bank"}))
    with pytest.raises(ConfigurationError, match="give it no bank folder"):
        CascadeSettings.from_file(settings)


def test_only_the_served_graph_opens_a_store_bank() -> None:
    with pytest.raises(ConfigurationError, match="only the served graph"):
        CascadeSettings(fake=True, bank="store").load_bank()


def test_the_command_line_says_why_it_cannot_use_a_store_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERCASCADE_BANK", "store")
    runner = CliRunner()
    result = runner.invoke(app, ["ask", "--fake", APPLES])
    assert result.exit_code != 0 and "only the served graph" in result.output
    result = runner.invoke(app, ["ask", "--fake", "--bank", str(tmp_path / "bank"), APPLES])
    assert result.exit_code != 0 and "give it no bank folder" in result.output


# -- the store as the bank sees it ----------------------------------------------


def test_a_store_without_a_semantic_index_is_named_as_the_cause() -> None:
    store = ServerStore(InMemoryStore(), BagOfWordsEmbeddings())
    assert store.index_config["dims"] == 256
    store.put(("intercascade", "default"), "a", {"key_text": "pens in boxes"})
    assert store.search(("intercascade", "default"))  # listing needs no index
    with pytest.raises(ConfigurationError, match="no semantic index"):
        store.search(("intercascade", "default"), query="pens")


def test_the_index_embeds_with_the_served_banks_embeddings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERCASCADE_FAKE", "1")
    forget_served()
    try:
        assert store_index.embeddings is served_embeddings()
        assert isinstance(store_index.embeddings, BagOfWordsEmbeddings)
    finally:
        forget_served()
    with pytest.raises(AttributeError):
        _ = store_index.embedding


def test_the_config_serves_the_store_bank_through_the_index_module() -> None:
    config = json.loads((ROOT / "langgraph.store.json").read_text(encoding="utf-8"))
    assert config["env"] == {"INTERCASCADE_BANK": "store"}
    assert config["graphs"] == {"intercascade": "langchain_intercascade.server:make_graph"}
    index = config["store"]["index"]
    assert index["embed"] == "./langchain_intercascade/server/store_index.py:embeddings"
    assert (ROOT / index["embed"].split(":")[0]).is_file()
    assert index["fields"] == ["key_text"]


# -- the served graph ----------------------------------------------------------


def indexed_store() -> InMemoryStore:
    """A store indexed as langgraph.store.json indexes the server's, for the scripted world."""
    return InMemoryStore(
        index={"embed": BagOfWordsEmbeddings(), "dims": 256, "fields": ["key_text"]}
    )


def runtime(store: InMemoryStore) -> Any:
    """What the server passes the factory: here, just its store."""
    return SimpleNamespace(store=store)


@pytest.fixture
def served(serve: Callable[..., None]) -> None:
    """``make_graph`` serving the scripted models with the bank in the server's store."""
    serve(BANK="store")


@pytest.mark.usefixtures("served")
async def test_make_graph_keeps_the_bank_in_the_servers_store() -> None:
    store = indexed_store()
    async with make_graph({"configurable": {}}, runtime(store)) as graph:
        first = await graph.ainvoke(APPLES)
    assert first["route"] == "strong" and first["errors"] == []
    (item,) = store.search(("intercascade", "default"), query=APPLES_SIBLING)
    assert item.key == first["new_strategy"].id

    # One bank per store object: the next run on this store finds the strategy ...
    async with make_graph({"configurable": {}}, runtime(store)) as again:
        assert again is graph
        related = await again.ainvoke(APPLES_SIBLING)
    assert [s.record.id for s in related["strategies"]] == [item.key]
    assert related["route"] == "weak"
    # ... and a run on another store does not.
    async with make_graph({"configurable": {}}, runtime(indexed_store())) as other:
        assert other is not graph
        assert (await other.ainvoke(APPLES_SIBLING))["strategies"] == []


@pytest.mark.usefixtures("served")
async def test_an_authenticated_caller_learns_into_its_own_store_namespace() -> None:
    store = indexed_store()
    caller = {"configurable": {"langgraph_auth_user_id": "tenant-a"}}
    async with make_graph(caller, runtime(store)) as graph:
        await graph.ainvoke(APPLES)
    assert store.search(("intercascade", "tenant-a"))
    assert not store.search(("intercascade", "default"))


@pytest.mark.usefixtures("served")
async def test_a_store_bank_needs_the_servers_store() -> None:
    with pytest.raises(ConfigurationError, match="needs the server's store"):
        async with make_graph({"configurable": {}}):
            pass


@pytest.fixture
def recording(serve: Callable[..., None]) -> None:
    """``make_graph`` serving the scripted models, a local bank and records in the store."""
    serve(TEACHER_RECORDS="store")


@pytest.mark.usefixtures("recording")
async def test_make_graph_records_the_teachers_answers_in_the_servers_store() -> None:
    store = InMemoryStore()
    caller = {"configurable": {"langgraph_auth_user_id": "tenant-a"}}
    async with make_graph(caller, runtime(store)) as graph:
        out = await graph.ainvoke(APPLES)
    assert out["route"] == "strong" and out["errors"] == []
    (item,) = store.search(("intercascade_teacher", "tenant-a"))
    assert item.value["answer"] == out["answer"] and item.value["tenant"] == "tenant-a"
    assert not store.search(("intercascade", "tenant-a"))  # the bank stays local


@pytest.mark.usefixtures("recording")
async def test_records_in_the_store_need_the_servers_store() -> None:
    with pytest.raises(ConfigurationError, match="TEACHER_RECORDS=store needs the server's store"):
        async with make_graph({"configurable": {}}):
            pass
