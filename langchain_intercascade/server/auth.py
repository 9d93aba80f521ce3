"""An example LangGraph auth for the served cascade: API keys, one tenant each.

``langgraph.auth.json`` serves the cascade behind this module's :data:`auth`:

```text
export INTERCASCADE_API_KEYS="key-a:tenant-a,key-b:tenant-b" INTERCASCADE_BANK_DIR=./bank
langgraph dev --config langgraph.auth.json --host 127.0.0.1 --no-browser
```

A client sends ``Authorization: Bearer key-a`` and is the user ``tenant-a``;
:func:`~langchain_intercascade.server.make_graph` then binds its runs to the bank
namespace ``tenant-a``. Requests without a known key are refused (401). The
authorization handlers keep each tenant to its own threads, refuse a run whose
config names another tenant's ``strategy_namespace`` (403), let everyone read the
served assistant and refuse the rest (creating assistants, crons, the store API).

The routes of :mod:`langchain_intercascade.server.app`, which the same config
mounts, close what handlers cannot: the join-stream routes answer 404 for another
tenant's thread or run, and thread ids are the server's to assign, so creating a
thread reveals nothing about another tenant's ids.

This is an example: a deployment replaces the key table with its identity
provider (a JWT or OAuth check in :func:`authenticate`) and keeps the
handlers; whatever identity it returns is the caller's bank namespace.
"""

from __future__ import annotations

import hmac
import os
from functools import lru_cache
from typing import Any

from langgraph_sdk import Auth

from langchain_intercascade.server.graph import (
    AUTH_USER_ID_KEY,
    ForeignNamespaceError,
    caller_namespace,
)
from langchain_intercascade.settings import ENV_PREFIX, ConfigurationError

API_KEYS_ENV = ENV_PREFIX + "API_KEYS"
"""The variable holding the key table: ``key:tenant`` pairs separated by commas."""

OWNER_KEY = "owner"
"""The thread metadata key naming the tenant that owns a thread."""


def parse_api_keys(text: str) -> dict[str, str]:
    """Read a key table: ``key:tenant`` pairs separated by commas.

    Whitespace around keys and tenants is ignored; a key holds no ``:``.

    Args:
        text: The table, e.g. ``"key-a:tenant-a,key-b:tenant-b"``.

    Returns:
        The tenant of each key.

    Raises:
        ConfigurationError: If the table is empty, or an entry lacks a key or a
            tenant, or a key is given twice.

    Example:
        ```python
        from langchain_intercascade.server.auth import parse_api_keys

        keys = parse_api_keys("key-a:tenant-a, key-b:tenant-b")
        assert keys == {"key-a": "tenant-a", "key-b": "tenant-b"}
        ```
    """
    if not text.strip():
        raise ConfigurationError(f"{API_KEYS_ENV} is not set: no caller can be authenticated")
    keys: dict[str, str] = {}
    for number, entry in enumerate(text.split(","), start=1):
        key, colon, tenant = (part.strip() for part in entry.partition(":"))
        if not (key and colon and tenant):
            # The entry is not echoed: it holds a secret.
            raise ConfigurationError(
                f"{API_KEYS_ENV}: entry {number} is not of the form key:tenant"
            )
        if key in keys:
            raise ConfigurationError(f"{API_KEYS_ENV}: entry {number} repeats a key")
        keys[key] = tenant
    return keys


@lru_cache(maxsize=1)
def _key_table(text: str) -> dict[str, str]:
    return parse_api_keys(text)


def tenant_of(authorization: str | None, keys: dict[str, str]) -> str | None:
    """The tenant of an ``Authorization: Bearer <key>`` header, or None.

    Args:
        authorization: The header's value.
        keys: The tenant of each key (:func:`parse_api_keys`).

    Returns:
        The tenant whose key the header carries; None for no header, another
        scheme or an unknown key.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    given = token.strip().encode()
    found = None
    for key, tenant in keys.items():  # every key compared, in constant time
        if hmac.compare_digest(given, key.encode()):
            found = tenant
    return found


def _owned_by_caller(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """Mark what ``value`` creates as the caller's; the filter to the caller's own."""
    value.setdefault("metadata", {})[OWNER_KEY] = ctx.user.identity
    return {OWNER_KEY: ctx.user.identity}


auth = Auth()
"""The LangGraph auth that ``langgraph.auth.json`` names."""


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    """The caller's tenant, from its API key in :data:`API_KEYS_ENV`.

    Args:
        authorization: The request's ``Authorization`` header.

    Returns:
        The tenant: the caller's identity, and so its bank namespace.

    Raises:
        Auth.exceptions.HTTPException: 401 without a known key.
        ConfigurationError: If the key table is missing or malformed (the
            server refuses every request then).
    """
    keys = _key_table(os.environ.get(API_KEYS_ENV, ""))
    tenant = tenant_of(authorization, keys)
    if tenant is None:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="send a known API key as 'Authorization: Bearer <key>'"
        )
    return tenant


@auth.on
async def refuse_the_rest(ctx: Auth.types.AuthContext, value: object) -> bool:
    """Refuse what no handler below allows: writing assistants, crons, the store API."""
    return False


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Auth.types.AssistantsRead) -> None:
    """Everyone may read the served assistant: its config is the server's."""


@auth.on.assistants.search
async def search_assistants(
    ctx: Auth.types.AuthContext, value: Auth.types.AssistantsSearch
) -> None:
    """Everyone may find the served assistant."""


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType:
    """A tenant creates threads it owns and sees, changes and deletes only those."""
    return _owned_by_caller(ctx, value)


@auth.on.threads.create_run
async def own_runs(
    ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate
) -> Auth.types.FilterType:
    """A tenant runs on its own threads, in its own namespace (else 403).

    ``make_graph`` enforces the namespace too, on the run's merged config; this
    refuses a request that names another one before a run is queued.
    """
    kwargs = value.get("kwargs") or {}
    configurable = (kwargs.get("config") or {}).get("configurable") or {}
    try:
        caller_namespace({"configurable": {**configurable, AUTH_USER_ID_KEY: ctx.user.identity}})
    except ForeignNamespaceError as exc:
        raise Auth.exceptions.HTTPException(status_code=403, detail=str(exc)) from None
    return _owned_by_caller(ctx, value)
