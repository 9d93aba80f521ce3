"""`langgraph dev` with langgraph.auth.json: each API key's tenant has its own strategies.

The server runs the scripted fake models (INTERCASCADE_FAKE=1) behind the example
auth of ``langchain_intercascade.server.auth``, with two keys. Without the binding,
tenant B's related question would be answered from tenant A's strategy (as in
test_server.py, where both share the default namespace).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the server extra is not installed")
sdk = pytest.importorskip("langgraph_sdk", reason="the server extra is not installed")
pytest.importorskip("langgraph_api", reason="`langgraph dev` needs langgraph-cli[inmem]")

from loopback import free_port, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"
QUESTION = {"messages": [("human", RELATED)]}

pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("server_auth")
    port = free_port()
    env = {
        **os.environ,
        "INTERCASCADE_FAKE": "1",
        "INTERCASCADE_API_KEYS": "key-a:tenant-a,key-b:tenant-b",
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        # This checkout's package, not whichever one is installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "langgraph_cli", "dev"]
    command += ["--config", str(ROOT / "langgraph.auth.json"), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-browser", "--no-reload"]
    url = f"http://127.0.0.1:{port}"
    # Run from tmp_path: the dev server keeps its state in ./.langgraph_api.
    with serving(
        command,
        ready=lambda: httpx.get(f"{url}/ok", timeout=1).status_code == 200,
        log=tmp_path / "server.log",
        cwd=tmp_path,
        env=env,
    ):
        yield url


def client(url: str, key: str) -> Any:
    return sdk.get_sync_client(url=url, headers={"Authorization": f"Bearer {key}"})


def refused(call: Any, *args: Any, **kwargs: Any) -> int:
    """The status of the HTTP error ``call(*args, **kwargs)`` raises."""
    with pytest.raises(httpx.HTTPStatusError) as error:
        call(*args, **kwargs)
    return int(error.value.response.status_code)


def test_requests_without_a_known_key_are_refused(server_url: str) -> None:
    anonymous = sdk.get_sync_client(url=server_url)
    assert refused(anonymous.assistants.search) == 401
    assert refused(client(server_url, "key-c").assistants.search) == 401
    assert refused(anonymous.runs.wait, None, "intercascade", input=QUESTION) == 401
    # Studio's local access, which `langgraph dev` grants without a key, is off.
    studio = httpx.post(
        f"{server_url}/assistants/search", json={}, headers={"x-auth-scheme": "langsmith"}
    )
    assert studio.status_code == 401


def test_tenants_cannot_create_assistants(server_url: str) -> None:
    # An assistant's config would reach every run on it.
    tenant_b = client(server_url, "key-b")
    own = {"configurable": {"strategy_namespace": "tenant-a"}}
    assert refused(tenant_b.assistants.create, "intercascade", config=own) == 403


def test_each_tenant_reads_and_writes_only_its_own_strategies(server_url: str) -> None:
    tenant_a, tenant_b = client(server_url, "key-a"), client(server_url, "key-b")

    first = tenant_a.runs.wait(None, "intercascade", input={"messages": [("human", FIRST)]})
    assert first["route"] == "strong"
    stored = first["new_strategy"]["id"]

    # B cannot name A's namespace, in config or in context.
    for claim in (
        {"config": {"configurable": {"strategy_namespace": "tenant-a"}}},
        {"context": {"strategy_namespace": "tenant-a"}},
    ):
        assert refused(tenant_b.runs.wait, None, "intercascade", input=QUESTION, **claim) == 403

    # B's related question finds nothing (it would be accepted from A's strategy) ...
    b_first = tenant_b.runs.wait(None, "intercascade", input=QUESTION)
    assert b_first["strategies"] == []
    assert b_first["route"] == "strong"
    # ... while A's retrieves A's strategy.
    a_related = tenant_a.runs.wait(None, "intercascade", input=QUESTION)
    assert [s["record"]["id"] for s in a_related["strategies"]] == [stored]
    assert a_related["route"] == "weak"

    # B may name its own namespace; it holds the strategy B's own deferral stored.
    own = {"configurable": {"strategy_namespace": "tenant-b"}}
    b_related = tenant_b.runs.wait(None, "intercascade", input=QUESTION, config=own)
    assert [s["record"]["id"] for s in b_related["strategies"]] == [b_first["new_strategy"]["id"]]


def test_threads_belong_to_their_tenant(server_url: str) -> None:
    tenant_a, tenant_b = client(server_url, "key-a"), client(server_url, "key-b")
    thread = tenant_a.threads.create()["thread_id"]
    assert tenant_a.threads.get(thread)["metadata"]["owner"] == "tenant-a"
    assert refused(tenant_b.threads.get, thread) == 404
    assert refused(tenant_b.runs.wait, thread, "intercascade", input=QUESTION) == 404
    assert thread not in {t["thread_id"] for t in tenant_b.threads.search()}
