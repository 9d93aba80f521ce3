"""The served graph binds each authenticated caller to its own bank namespace.

No server here: the auth handlers are called as the LangGraph server calls them,
and ``make_graph`` is entered with the config the server passes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import APPLES, APPLES_SIBLING

pytest.importorskip("langgraph_sdk", reason="the server extra is not installed")

from langgraph_sdk import Auth  # noqa: E402

from langchain_intercascade.server import (  # noqa: E402
    ForeignNamespaceError,
    caller_namespace,
    make_graph,
)
from langchain_intercascade.server import graph as server  # noqa: E402
from langchain_intercascade.server.auth import (  # noqa: E402
    API_KEYS_ENV,
    authenticate,
    own_runs,
    own_threads,
    parse_api_keys,
    tenant_of,
)
from langchain_intercascade.settings import ConfigurationError  # noqa: E402

KEYS = {"key-a": "tenant-a", "key-b": "tenant-b"}


def as_caller(identity: str, **configurable: Any) -> dict[str, Any]:
    """A run's config as the server passes it: the caller's identity beside the client's keys."""
    return {"configurable": {**configurable, "langgraph_auth_user_id": identity}}


@dataclass
class User:
    identity: str


def context(action: Any, identity: str = "tenant-b") -> Auth.types.AuthContext:
    return Auth.types.AuthContext(
        permissions=[], user=User(identity), resource="threads", action=action
    )  # type: ignore[arg-type]


# -- the key table -------------------------------------------------------------


def test_the_key_table_maps_keys_to_tenants() -> None:
    assert parse_api_keys(" key-a : tenant-a ,key-b:tenant-b") == KEYS
    assert parse_api_keys("key-a:team:a") == {"key-a": "team:a"}  # a key holds no colon


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "is not set"),
        ("  ", "is not set"),
        ("secret-a", "entry 1 is not of the form key:tenant"),
        ("key-a:tenant-a,:tenant-b", "entry 2"),
        ("key-a:tenant-a,secret-b:", "entry 2"),
        ("key-a:tenant-a,", "entry 2"),
        ("secret-a:tenant-a,secret-a:tenant-b", "entry 2 repeats a key"),
    ],
)
def test_a_malformed_key_table_is_an_error_that_does_not_echo_keys(text: str, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error) as raised:
        parse_api_keys(text)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("header", "tenant"),
    [
        ("Bearer key-a", "tenant-a"),
        ("bearer  key-b ", "tenant-b"),
        ("Bearer key-c", None),
        ("Bearer key-", None),
        ("Basic key-a", None),
        ("key-a", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_the_bearer_key_names_the_tenant(header: str | None, tenant: str | None) -> None:
    assert tenant_of(header, KEYS) == tenant


async def test_authenticate_reads_the_keys_and_refuses_unknown_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(API_KEYS_ENV, "key-a:tenant-a,key-b:tenant-b")
    assert await authenticate("Bearer key-b") == "tenant-b"
    with pytest.raises(Auth.exceptions.HTTPException) as refused:
        await authenticate("Bearer key-c")
    assert refused.value.status_code == 401
    monkeypatch.delenv(API_KEYS_ENV)
    with pytest.raises(ConfigurationError, match="is not set"):  # fails closed
        await authenticate("Bearer key-a")


# -- the namespace binding -----------------------------------------------------


def test_the_caller_namespace_is_the_authenticated_identity() -> None:
    assert caller_namespace(as_caller("tenant-a")) == "tenant-a"
    assert caller_namespace(as_caller("tenant-a", strategy_namespace="tenant-a")) == "tenant-a"


@pytest.mark.parametrize("config", [None, {}, {"configurable": {"strategy_namespace": "x"}}])
def test_without_auth_no_namespace_is_bound(config: Any) -> None:
    assert caller_namespace(config) is None
    # The dev server without auth puts an empty identity.
    assert caller_namespace({"configurable": {"langgraph_auth_user_id": ""}}) is None


@pytest.mark.parametrize("claimed", ["tenant-a", "default", "", 3])
def test_a_caller_naming_another_namespace_is_refused(claimed: Any) -> None:
    with pytest.raises(ForeignNamespaceError, match="binds each caller to its own namespace"):
        caller_namespace(as_caller("tenant-b", strategy_namespace=claimed))


@pytest.fixture
def served(serve: Callable[..., None]) -> None:
    """``make_graph`` serving the scripted models, with a fresh in-memory bank."""
    serve()


@pytest.mark.usefixtures("served")
async def test_make_graph_binds_runs_to_the_callers_namespace() -> None:
    async with make_graph(as_caller("tenant-a")) as graph:
        first = await graph.ainvoke(APPLES)
    assert first["route"] == "strong" and first["new_strategy"] is not None
    bank = server._served().bank
    assert {record.namespace for record in bank.records()} == {"tenant-a"}

    async with make_graph(as_caller("tenant-b")) as graph:
        assert (await graph.ainvoke(APPLES_SIBLING))["strategies"] == []
    async with make_graph(as_caller("tenant-a", strategy_namespace="tenant-a")) as graph:
        related = await graph.ainvoke(APPLES_SIBLING)
    assert [s.record.id for s in related["strategies"]] == [first["new_strategy"].id]

    with pytest.raises(ForeignNamespaceError):
        async with make_graph(as_caller("tenant-b", strategy_namespace="tenant-a")):
            pass


@pytest.mark.usefixtures("served")
async def test_without_auth_make_graph_serves_the_namespace_the_run_names() -> None:
    tenant_a = {"configurable": {"strategy_namespace": "tenant-a"}}
    async with make_graph({"configurable": {}}) as graph:
        assert graph is server._served().graph
        await graph.ainvoke(APPLES, tenant_a)
        assert (await graph.ainvoke(APPLES_SIBLING))["strategies"] == []
        assert (await graph.ainvoke(APPLES_SIBLING, tenant_a))["route"] == "weak"


# -- the authorization handlers ------------------------------------------------


async def test_a_run_request_naming_another_namespace_is_refused_with_403() -> None:
    value: Any = {"metadata": {}, "kwargs": {"config": {"configurable": {}}}}
    value["kwargs"]["config"]["configurable"]["strategy_namespace"] = "tenant-a"
    with pytest.raises(Auth.exceptions.HTTPException) as refused:
        await own_runs(context("create_run"), value)
    assert refused.value.status_code == 403
    assert "tenant-a" in str(refused.value.detail)


async def test_runs_and_threads_are_owned_by_the_caller() -> None:
    run: Any = {"metadata": {}, "kwargs": {"config": {"configurable": {}}}}
    assert await own_runs(context("create_run"), run) == {"owner": "tenant-b"}
    assert run["metadata"] == {"owner": "tenant-b"}  # a new thread's metadata
    thread: dict[str, Any] = {"metadata": {"owner": "tenant-a"}}
    assert await own_threads(context("update"), thread) == {"owner": "tenant-b"}
    assert thread["metadata"] == {"owner": "tenant-b"}
