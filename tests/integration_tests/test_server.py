"""`langgraph dev` serves the cascade from langgraph.json; the SDK client talks to it.

The server runs the scripted fake models (INTERCASCADE_FAKE=1), so the test is
about serving, not model quality: the first query is deferred and distilled, the
second, related one retrieves the strategy the first stored.
"""

from __future__ import annotations

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


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    env = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_BANK_DIR": str(tmp_path / "bank")}
    with langgraph_dev(ROOT / "langgraph.json", tmp_path, env) as url:
        yield url


def test_second_query_retrieves_the_strategy_the_first_stored(
    server_url: str, tmp_path: Path
) -> None:
    client = sdk.get_sync_client(url=server_url)
    [assistant] = client.assistants.search(graph_id="intercascade")

    first = client.runs.wait(
        None, assistant["assistant_id"], input={"messages": [("human", FIRST)]}
    )
    assert isinstance(first, dict)
    assert first["route"] == "strong"
    stored = first["new_strategy"]
    assert stored["strategy"]["title"] == "Total from equal groups"

    second = client.runs.wait(None, "intercascade", input={"messages": [("human", RELATED)]})
    assert isinstance(second, dict)
    assert [s["record"]["id"] for s in second["strategies"]] == [stored["id"]]
    assert second["route"] == "weak"
    assert second["answer"] == "The total is 30."
    # The server saved the bank it learned into.
    assert (tmp_path / "bank" / "manifest.json").is_file()


def test_threads_keep_the_conversation(server_url: str) -> None:
    client = sdk.get_sync_client(url=server_url)
    thread = client.threads.create()
    for question in (FIRST, RELATED):
        out = client.runs.wait(
            thread["thread_id"], "intercascade", input={"messages": [("human", question)]}
        )
    assert isinstance(out, dict)
    assert [m["type"] for m in out["messages"]] == ["human", "ai", "human", "ai"]
