"""`langgraph dev` with langgraph.store.json: the bank is items of the server's own store.

So are the teacher's records (INTERCASCADE_TEACHER_RECORDS=store). The server runs the scripted
fake models (INTERCASCADE_FAKE=1). The config is the repository's langgraph.store.json with two
changes for the test: the store index's embeddings file is named by its absolute path, so that the
server can run in a temporary folder (it keeps its state in ./.langgraph_api), and ``dims`` is the
scripted embeddings' 256.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the server extra is not installed")
sdk = pytest.importorskip("langgraph_sdk", reason="the server extra is not installed")
pytest.importorskip("langgraph_api", reason="`langgraph dev` needs langgraph-cli[inmem]")

from loopback import ROOT, langgraph_dev  # noqa: E402

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"

pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]


def store_config(folder: Path) -> Path:
    """langgraph.store.json, runnable from ``folder`` with the scripted embeddings."""
    config = json.loads((ROOT / "langgraph.store.json").read_text(encoding="utf-8"))
    index = config["store"]["index"]
    embed_file, attribute = index["embed"].rsplit(":", 1)
    index["embed"] = f"{(ROOT / embed_file).resolve()}:{attribute}"
    index["dims"] = 256
    config["dependencies"] = [str(ROOT)]
    path = folder / "langgraph.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    env = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_TEACHER_RECORDS": "store"}
    with langgraph_dev(store_config(tmp_path), tmp_path, env) as url:
        yield url


def test_the_served_bank_is_items_of_the_servers_store(server_url: str, tmp_path: Path) -> None:
    client = sdk.get_sync_client(url=server_url)

    first = client.runs.wait(None, "intercascade", input={"messages": [("human", FIRST)]})
    assert isinstance(first, dict)
    assert first["route"] == "strong" and first["errors"] == []
    stored = first["new_strategy"]
    assert stored["strategy"]["title"] == "Total from equal groups"

    # The related question is accepted thanks to the strategy the store holds.
    second = client.runs.wait(None, "intercascade", input={"messages": [("human", RELATED)]})
    assert isinstance(second, dict)
    assert [s["record"]["id"] for s in second["strategies"]] == [stored["id"]]
    assert second["route"] == "weak" and second["errors"] == []

    # The strategy is an item of the server's store, found by the store's own index ...
    found = client.store.search_items(("intercascade", "default"), query=RELATED)["items"]
    assert [(item["key"], item["namespace"]) for item in found] == [
        (stored["id"], ["intercascade", "default"])
    ]
    item = found[0]
    assert item["score"] is not None
    assert item["value"]["strategy"]["title"] == "Total from equal groups"
    assert item["value"]["times_accepted"] == 1
    # The deferred turn's teacher record is an item too; the accepted one has none.
    (record,) = client.store.search_items(("intercascade_teacher", "default"))["items"]
    assert record["value"]["answer"] == first["answer"]
    assert record["value"]["strategy_id"] == stored["id"]
    # ... and no bank folder was written.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".langgraph_api",
        "langgraph.json",
        "server.log",
    ]
    assert not list(tmp_path.rglob("manifest.json"))
