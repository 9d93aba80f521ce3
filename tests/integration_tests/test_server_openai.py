"""The OpenAI client against `langgraph dev`'s /v1 endpoint, without and behind auth.

The servers run the scripted fake models (INTERCASCADE_FAKE=1): the first
equal-groups question is deferred and distilled, the related one is answered by
the weak model from that strategy, in the same namespace only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

openai = pytest.importorskip("openai", reason="the test extra is not installed")
httpx = pytest.importorskip("httpx", reason="the server extra is not installed")
pytest.importorskip("langgraph_api", reason="`langgraph dev` needs langgraph-cli[inmem]")

from loopback import ROOT, langgraph_dev  # noqa: E402

from langchain_intercascade import StrategyBank, create_intercascade  # noqa: E402
from langchain_intercascade.testing import fake_models  # noqa: E402

FIRST = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
RELATED = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"

pytestmark = [pytest.mark.enable_socket, pytest.mark.allow_hosts(["127.0.0.1"])]


@pytest.fixture(scope="module")
def open_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("server_openai")
    with langgraph_dev(ROOT / "langgraph.json", folder, {"INTERCASCADE_FAKE": "1"}) as url:
        yield url


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_API_KEYS": "key-a:tenant-a,key-b:tenant-b"}
    folder = tmp_path_factory.mktemp("server_openai_auth")
    with langgraph_dev(ROOT / "langgraph.auth.json", folder, env) as url:
        yield url


def client(url: str, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def ask(model: Any, question: str, **kwargs: Any) -> Any:
    return model.chat.completions.create(
        model="intercascade", messages=[{"role": "user", "content": question}], **kwargs
    )


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_completions_learn_and_stream_like_they_answer(open_url: str) -> None:
    cascade = client(open_url)
    assert [m.id for m in cascade.models.list()] == ["intercascade"]

    # Deferred: the strong model's answer streams, as the cascade gives it in-process.
    weak, strong, embeddings = fake_models()
    expected = create_intercascade(weak, strong, bank=StrategyBank(embeddings)).invoke(FIRST)
    deferred = list(ask(cascade, FIRST, stream=True, temperature=0.3, max_tokens=8))  # ignored
    assert text_of(deferred) == expected["answer"]
    extension = deferred[-1].model_extra["intercascade"]
    assert deferred[-1].choices[0].finish_reason == "stop"
    assert (extension["route"], extension["namespace"]) == ("strong", "default")
    stored = extension["new_strategy"]
    assert stored["title"] == "Total from equal groups"
    assert all(c.usage is None for c in deferred)  # no include_usage

    answered = ask(cascade, RELATED)
    assert answered.model_extra["intercascade"]["route"] == "weak"
    assert [s["id"] for s in answered.model_extra["intercascade"]["strategies"]] == [stored["id"]]
    per_call = answered.model_extra["intercascade"]["usage"]
    calls = [tokens for roles in per_call.values() for tokens in roles.values()]
    assert answered.usage.total_tokens == sum(t["total_tokens"] for t in calls) > 0
    assert answered.usage.total_tokens == (
        answered.usage.prompt_tokens + answered.usage.completion_tokens
    )

    chunks = list(ask(cascade, RELATED, stream=True, stream_options={"include_usage": True}))
    assert text_of(chunks) == answered.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage == answered.usage
    assert last.model_extra["intercascade"]["route"] == "weak"
    assert all(c.usage is None for c in chunks[:-1])


def test_bad_requests_answer_in_openais_format(open_url: str) -> None:
    cascade = client(open_url)
    with pytest.raises(openai.NotFoundError) as missing:
        cascade.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as several:
        ask(cascade, FIRST, n=2)
    assert several.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as empty:
        cascade.chat.completions.create(model="intercascade", messages=[])
    assert empty.value.body["param"] == "messages"


def test_each_tenant_learns_in_its_own_namespace(auth_url: str) -> None:
    tenant_a, tenant_b = client(auth_url, "key-a"), client(auth_url, "key-b")
    with pytest.raises(openai.AuthenticationError):
        ask(client(auth_url, "key-c"), FIRST)
    assert httpx.get(f"{auth_url}/v1/models").status_code == 401  # no key
    assert [m.id for m in tenant_b.models.list()] == ["intercascade"]

    first = ask(tenant_a, FIRST).model_extra["intercascade"]
    assert (first["route"], first["namespace"]) == ("strong", "tenant-a")
    # B's related question finds nothing of A's, whatever `user` it names ...
    b_related = ask(tenant_b, RELATED, user="tenant-a").model_extra["intercascade"]
    assert (b_related["strategies"], b_related["route"]) == ([], "strong")
    assert b_related["namespace"] == "tenant-b"
    # ... while A's, streamed, retrieves A's strategy.
    chunks = list(ask(tenant_a, RELATED, stream=True))
    a_related = chunks[-1].model_extra["intercascade"]
    assert [s["id"] for s in a_related["strategies"]] == [first["new_strategy"]["id"]]
    assert a_related["route"] == "weak"


@pytest.fixture(scope="module")
def budget_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "INTERCASCADE_FAKE": "1",
        "INTERCASCADE_API_KEYS": "key-a:tenant-a,key-b:tenant-b",
        "INTERCASCADE_BUDGET": '{"calls": 1, "window": "day"}',
    }
    folder = tmp_path_factory.mktemp("server_openai_budget")
    with langgraph_dev(ROOT / "langgraph.auth.json", folder, env) as url:
        yield url


def test_each_tenant_has_its_own_strong_call_budget_in_the_servers_store(budget_url: str) -> None:
    tenant_a, tenant_b = client(budget_url, "key-a"), client(budget_url, "key-b")
    first = ask(tenant_a, FIRST).model_extra["intercascade"]
    assert first["route"] == "strong"
    assert (first["budget"]["tenant"], first["budget"]["calls"]) == ("tenant-a", 1)
    # A's next deferred question is over A's budget: the weak answer, streamed too.
    chunks = list(ask(tenant_a, "Translate the word library into German please.", stream=True))
    refused = chunks[-1].model_extra["intercascade"]
    assert refused["route"] == "weak_budget" and text_of(chunks) == "I am not sure."
    assert refused["budget"]["calls_limit"] == 1
    b_first = ask(tenant_b, FIRST).model_extra["intercascade"]
    assert (b_first["route"], b_first["budget"]["tenant"]) == ("strong", "tenant-b")


@pytest.fixture(scope="module")
def raise_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"INTERCASCADE_FAKE": "1", "INTERCASCADE_BUDGET": '{"calls": 0, "over": "raise"}'}
    folder = tmp_path_factory.mktemp("server_openai_raise")
    with langgraph_dev(ROOT / "langgraph.json", folder, env) as url:
        yield url


def test_a_turn_over_a_raising_budget_answers_429_as_a_spent_quota(raise_url: str) -> None:
    model = client(raise_url)
    with pytest.raises(openai.RateLimitError) as refused:
        ask(model, FIRST)
    assert refused.value.status_code == 429 and refused.value.code == "budget_exceeded"
    assert "over its strong-call budget" in refused.value.message
    # Streamed, the refusal is the stream's error event, in OpenAI's error format.
    with pytest.raises(openai.APIError, match="over its strong-call budget"):
        list(ask(model, FIRST, stream=True))
