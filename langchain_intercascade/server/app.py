"""Routes the served cascade puts before LangGraph's own (``http.app`` in the ``langgraph*.json``).

The OpenAI-compatible endpoint (``/v1/chat/completions``, ``/v1/models``) of
:mod:`~langchain_intercascade.server.openai`.

Behind auth, two answers of the LangGraph server would tell one tenant about another's threads:

- Its join-stream routes answer ``200`` and only then report, as an error event,
  that the thread or run is not the caller's. Here they first read the run or
  thread with LangGraph's own handlers, as the caller (so the auth handlers of
  :mod:`langchain_intercascade.server.auth` decide), and answer ``404`` before
  any stream starts.
- Creating a thread with an id of the client's choosing answers ``409`` when
  another tenant holds that id, and succeeds otherwise. Here thread ids are the
  server's to assign: ``POST /threads`` with a ``thread_id``, and a run on a
  thread path with ``if_not_exists="create"``, are refused (``403``) whether or
  not the id exists. Create a thread with ``threads.create()`` and use the id it
  returns. Without auth there is no other tenant, and clients may choose ids.

Each thread route then hands over to LangGraph's. ``enable_custom_route_auth`` runs
the server's authentication on all of them. They need the server runtime
(``langgraph-cli[inmem]`` or a deployment): the package imports this module only
when the server loads it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph_api.api.runs import create_run, get_run, join_run_stream, stream_run, wait_run
from langgraph_api.api.threads import create_thread, get_thread, join_thread_stream
from langgraph_api.route import ApiRequest, ApiRoute
from langgraph_api.utils import with_user
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response

from langchain_intercascade.server.openai import routes as openai_routes

Endpoint = Callable[[ApiRequest], Awaitable[Any]]

CHOSEN_THREAD_ID = "thread ids are assigned by the server: create the thread without a thread_id"
"""Why a request that names the id of a thread to create is refused (403)."""


async def _payload(request: ApiRequest) -> dict[str, Any]:
    # Read from the cached body: `request.json()` would cache it unvalidated for the endpoint.
    try:
        payload = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}  # the endpoint answers 422
    return payload if isinstance(payload, dict) else {}


def _authenticated(request: ApiRequest) -> bool:
    return bool(getattr(request.scope.get("user"), "is_authenticated", False))


async def _names_no_thread_id(request: ApiRequest) -> None:
    if _authenticated(request) and (await _payload(request)).get("thread_id"):
        raise HTTPException(status_code=403, detail=CHOSEN_THREAD_ID)


async def _creates_no_thread(request: ApiRequest) -> None:
    if _authenticated(request) and (await _payload(request)).get("if_not_exists") == "create":
        raise HTTPException(status_code=403, detail=CHOSEN_THREAD_ID)


def _checked(check: Endpoint, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` after ``check``, both as the authenticated caller."""

    async def route(request: ApiRequest) -> Response:
        # The auth middleware of custom routes runs inside the route, after
        # ApiRoute has set the auth context: set it here, from the request.
        async with with_user(request.scope.get("user"), request.scope.get("auth")):
            await check(request)
            response: Response = await endpoint(request)
        return response

    route.__name__ = endpoint.__name__
    route.__doc__ = f"LangGraph's {endpoint.__name__}, for the caller's own threads."
    return route


_RUNS = "/threads/{thread_id}/runs"

app = Starlette(
    routes=[
        ApiRoute(f"{_RUNS}/{{run_id}}/stream", _checked(get_run, join_run_stream)),
        ApiRoute("/threads/{thread_id}/stream", _checked(get_thread, join_thread_stream)),
        ApiRoute("/threads", _checked(_names_no_thread_id, create_thread), methods=["POST"]),
        ApiRoute(_RUNS, _checked(_creates_no_thread, create_run), methods=["POST"]),
        ApiRoute(f"{_RUNS}/stream", _checked(_creates_no_thread, stream_run), methods=["POST"]),
        ApiRoute(f"{_RUNS}/wait", _checked(_creates_no_thread, wait_run), methods=["POST"]),
        *openai_routes,
    ]
)
"""The app the configs mount: its routes come before LangGraph's own."""
