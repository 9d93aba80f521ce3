"""The OpenAI-compatible endpoint's conversions, offline: requests in, completions out."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the server extra is not installed")

from starlette.authentication import SimpleUser, UnauthenticatedUser  # noqa: E402
from starlette.requests import Request  # noqa: E402

from langchain_intercascade import StrategyBank, create_intercascade  # noqa: E402
from langchain_intercascade.server.openai import (  # noqa: E402
    OpenAIError,
    cascade_input,
    completion,
    model_cards,
    parse_request,
    request_namespace,
    resolve_model,
)
from langchain_intercascade.testing import fake_models  # noqa: E402

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "intercascade", "messages": [{"role": "user", "content": FIRST}], **fields}


def refusal(payload: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(OpenAIError) as error:
        parse_request(payload)
    return error.value.status, error.value.body.model_dump()


@pytest.mark.parametrize(
    ("payload", "param", "says"),
    [
        (body(messages=[]), "messages", "empty"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "required"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages.[0].role", "robot"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages.[0].role", "tool"),
        (body(messages=[{"role": "user", "content": " \n"}]), "messages.[0].content", "empty"),
        (body(messages=[{"role": "user"}]), "messages.[0].content", "empty"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages.[0].content.[0]",
            "text",
        ),
        (body(messages=[{"role": "system", "content": "Be brief."}]), "messages", "user"),
        (body(n=2), "n", "n must be 1"),
        (body(tools=[{"type": "function", "function": {"name": "f"}}]), "tools", "tools"),
        (body(stream="maybe"), "stream", "bool"),
    ],
)
def test_bad_requests_are_400_naming_what_is_wrong(payload: Any, param: str, says: str) -> None:
    status, error = refusal(payload)
    assert status == 400
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_sampling_parameters_are_accepted_and_ignored() -> None:
    request = parse_request(
        body(temperature=0.2, max_tokens=5, top_p=0.9, stop=["\n"], seed=1, user="u-1", n=1)
    )
    assert cascade_input(request) == {"messages": [{"type": "human", "content": FIRST}]}


def test_roles_and_text_parts_become_langchain_messages() -> None:
    request = parse_request(
        body(
            messages=[
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi, "}, {"type": "text", "text": "you"}],
                },
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": RELATED},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert request.stream and request.stream_options and request.stream_options.include_usage
    assert cascade_input(request)["messages"] == [
        {"type": "system", "content": "Be brief."},
        {"type": "human", "content": "Hi, you"},
        {"type": "ai", "content": "Hello."},
        {"type": "human", "content": RELATED},
    ]


def as_json(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the server sends it: pydantic objects (messages, strategies) dumped."""

    def dump(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value.model_dump()

    return json.loads(json.dumps(state, default=dump))


def test_a_run_state_becomes_a_completion_with_the_extension_field() -> None:
    weak, strong, embeddings = fake_models()
    cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings))
    first = cascade.invoke(FIRST)
    related = cascade.invoke(RELATED)

    deferred = completion(as_json(first), model="m", namespace="default", id="c-1", created=7)
    assert deferred.choices[0].message.content == first["answer"]
    assert deferred.choices[0].finish_reason == "stop"
    assert (deferred.id, deferred.model, deferred.created) == ("c-1", "m", 7)
    extension = deferred.intercascade
    assert extension["route"] == "strong"
    assert extension["new_strategy"]["title"] == "Total from equal groups"
    assert extension["namespace"] == "default"
    # usage sums every call of the turn: weak answer, strong answer, distillation.
    calls = [tokens for roles in first["usage"].values() for tokens in roles.values()]
    assert len(calls) >= 3
    assert deferred.usage.prompt_tokens == sum(t["input_tokens"] for t in calls)
    assert deferred.usage.completion_tokens == sum(t["output_tokens"] for t in calls)
    assert deferred.usage.total_tokens == sum(t["total_tokens"] for t in calls)

    accepted = completion(as_json(related), model="m", namespace="default", id="c-2", created=8)
    assert accepted.intercascade["route"] == "weak"
    [shown] = accepted.intercascade["strategies"]
    assert shown["id"] == extension["new_strategy"]["id"]
    assert shown["title"] == "Total from equal groups"
    assert accepted.intercascade["threshold"] == related["threshold"]
    assert accepted.intercascade["confidence"] == related["confidence"]
    assert json.loads(accepted.model_dump_json())["object"] == "chat.completion"


ASSISTANTS = [
    {"assistant_id": "a-1", "name": "intercascade", "created_at": "2025-01-01T00:00:00Z"},
    {"assistant_id": "a-2", "name": "twin", "created_at": "2025-01-02T00:00:00+00:00"},
    {"assistant_id": "a-3", "name": "twin", "created_at": None},
]


def test_models_are_the_assistants_by_name_or_by_id_where_names_repeat() -> None:
    cards = model_cards(ASSISTANTS)
    assert [card.id for card in cards] == ["intercascade", "a-2", "a-3"]
    assert cards[0].created == 1735689600
    assert resolve_model("intercascade", ASSISTANTS) == "a-1"
    assert resolve_model("a-3", ASSISTANTS) == "a-3"


@pytest.mark.parametrize(("model", "status"), [("nope", 404), ("twin", 400)])
def test_unknown_or_ambiguous_models_are_refused(model: str, status: int) -> None:
    with pytest.raises(OpenAIError) as error:
        resolve_model(model, ASSISTANTS)
    assert error.value.status == status
    assert error.value.body.param == "model"


def request_of(**scope: Any) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", **scope})


def test_the_namespace_is_the_authenticated_callers_else_the_default() -> None:
    assert request_namespace(request_of(user=SimpleUser("tenant-a"))) == "tenant-a"
    assert request_namespace(request_of(user=UnauthenticatedUser())) == "default"
    # A route the server did not authenticate cannot tell a tenant from no auth.
    with pytest.raises(OpenAIError) as error:
        request_namespace(request_of())
    assert error.value.status == 500
