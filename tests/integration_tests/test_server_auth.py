"""`langgraph dev` with langgraph.auth.json: each API key's tenant has its own strategies.

The server runs the scripted fake models (INTERCASCADE_FAKE=1) behind the example
auth of ``langchain_intercascade.server.auth``, with two keys. Without the binding,
tenant B's related question would be answered from tenant A's strategy (as in
test_server.py, where both share the default namespace).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the server extra is not installed")
sdk = pytest.importorskip("langgraph_sdk", reason="the server extra is not installed")
pytest.importorskip("langgraph_api", reason="`langgraph dev` needs langgraph-cli[inmem]")

from loopback import ROOT, langgraph_dev  # noqa: E402

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"
QUESTION = {"messages": [("human", RELATED)]}

pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_API_KEYS": "key-a:tenant-a,key-b:tenant-b"}
    folder = tmp_path_factory.mktemp("server_auth")
    with langgraph_dev(ROOT / "langgraph.auth.json", folder, env) as url:
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


A_KEY, B_KEY = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
ASK = {"assistant_id": "intercascade", "input": {"messages": [["human", FIRST]]}}
# Every thread and run route, as (method, path, body); {t} and {r} name a thread and a run.
THREAD_ROUTES = [
    ("GET", "/threads/{t}", None),
    ("PATCH", "/threads/{t}", {"metadata": {"x": 1}}),
    ("DELETE", "/threads/{t}", None),
    ("GET", "/threads/{t}/state", None),
    ("POST", "/threads/{t}/state", {"values": {}}),
    ("GET", "/threads/{t}/history", None),
    ("POST", "/threads/{t}/history", {"limit": 5}),
    ("POST", "/threads/{t}/copy", None),
    ("POST", "/threads/{t}/state/checkpoint", {"checkpoint": {}}),
    ("GET", "/threads/{t}/stream", None),
    ("GET", "/threads/{t}/runs", None),
    ("GET", "/threads/{t}/runs/{r}", None),
    ("GET", "/threads/{t}/runs/{r}/join", None),
    ("GET", "/threads/{t}/runs/{r}/stream", None),
    ("POST", "/threads/{t}/runs/{r}/cancel", None),
    ("DELETE", "/threads/{t}/runs/{r}", None),
    ("POST", "/threads/{t}/runs", ASK),
    ("POST", "/threads/{t}/runs/wait", ASK),
    ("POST", "/threads/{t}/runs/stream", ASK),
    ("POST", "/threads/{t}/runs/crons", {**ASK, "schedule": "* * * * *"}),
    # Creating a thread with a chosen id, directly or by a run.
    ("POST", "/threads", {"thread_id": "{t}"}),
    ("POST", "/threads/{t}/runs", {**ASK, "if_not_exists": "create"}),
]


def answer(method: str, path: str, body: Any, thread: str, run: str) -> tuple[int, str]:
    """B's answer to a route on ``thread`` and ``run``, with the ids masked."""
    url = path.format(t=thread, r=run)
    sent = json.loads(json.dumps(body).replace("{t}", thread)) if body else None
    response = httpx.request(method, url, json=sent, headers=B_KEY, timeout=10)
    return response.status_code, response.text.replace(thread, "<t>").replace(run, "<r>")


@pytest.fixture(scope="module")
def a_thread_and_run(server_url: str) -> tuple[str, str]:
    with httpx.Client(base_url=server_url, headers=A_KEY, timeout=30) as a:
        thread = a.post("/threads", json={}).json()["thread_id"]
        assert a.post(f"/threads/{thread}/runs/wait", json=ASK).status_code == 200
        [run] = a.get(f"/threads/{thread}/runs").json()
    return thread, run["run_id"]


@pytest.mark.parametrize(("method", "path", "body"), THREAD_ROUTES)
def test_another_tenants_thread_looks_like_no_thread(
    server_url: str, a_thread_and_run: tuple[str, str], method: str, path: str, body: Any
) -> None:
    thread, run = a_thread_and_run
    route = f"{server_url}{path}"
    on_a = answer(method, route, body, thread, run)
    # Refused, and word for word what a thread nobody holds gets: no existence oracle.
    assert on_a[0] in (403, 404, 409, 422)
    assert on_a == answer(method, route, body, str(uuid.uuid4()), str(uuid.uuid4()))
    # A's thread and run are untouched.
    with httpx.Client(base_url=server_url, headers=A_KEY) as a:
        assert a.get(f"/threads/{thread}/runs/{run}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/assistants", {"graph_id": "intercascade"}),
        ("PATCH", "/assistants/{a}", {"config": {}}),
        ("DELETE", "/assistants/{a}", None),
        ("PUT", "/store/items", {"namespace": ["tenant-a"], "key": "k", "value": {"x": 1}}),
        ("GET", "/store/items?namespace=tenant-a&key=k", None),
        ("POST", "/store/items/search", {"namespace_prefix": ["tenant-a"]}),
        ("POST", "/store/namespaces", {}),
        ("DELETE", "/store/items", {"namespace": ["tenant-a"], "key": "k"}),
    ],
)
def test_assistants_and_the_store_api_are_closed_to_tenants(
    server_url: str, method: str, path: str, body: Any
) -> None:
    with httpx.Client(base_url=server_url, headers=B_KEY) as b:
        [assistant] = b.post("/assistants/search", json={}).json()
        url = path.format(a=assistant["assistant_id"])
        assert b.request(method, url, json=body).status_code == 403


def test_a_tenant_uses_the_ids_the_server_assigns(server_url: str) -> None:
    with httpx.Client(base_url=server_url, headers=A_KEY, timeout=30) as a:
        thread = a.post("/threads", json={"metadata": {"topic": "pens"}}).json()
        assert thread["metadata"] == {"topic": "pens", "owner": "tenant-a"}
        tid = thread["thread_id"]
        assert a.post(f"/threads/{tid}/runs/wait", json=ASK).json()["answer"]
        # Streams of its own thread's runs still stream.
        with a.stream("POST", f"/threads/{tid}/runs/stream", json=ASK) as events:
            assert events.status_code == 200
            assert "event: metadata" in next(events.iter_text())
        refused = a.post("/threads", json={"thread_id": str(uuid.uuid4())})
        assert refused.status_code == 403
        assert "assigned by the server" in refused.json()["detail"]
