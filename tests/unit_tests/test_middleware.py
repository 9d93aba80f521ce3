"""InterCascadeMiddleware through `create_agent`, on the scripted agent world (testing.py)."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from langchain_intercascade import CascadeOptions, StrategyBank
from langchain_intercascade.middleware import InterCascadeMiddleware
from langchain_intercascade.strategies import parse_strategy
from langchain_intercascade.teacher_records import StoreTeacherRecorder
from langchain_intercascade.testing import (
    EQUAL_GROUPS_STRATEGY,
    ScriptedChatModel,
    fake_agent_models,
    multiply,
)

PENS = "Sam has 3 boxes with 4 pens in each box. How many pens does Sam have?"
PENS_SIBLING = "Ana has 5 boxes with 6 pens in each box. How many pens does Ana have?"
HINTS = "<reference_strategies>"


@pytest.fixture
def world() -> tuple[ScriptedChatModel, ScriptedChatModel, StrategyBank]:
    weak, strong, embeddings = fake_agent_models()
    return weak, strong, StrategyBank(embeddings)


def _run(agent: Any, question: str, config: dict[str, Any] | None = None, *, aio: bool = False):
    value = {"messages": [HumanMessage(question)]}
    if aio:
        return asyncio.run(agent.ainvoke(value, config))
    return agent.invoke(value, config)


def _routes(out: dict[str, Any]) -> list[str]:
    return [call["route"] for call in out["intercascade"]["calls"]]


def _distill_prompts(model: ScriptedChatModel) -> list[list[Any]]:
    return [c for c in model.calls if c[-1].text.startswith("Problem:")]


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_unconfident_steps_are_deferred_and_the_task_distills_one_strategy(world, aio):
    weak, strong, bank = world
    agent = create_agent(
        weak, tools=[multiply], middleware=[InterCascadeMiddleware(weak, strong, bank=bank)]
    )
    config = {"configurable": {"strategy_namespace": "team-a"}}
    out = _run(agent, PENS, config, aio=aio)

    # Each step went to the weak model first and was deferred: the strong model called
    # the tool, then stated its result.
    assert _routes(out) == ["strong", "strong"]
    assert [c["tool_calls"] for c in out["intercascade"]["calls"]] == [["multiply"], []]
    assert all(c["confidence"] < 0.8 for c in out["intercascade"]["calls"])
    tool_call, tool_result, answer = out["messages"][1:]
    assert tool_call.response_metadata["model_name"] == "strong-fake"
    assert isinstance(tool_result, ToolMessage) and tool_result.text == "12"
    assert answer.text == "The total is 12."
    assert answer.usage_metadata["output_tokens"] > 0  # the strong reply's own tokens
    assert len(weak.calls) == 2  # one weak try per step

    # One strategy for the whole task, not one per step, in the run's namespace.
    assert len(_distill_prompts(strong)) == 1
    (record,) = bank.records()
    assert out["intercascade"]["new_strategy_id"] == record.id
    assert record.namespace == "team-a"
    assert record.source_query == PENS
    assert record.strategy.title == "Total from equal groups"
    usage = out["intercascade"]["usage"]
    assert set(usage["strong"]) == {"answer", "distill"} and set(usage["weak"]) == {"answer"}
    assert out["intercascade"]["errors"] == []


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_a_related_task_retrieves_once_and_every_weak_call_sees_the_hints(world, monkeypatch, aio):
    weak, strong, bank = world
    middleware = InterCascadeMiddleware(weak, strong, bank=bank)
    agent = create_agent(
        weak,
        tools=[multiply],
        system_prompt="You are a careful assistant.",
        middleware=[middleware],
        checkpointer=InMemorySaver(),  # the task record is plain data: no serde to set up
    )
    thread = {"configurable": {"thread_id": "t1", "strategy_namespace": "team-a"}}
    first = _run(agent, PENS, thread, aio=aio)

    searches: list[str] = []
    for name in ("search", "asearch"):
        original = getattr(bank, name)
        monkeypatch.setattr(
            bank, name, lambda query, _f=original, **kw: searches.append(query) or _f(query, **kw)
        )
    weak_calls, strong_calls = len(weak.calls), len(strong.calls)
    out = _run(agent, PENS_SIBLING, thread, aio=aio)

    assert searches == [PENS_SIBLING]  # once per task, not per step
    task = out["intercascade"]
    assert [s["record"]["id"] for s in task["strategies"]] == [
        first["intercascade"]["new_strategy_id"]
    ]
    assert _routes(out) == ["weak", "weak"]  # the tool call, then the answer
    assert all(c["confidence"] >= 0.8 for c in task["calls"])
    assert out["messages"][-1].text == "The total is 30."
    assert len(strong.calls) == strong_calls  # nothing deferred, nothing distilled
    assert task["new_strategy_id"] is None and len(bank) == 1
    # Every weak call of the task: the agent's system prompt, the hints, the conversation.
    assert len(weak.calls) - weak_calls == 2
    for prompt in weak.calls[weak_calls:]:
        assert prompt[0].text == "You are a careful assistant."
        assert isinstance(prompt[1], SystemMessage) and prompt[1].text.startswith(HINTS)
        assert not any(HINTS in m.text for m in prompt[2:])
    # Shown once, counted once: the task was accepted.
    (record,) = bank.records()
    assert (record.times_retrieved, record.times_accepted) == (1, 1)


def test_another_namespace_sees_no_strategy(world):
    weak, strong, bank = world
    agent = create_agent(
        weak, tools=[multiply], middleware=[InterCascadeMiddleware(weak, strong, bank=bank)]
    )
    _run(agent, PENS, {"configurable": {"strategy_namespace": "team-a"}})
    out = _run(agent, PENS_SIBLING, {"configurable": {"strategy_namespace": "team-b"}})
    assert out["intercascade"]["strategies"] == []
    assert _routes(out) == ["strong", "strong"]


def _trust_tool_calls(messages, answer):
    return 0.95 if answer.tool_calls else 0.1


def _trust_text(messages, answer):
    return 0.1 if answer.tool_calls else 0.95


@pytest.mark.parametrize(
    ("judge", "routes"),
    [(_trust_tool_calls, ["weak", "strong"]), (_trust_text, ["strong", "weak"])],
    ids=["tool-call-accepted", "tool-call-deferred"],
)
def test_tool_calls_are_judged_and_deferred_like_text(world, judge, routes):
    weak, strong, bank = world
    # A strategy learnt from a similar problem, so the weak model calls the tool.
    bank.add(parse_strategy(EQUAL_GROUPS_STRATEGY), source_query=PENS_SIBLING)
    middleware = InterCascadeMiddleware(weak, strong, bank=bank, judge=judge, distill=False)
    out = _run(create_agent(weak, tools=[multiply], middleware=[middleware]), PENS)

    assert _routes(out) == routes
    tool_call, tool_result, answer = out["messages"][1:]
    # The accepted (or deferred-to) tool call was executed, once.
    expected = {"weak": "weak-fake", "strong": "strong-fake"}
    assert tool_call.response_metadata["model_name"] == expected[routes[0]]
    assert tool_call.tool_calls[0]["args"] == {"a": 3, "b": 4}
    assert isinstance(tool_result, ToolMessage) and tool_result.text == "12"
    assert answer.text == "The total is 12."
    assert answer.response_metadata["model_name"] == expected[routes[1]]
    assert [c["judge_signal"] for c in out["intercascade"]["calls"]] == [judge.__name__] * 2


class _BrokenBank(StrategyBank):
    """A bank whose store is unreachable."""

    def search(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("bank down")

    def add(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("bank down")

    async def asearch(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("bank down")

    async def aadd(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("bank down")


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_a_failing_bank_does_not_lose_the_answer(aio, caplog):
    weak, strong, embeddings = fake_agent_models()
    middleware = InterCascadeMiddleware(weak, strong, bank=_BrokenBank(embeddings))
    out = _run(create_agent(weak, tools=[multiply], middleware=[middleware]), PENS, aio=aio)

    assert out["messages"][-1].text == "The total is 12."
    task = out["intercascade"]
    assert _routes(out) == ["strong", "strong"]
    assert task["new_strategy_id"] is None
    assert [e.split(":")[0] for e in task["errors"]] == ["retrieve_strategy", "distill_strategy"]
    assert "bank down" in caplog.text  # logged, not only recorded


def test_a_failing_outcome_count_does_not_lose_the_answer(world, monkeypatch):
    weak, strong, bank = world
    bank.add(parse_strategy(EQUAL_GROUPS_STRATEGY), source_query=PENS_SIBLING)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bank, "record_outcome", broken)
    agent = create_agent(
        weak, tools=[multiply], middleware=[InterCascadeMiddleware(weak, strong, bank=bank)]
    )
    out = _run(agent, PENS)
    assert out["messages"][-1].text == "The total is 12."
    assert out["intercascade"]["errors"] == ["record_outcome: OSError: disk full"]


def test_a_failing_judge_defers(world):
    weak, strong, bank = world

    def judge(messages, answer):
        raise RuntimeError("judge down")

    middleware = InterCascadeMiddleware(weak, strong, bank=bank, judge=judge)
    out = _run(create_agent(weak, tools=[multiply], middleware=[middleware]), PENS)
    assert _routes(out) == ["strong", "strong"]
    assert [c["judge_signal"] for c in out["intercascade"]["calls"]] == ["none", "none"]
    assert out["intercascade"]["errors"][0].startswith("confidence_judge: RuntimeError")
    assert out["messages"][-1].text == "The total is 12."


def test_a_failing_weak_model_defers_and_a_failing_strong_model_keeps_the_weak_reply():
    weak, strong, _ = fake_agent_models()
    broken_weak = weak.model_copy(update={"fail_with": TimeoutError("weak down")})
    out = _run(
        create_agent(
            weak, tools=[multiply], middleware=[InterCascadeMiddleware(broken_weak, strong)]
        ),
        PENS,
    )
    assert _routes(out) == ["strong", "strong"]
    assert out["intercascade"]["errors"][0] == "weak_answer: TimeoutError: weak down"

    broken_strong = strong.model_copy(update={"fail_with": TimeoutError("strong down")})
    out = _run(
        create_agent(
            weak, tools=[multiply], middleware=[InterCascadeMiddleware(weak, broken_strong)]
        ),
        PENS,
    )
    assert _routes(out) == ["weak_fallback"]
    assert out["messages"][-1].text == "The total is 7."  # better the weak reply than none
    assert out["intercascade"]["errors"] == ["strong_answer: TimeoutError: strong down"]

    with pytest.raises(TimeoutError, match="strong down"):  # neither model answered
        _run(
            create_agent(weak, middleware=[InterCascadeMiddleware(broken_weak, broken_strong)]),
            PENS,
        )


def test_a_bound_weak_model_sends_its_arguments_with_every_call(world):
    weak, strong, bank = world
    seen: list[dict[str, Any]] = []

    class Params(BaseCallbackHandler):
        def on_chat_model_start(self, serialized, messages, **kwargs):
            seen.append(kwargs.get("invocation_params", {}))

    middleware = InterCascadeMiddleware(weak.bind(logprobs=True), strong, bank=bank)
    agent = create_agent(weak, tools=[multiply], middleware=[middleware])
    agent.invoke({"messages": [HumanMessage(PENS)]}, {"callbacks": [Params()]})
    weak_params = [p for p in seen if p.get("model_name") == "weak-fake"]
    assert weak_params and all(p.get("logprobs") is True and p.get("tools") for p in weak_params)


def test_options_come_from_cascade_options_and_keywords(world):
    weak, strong, bank = world
    middleware = InterCascadeMiddleware(
        weak, strong, bank=bank, options=CascadeOptions(k=1, threshold=0.5), threshold=0.9
    )
    assert (middleware.options.k, middleware.options.threshold) == (1, 0.9)
    with pytest.raises(ValueError, match="k"):
        InterCascadeMiddleware(weak, strong, k=0)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"strong_threshold": 0.5}, "strong_threshold"),
        ({"distill_mode": "joint"}, "distill_mode='joint'"),
        ({"record_to": StoreTeacherRecorder(InMemoryStore())}, "record_to"),
    ],
)
def test_options_that_do_not_apply_to_agents_are_rejected(world, values, named):
    weak, strong, bank = world
    with pytest.raises(ValueError, match=named):
        InterCascadeMiddleware(weak, strong, bank=bank, **values)


def test_the_task_record_is_in_the_output_not_the_input(world):
    weak, strong, bank = world
    agent = create_agent(
        weak, tools=[multiply], middleware=[InterCascadeMiddleware(weak, strong, bank=bank)]
    )
    assert "intercascade" in agent.get_output_jsonschema()["properties"]
    assert "intercascade" not in agent.get_input_jsonschema()["properties"]


def test_without_langchain_the_import_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    monkeypatch.delitem(sys.modules, "langchain_intercascade.middleware")
    with pytest.raises(ImportError, match=r"langchain-intercascade\[agents\]"):
        importlib.import_module("langchain_intercascade.middleware")


def test_a_weak_reply_without_tools_is_judged_like_any_other():
    # No tools and no bank: a plain per-call cascade.
    weak, strong, _ = fake_agent_models()
    out = _run(
        create_agent(weak, middleware=[InterCascadeMiddleware(weak, strong)]),
        "What is the capital of France?",
    )
    assert _routes(out) == ["weak"]
    assert out["messages"][-1].text == "Paris."
    assert strong.calls == []


def test_the_messages_stream_never_shows_a_deferred_weak_reply(world):
    weak, strong, bank = world
    middleware = InterCascadeMiddleware(weak, strong, bank=bank)
    agent = create_agent(weak, tools=[multiply], middleware=[middleware])

    def streamed(question: str) -> list[str]:
        chunks = agent.stream({"messages": [HumanMessage(question)]}, stream_mode="messages")
        return [token.text for token, meta in chunks if meta["langgraph_node"] == "model"]

    # Deferred: the weak "The total is 7." never shows; the strong answer streams live.
    assert "".join(streamed(PENS)) == "The total is 12."
    # Accepted: the weak replies arrive whole, once judged.
    assert streamed(PENS_SIBLING) == [
        "Multiply the groups by the items in each.",
        "The total is 30.",
    ]
