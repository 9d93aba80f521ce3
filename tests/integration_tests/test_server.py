"""`langgraph dev` serves the cascade from langgraph.json; the SDK client talks to it.

The server runs the scripted fake models (INTERCASCADE_FAKE=1), so the test is
about serving, not model quality: the first query is deferred and distilled, the
second, related one retrieves the strategy the first stored.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

ROOT = Path(__file__).resolve().parents[2]
FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"

pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"langgraph dev exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"langgraph dev did not start in 90 s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "INTERCASCADE_FAKE": "1",
        "INTERCASCADE_BANK_DIR": str(tmp_path / "bank"),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    log = tmp_path / "server.log"
    command = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--config",
        str(ROOT / "langgraph.json"),
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-browser", "--no-reload"]
    with open(log, "wb") as out:
        # Run from tmp_path: the dev server keeps its state in ./.langgraph_api.
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_second_query_retrieves_the_strategy_the_first_stored(
    server_url: str, tmp_path: Path
) -> None:
    client = get_sync_client(url=server_url)
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
    assert second["answer"] == "The answer is 30."
    # The server saved the bank it learned into.
    assert (tmp_path / "bank" / "manifest.json").is_file()


def test_threads_keep_the_conversation(server_url: str) -> None:
    client = get_sync_client(url=server_url)
    thread = client.threads.create()
    for question in (FIRST, RELATED):
        out = client.runs.wait(
            thread["thread_id"], "intercascade", input={"messages": [("human", question)]}
        )
    assert isinstance(out, dict)
    assert [m["type"] for m in out["messages"]] == ["human", "ai", "human", "ai"]
