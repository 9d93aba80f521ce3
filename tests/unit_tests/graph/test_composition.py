"""The cascade inside chains, parent graphs and agents, and what traces show."""

from __future__ import annotations

from typing import Any

from conftest import APPLES, APPLES_SIBLING, EASY
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from langchain_intercascade import create_intercascade, pick_answer
from langchain_intercascade.testing import ScriptedChatModel


def test_subgraph_in_a_parent_graph_with_a_checkpointer_keeps_the_conversation(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    parent = StateGraph(MessagesState)
    parent.add_node("cascade", cascade)
    parent.add_edge(START, "cascade")
    app = parent.compile(checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t1"}}

    first = app.invoke({"messages": [HumanMessage(APPLES)]}, thread)
    second = app.invoke({"messages": [HumanMessage(APPLES_SIBLING)]}, thread)
    assert [m.type for m in second["messages"]] == ["human", "ai", "human", "ai"]
    assert first["messages"][-1].text.endswith("12.")
    assert second["messages"][-1].text == "The total is 30."
    # The second turn's prompt holds the first turn: history is kept.
    assert APPLES in [m.text for m in weak.calls[-1]]


def test_multi_turn_with_the_cascades_own_checkpointer_resets_per_turn_fields(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "t2"}}
    deferred = cascade.invoke(APPLES, thread)
    assert deferred["new_strategy"] is not None
    accepted = cascade.invoke(EASY, thread)
    assert accepted["route"] == "weak"
    assert accepted["new_strategy"] is None
    assert set(accepted["usage"]) == {"weak"}
    assert len(accepted["messages"]) == 4


def test_inside_an_agent_graph_as_a_tool(weak, strong, bank):
    from langgraph.prebuilt import ToolNode, tools_condition

    cascade = create_intercascade(weak, strong, bank=bank)

    @tool
    def solve(question: str) -> str:
        """Solve a word problem with the cascade."""
        return (cascade | pick_answer).invoke(question)

    def agent_respond(messages: list[Any]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(f"Answer: {messages[-1].text}")
        return AIMessage(
            "", tool_calls=[{"name": "solve", "args": {"question": APPLES}, "id": "c1"}]
        )

    agent_model = ScriptedChatModel(respond=agent_respond).bind_tools([solve])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [agent_model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([solve]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    out = graph.compile().invoke({"messages": [HumanMessage("Help with apples")]})
    assert (
        out["messages"][-1].text
        == "Answer: Multiply the groups by the items in each: the total is 12."
    )
    assert len(bank) == 1


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: dict[str, dict[str, Any]] = {}
        self.outputs: list[dict[str, Any]] = []

    def on_chain_start(
        self, serialized, inputs, *, run_id, name=None, tags=None, metadata=None, **kw
    ):
        self.starts[run_id] = {"name": name or kw.get("name"), "tags": tags, "metadata": metadata}

    def on_chain_end(self, outputs, *, run_id, **kw):
        if isinstance(outputs, dict):
            self.outputs.append({"name": self.starts.get(run_id, {}).get("name"), **outputs})

    def on_chat_model_start(self, serialized, messages, *, run_id, tags=None, metadata=None, **kw):
        self.starts[run_id] = {"name": kw.get("name"), "tags": tags, "metadata": metadata}


def test_callbacks_show_each_node_the_confidence_threshold_and_route(weak, strong, bank):
    recorder = _Recorder()
    create_intercascade(weak, strong, bank=bank).invoke(
        APPLES, {"callbacks": [recorder], "tags": ["my-app"], "metadata": {"user": "u1"}}
    )
    names = {s["name"] for s in recorder.starts.values()}
    assert {"retrieve_strategy", "weak_answer", "confidence_judge", "strong_answer"} <= names
    assert {"weak_model", "strong_model", "distill"} <= names
    judged = next(o for o in recorder.outputs if o["name"] == "confidence_judge")
    assert judged["route"] == "strong" and judged["threshold"] == 0.8 and "confidence" in judged
    weak_run = next(s for s in recorder.starts.values() if s["name"] == "weak_model")
    assert "my-app" in weak_run["tags"] and "intercascade:weak_model" in weak_run["tags"]
    assert weak_run["metadata"]["user"] == "u1"
    assert weak_run["metadata"]["intercascade_role"] == "weak_model"
