"""The cascade's decisions on a scripted world (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from conftest import APPLES, APPLES_SIBLING, EASY, UNRELATED, strong_respond, weak_respond
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate

from langchain_intercascade import (
    StrategyBank,
    build_intercascade_graph,
    create_intercascade,
    pick_answer,
)
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

NODES = {
    "retrieve_strategy",
    "weak_answer",
    "confidence_judge",
    "strong_answer",
    "distill_strategy",
}


def test_graph_has_the_five_nodes_and_the_judge_branch(weak, strong, bank):
    graph = build_intercascade_graph(weak, strong, bank=bank)
    assert set(graph.nodes) == NODES
    drawn = create_intercascade(weak, strong, bank=bank).get_graph()
    edges = {(e.source, e.target) for e in drawn.edges}
    assert ("confidence_judge", "strong_answer") in edges
    assert ("confidence_judge", "__end__") in edges
    assert ("strong_answer", "distill_strategy") in edges


def test_accept_path_keeps_the_weak_answer(weak, strong, bank):
    out = create_intercascade(weak, strong, bank=bank).invoke(EASY)
    assert out["route"] == "weak"
    assert out["answer"] == "Paris."
    assert out["messages"][-1].content == "Paris."
    assert out["confidence"] == pytest.approx(0.951, abs=1e-3)
    assert out["judge_details"]["mean_token_prob"] == out["confidence"]
    assert 0 < out["judge_details"]["min_token_prob"] <= out["confidence"]
    assert out["threshold"] == 0.8
    assert out["new_strategy"] is None
    assert strong.calls == []
    assert set(out["usage"]) == {"weak"}
    assert out["usage"]["weak"]["answer"]["output_tokens"] > 0


def test_defer_path_calls_strong_once_and_stores_a_strategy(weak, strong, bank):
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["route"] == "strong"
    assert out["answer"].endswith("the total is 12.")
    assert out["confidence"] < 0.8
    answer_calls = [c for c in strong.calls if not c[-1].text.startswith("Problem:")]
    assert len(answer_calls) == 1
    assert len(bank) == 1
    record = out["new_strategy"]
    assert record is not None and record.strategy.title == "Total from equal groups"
    assert record.source_query is None  # the output never carries source queries
    assert bank.get(record.id).source_query == APPLES  # the bank keeps it
    assert record.model == "strong-fake"
    # The strategy is general: none of the solved problem's numbers.
    assert "12" not in record.text and " 3 " not in record.text
    assert set(out["usage"]["strong"]) == {"answer", "distill"}


def test_a_similar_query_retrieves_the_strategy_and_the_weak_model_is_then_accepted(
    weak, strong, bank
):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)
    strong_calls_before = len(strong.calls)
    out = cascade.invoke(APPLES_SIBLING)
    assert out["route"] == "weak"
    assert out["answer"] == "The total is 30."
    assert len(strong.calls) == strong_calls_before
    assert [s.record.strategy.title for s in out["strategies"]] == ["Total from equal groups"]
    assert out["strategies"][0].score >= 0.5
    prompt = weak.calls[-1]
    hints = [m for m in prompt if isinstance(m, SystemMessage)]
    assert len(hints) == 1 and "Total from equal groups" in hints[0].text
    assert "<reference_strategies>" in hints[0].text and "not instructions" in hints[0].text
    # The user's own message reaches the weak model untouched.
    assert prompt[-1] == HumanMessage(APPLES_SIBLING, id=prompt[-1].id)


def test_an_unrelated_query_retrieves_nothing_above_the_cutoff(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)
    out = cascade.invoke(UNRELATED)
    assert out["strategies"] == []
    assert not any(isinstance(m, SystemMessage) for m in weak.calls[-1])


def test_at_most_k_strategies_are_injected(weak, strong, embeddings):
    bank = StrategyBank(embeddings=embeddings)
    cascade = create_intercascade(weak, strong, bank=bank, k=1, score_threshold=None)
    cascade.invoke(APPLES)
    cascade.invoke(UNRELATED)
    assert len(bank) == 2
    out = cascade.invoke(APPLES_SIBLING)
    assert len(out["strategies"]) == 1


def test_no_strategy_text_leaks_into_the_strong_answer(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)
    # A further deferred query in the same family: the strong model sees no hints.
    weak_failing = ScriptedChatModel(respond=lambda m: "unsure", logprob=-3.0)
    create_intercascade(weak_failing, strong, bank=bank).invoke(APPLES_SIBLING)
    for call in strong.calls:
        assert not any("<reference_strategies>" in m.text for m in call)


def test_standard_cascade_without_a_bank(weak, strong):
    out = create_intercascade(weak, strong, bank=None).invoke(APPLES)
    assert out["route"] == "strong"
    assert out["new_strategy"] is None
    assert "distill" not in out["usage"]["strong"]


def test_distill_false_stores_nothing(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank, distill=False)
    assert "distill_strategy" not in {
        e.target for e in cascade.get_graph().edges if e.source == "strong_answer"
    }
    cascade.invoke(APPLES)
    assert len(bank) == 0


def test_structured_output_is_used_when_the_model_has_tool_calling(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    out = cascade.invoke(APPLES)
    distill_call = strong.calls[-1]
    assert distill_call[-1].text.startswith("Problem:")
    assert len(bank) == 1 and out["usage"]["strong"]["distill"]["output_tokens"] > 0
    # Called as the model with the Strategy tool, then its parser: no include_raw wrapper.
    assert cascade.context.distiller.kwargs["tools"][0]["function"]["name"] == "Strategy"
    assert type(cascade.context.strategy_reader).__name__ == "PydanticToolsParser"


def test_structured_output_built_another_way_is_read_with_its_raw_reply(weak, bank):
    from langchain_core.runnables import RunnableLambda

    class OwnStructured(ScriptedChatModel):
        def with_structured_output(self, schema, *, include_raw=False, **kwargs):
            chain = super().with_structured_output(schema, include_raw=include_raw, **kwargs)
            # Not a sequence starting with the model.
            return chain if include_raw else RunnableLambda(chain.invoke)

    cascade = create_intercascade(weak, OwnStructured(respond=strong_respond), bank=bank)
    out = cascade.invoke(APPLES)
    assert cascade.context.strategy_reader is None
    assert out["new_strategy"].strategy.steps[0].startswith("Multiply")
    assert out["usage"]["strong"]["distill"]["output_tokens"] > 0


def test_text_parse_when_the_model_has_no_tool_calling(weak, bank):
    strong = ScriptedChatModel(respond=strong_respond, supports_tools=False)
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["new_strategy"] is not None
    assert out["new_strategy"].strategy.steps[0].startswith("Multiply")


def test_an_unparsable_distillation_is_skipped_and_the_answer_stands(weak, bank, caplog):
    def respond(messages):
        text = messages[-1].text
        return "no idea how to generalize" if text.startswith("Problem:") else "It is 12."

    strong = ScriptedChatModel(respond=respond, supports_tools=False)
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["answer"] == "It is 12."
    assert out["new_strategy"] is None
    assert len(bank) == 0
    assert any("distill_strategy" in e for e in out["errors"])
    assert "distill_strategy" in caplog.text


def test_joint_mode_gets_answer_and_strategy_in_one_call(weak, bank):
    strategy = json.dumps({"title": "Equal groups", "applies_when": "groups", "steps": ["x"]})

    def respond(messages):
        assert isinstance(messages[-1], SystemMessage) and "<strategy>" in messages[-1].text
        return f"The total is 12.\n<strategy>\n{strategy}\n</strategy>"

    strong = ScriptedChatModel(respond=respond)
    out = create_intercascade(weak, strong, bank=bank, distill_mode="joint").invoke(APPLES)
    assert len(strong.calls) == 1
    assert out["answer"] == "The total is 12."
    assert "<strategy>" not in out["messages"][-1].content
    assert out["new_strategy"].strategy.title == "Equal groups"
    assert set(out["usage"]["strong"]) == {"answer"}


class _BrokenEmbeddings(Embeddings):
    def embed_documents(self, texts):
        raise ConnectionError("embedding service down")

    def embed_query(self, text):
        raise ConnectionError("embedding service down")


def test_a_failing_embedder_never_loses_the_answer(weak, strong):
    bank = StrategyBank(embeddings=_BrokenEmbeddings())
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["answer"].endswith("12.")
    assert out["new_strategy"] is None
    assert any("embedding service down" in e for e in out["errors"])


def test_a_failing_strong_model_falls_back_to_the_weak_answer(weak, bank):
    strong = ScriptedChatModel(respond=strong_respond, fail_with=TimeoutError("strong timed out"))
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["route"] == "weak_fallback"  # not "weak": dashboards count fallbacks
    assert out["answer"] == "The total is 7."
    assert any("strong timed out" in e for e in out["errors"])
    assert len(bank) == 0


def test_a_failing_weak_model_defers(strong, bank):
    weak = ScriptedChatModel(respond=weak_respond, fail_with=RuntimeError("weak down"))
    out = create_intercascade(weak, strong, bank=bank).invoke(EASY)
    assert out["route"] == "strong"
    assert out["answer"] == "Bibliothek."
    assert any("weak down" in e for e in out["errors"])


def test_both_models_failing_raises(bank):
    broken = ScriptedChatModel(respond=weak_respond, fail_with=RuntimeError("down"))
    with pytest.raises(RuntimeError, match="down"):
        create_intercascade(broken, broken, bank=bank).invoke(EASY)


def test_custom_judges_callable_and_runnable(weak, strong, bank):
    from langchain_core.runnables import RunnableLambda

    always = create_intercascade(weak, strong, bank=bank, judge=lambda messages, answer: 1.0)
    assert always.invoke(APPLES)["route"] == "weak"
    never = create_intercascade(weak, strong, bank=bank, judge=RunnableLambda(lambda x: 0.0))
    assert never.invoke(EASY)["route"] == "strong"


def test_a_judge_returning_garbage_defers(weak, strong, bank):
    out = create_intercascade(weak, strong, bank=bank, judge=lambda m, a: 7.0).invoke(EASY)
    assert out["route"] == "strong"
    assert any("[0, 1]" in e for e in out["errors"])


def test_verbalized_fallback_when_no_logprobs(strong, bank):
    weak = ScriptedChatModel(respond=weak_respond, logprob=None)
    out = create_intercascade(weak, strong, bank=bank).invoke(EASY)
    assert out["judge_signal"] == "verbalized"
    assert out["confidence"] == pytest.approx(0.3)
    assert out["route"] == "strong"
    assert "judge" in out["usage"]["weak"]


@pytest.mark.parametrize(
    "value",
    [
        EASY,
        [HumanMessage(EASY)],
        [("human", EASY)],
        {"messages": [HumanMessage(EASY)]},
        {"query": EASY},
        HumanMessage(EASY),
        ChatPromptTemplate.from_messages([("human", "{q}")]).invoke({"q": EASY}),
    ],
    ids=["str", "messages", "tuples", "dict", "query", "message", "prompt_value"],
)
def test_every_input_form_gives_the_same_answer(weak, strong, bank, value):
    out = create_intercascade(weak, strong, bank=bank).invoke(value)
    assert out["answer"] == "Paris."


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (42, TypeError, "got int"),
        ({"question": "x"}, ValueError, "'messages' or a 'query'"),
        ({"query": "  "}, ValueError, "empty or whitespace"),
        ("", ValueError, "empty or whitespace"),
        ("\n\t ", ValueError, "empty or whitespace"),
        (None, ValueError, "is None"),
        ({"messages": None}, ValueError, "'messages' must be a list"),
        ({"query": 3}, ValueError, "'query' must be a string"),
        ([SystemMessage("be brief")], ValueError, "no user"),
    ],
)
def test_bad_input_gets_a_clear_error(weak, strong, bank, value, error, match):
    with pytest.raises(error, match=match):
        create_intercascade(weak, strong, bank=bank).invoke(value)


def test_input_over_the_size_cap_is_rejected_before_any_model_call(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank, max_input_chars=100)
    with pytest.raises(ValueError, match="101 characters, over max_input_chars=100"):
        cascade.invoke("x" * 101)
    assert weak.calls == [] and strong.calls == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"k": 0}, "k"),
        ({"k": 2.5}, "k"),
        ({"score_threshold": 5}, "score_threshold"),
        ({"score_threshold": "x"}, "score_threshold"),
        ({"search_type": "knn"}, "search_type"),
        ({"prompts": "x"}, "prompts"),
        ({"retrieval_query": None}, "retrieval_query"),
        ({"distill_mode": "both"}, "distill_mode"),
        ({"tresholds": 0.5}, "tresholds"),
        ({"strong_judge": lambda messages, answer: 1.0}, "strong_threshold or distill_threshold"),
    ],
)
def test_bad_options_get_a_clear_error(weak, strong, bank, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_intercascade(weak, strong, bank=bank, **kwargs)


def test_an_uncertifiable_calibration_defers_everything(weak, strong, bank):
    # calibrate_threshold returns math.inf when no threshold meets the risk level;
    # the cascade takes it as is and defers even a fully confident answer.
    cascade = create_intercascade(
        weak, strong, bank=bank, threshold=math.inf, judge=lambda m, a: 1.0
    )
    state = cascade.invoke(EASY)
    assert (state["route"], state["confidence"], state["threshold"]) == ("strong", 1.0, math.inf)


def test_models_must_be_chat_models(strong, bank):
    with pytest.raises(TypeError, match="weak must be a LangChain chat model"):
        create_intercascade("gpt-4o-mini", strong, bank=bank)  # type: ignore[arg-type]


def test_the_judge_and_strong_model_see_the_whole_conversation(weak, strong, bank):
    history = [
        SystemMessage("You are terse."),
        HumanMessage("Hi"),
        AIMessage("Hello."),
        HumanMessage(APPLES),
    ]
    seen = []
    judge = lambda messages, answer: seen.append(list(messages)) or 0.0  # noqa: E731
    out = create_intercascade(weak, strong, bank=bank, judge=judge).invoke(history)
    assert [m.text for m in seen[0]] == [m.text for m in history]
    assert [m.text for m in strong.calls[0]] == [m.text for m in history]
    assert [m.text for m in out["messages"]] == [m.text for m in history] + [out["answer"]]
    assert out["query"] == APPLES


def test_the_judge_sees_the_strategies_the_weak_model_saw(weak, strong, bank):
    seen = []
    judge = lambda messages, answer: seen.append(list(messages)) or 0.0  # noqa: E731
    cascade = create_intercascade(weak, strong, bank=bank, judge=judge)
    cascade.invoke(APPLES)
    cascade.invoke(APPLES_SIBLING)
    assert [m.text for m in seen[-1]] == [m.text for m in weak.calls[-1]]
    assert "<reference_strategies>" in seen[-1][0].text


def test_retrieval_query_is_overridable(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)
    custom = create_intercascade(
        weak, strong, bank=bank, retrieval_query=lambda messages: APPLES_SIBLING
    )
    out = custom.invoke(EASY)
    assert out["query"] == APPLES_SIBLING
    assert len(out["strategies"]) == 1


def test_namespaces_scope_reads_and_writes(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank)
    tenant_a = {"configurable": {"strategy_namespace": "tenant-a"}}
    cascade.invoke(APPLES, tenant_a)
    assert bank.records()[0].namespace == "tenant-a"
    assert cascade.invoke(APPLES_SIBLING)["strategies"] == []
    assert len(cascade.invoke(APPLES_SIBLING, tenant_a)["strategies"]) == 1


def test_source_query_can_be_left_out(weak, strong, bank):
    out = create_intercascade(weak, strong, bank=bank, store_source_query=False).invoke(APPLES)
    assert bank.get(out["new_strategy"].id).source_query is None


def test_lcel_chain_with_pick_answer(weak, strong, bank):
    from langchain_core.output_parsers import StrOutputParser

    from langchain_intercascade.graph import pick_message

    prompt = ChatPromptTemplate.from_messages([("system", "Be terse."), ("human", "{question}")])
    cascade = create_intercascade(weak, strong, bank=bank)
    chain = prompt | cascade | pick_message | StrOutputParser()
    assert chain.invoke({"question": EASY}) == "Paris."
    assert (prompt | cascade | pick_answer).invoke({"question": APPLES}).endswith("12.")


def test_sync_async_batch_and_stream_take_the_same_routes(weak, strong, embeddings):
    queries = [EASY, APPLES, UNRELATED]

    def fresh():
        return create_intercascade(weak, strong, bank=StrategyBank(embeddings=embeddings))

    sync = [fresh().invoke(q)["route"] for q in queries]
    cascade = fresh()
    async_ = [asyncio.run(cascade.ainvoke(q))["route"] for q in queries]
    batch = [o["route"] for o in fresh().batch(queries, {"max_concurrency": 2})]
    abatch = [o["route"] for o in asyncio.run(fresh().abatch(queries))]
    streamed = []
    cascade = fresh()
    for q in queries:
        routes = [
            update["route"]
            for event in cascade.stream(q, stream_mode="updates")
            for update in event.values()
            if update and update.get("route")
        ]
        streamed.append(routes[-1])
    assert sync == async_ == batch == abatch == streamed == ["weak", "strong", "strong"]


def test_stream_updates_carry_each_decision(weak, strong, bank):
    events = list(
        create_intercascade(weak, strong, bank=bank).stream(APPLES, stream_mode="updates")
    )
    assert [next(iter(e)) for e in events] == [
        "retrieve_strategy",
        "weak_answer",
        "confidence_judge",
        "strong_answer",
        "distill_strategy",
    ]
    judged = events[2]["confidence_judge"]
    assert judged["route"] == "strong" and judged["threshold"] == 0.8
    assert 0 <= judged["confidence"] < 0.8
    assert events[4]["distill_strategy"]["new_strategy"].strategy.title


def test_stream_messages_gives_tokens_of_the_answering_model(weak, strong, bank):
    chunks = list(
        create_intercascade(weak, strong, bank=bank).stream(APPLES, stream_mode="messages")
    )
    by_node: dict[str, str] = {}
    for chunk, meta in chunks:
        by_node[meta["langgraph_node"]] = by_node.get(meta["langgraph_node"], "") + chunk.text
    assert by_node["strong_answer"].endswith("the total is 12.")
    assert "distill_strategy" not in by_node  # distillation tokens are not streamed
    assert set(by_node) <= {"weak_answer", "strong_answer"}


async def test_astream_events_show_every_node_and_model(weak, strong, bank):
    names = [
        e["name"]
        async for e in create_intercascade(weak, strong, bank=bank).astream_events(
            APPLES, version="v2"
        )
        if e["event"] == "on_chain_start"
    ]
    assert NODES <= set(names)
    model_runs = [
        e["name"]
        async for e in create_intercascade(
            weak, strong, bank=StrategyBank(BagOfWordsEmbeddings())
        ).astream_events(APPLES, version="v2")
        if e["event"] == "on_chat_model_start"
    ]
    assert model_runs[:2] == ["weak_model", "strong_model"]


def test_async_streaming_of_a_weak_answer_keeps_logprobs(weak, strong, bank):
    async def run():
        return [
            e
            async for e in create_intercascade(weak, strong, bank=bank).astream(
                EASY, stream_mode=["updates", "messages"]
            )
        ]

    events = asyncio.run(run())
    judged = [d for mode, d in events if mode == "updates" and "confidence_judge" in d]
    # Logprobs survive token streaming: the judge still reads them.
    assert judged[0]["confidence_judge"]["route"] == "weak"
    assert any(mode == "messages" for mode, _ in events)


def test_a_tool_calling_strong_answer_is_not_distilled(weak, bank):
    call = {"name": "calculator", "args": {"expression": "3*4"}, "id": "c1"}
    strong = ScriptedChatModel(respond=lambda m: AIMessage("", tool_calls=[call]))
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["route"] == "strong"
    assert out["messages"][-1].tool_calls[0]["name"] == "calculator"
    assert out["new_strategy"] is None and len(bank) == 0
    assert not any(c[-1].text.startswith("Problem:") for c in strong.calls)


class _CallbackUsageModel(ScriptedChatModel):
    """Reports usage like ChatLlamaCpp: in llm_output, not on the message."""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        result = super()._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        tokens = message.usage_metadata
        result.generations[0].message = message.model_copy(update={"usage_metadata": None})
        result.llm_output = {
            "token_usage": {
                "prompt_tokens": tokens["input_tokens"],
                "completion_tokens": tokens["output_tokens"],
                "total_tokens": tokens["total_tokens"],
            }
        }
        return result


def test_usage_reported_only_to_callbacks_is_counted_for_every_role(bank):
    weak = _CallbackUsageModel(respond=weak_respond, logprob=None)
    strong = _CallbackUsageModel(respond=strong_respond, supports_tools=False)
    out = create_intercascade(weak, strong, bank=bank).invoke(APPLES)
    assert out["judge_signal"] == "verbalized"
    for model, role in [
        ("weak", "answer"),
        ("weak", "judge"),
        ("strong", "answer"),
        ("strong", "distill"),
    ]:
        assert out["usage"][model][role]["output_tokens"] > 0, (model, role)


def test_structured_output_with_a_check_before_its_parser_is_read_in_steps(weak, bank):
    from langchain_core.runnables import RunnableLambda

    checked: list[AIMessage] = []

    class Checked(ScriptedChatModel):
        def with_structured_output(self, schema, *, include_raw=False, **kwargs):
            chain = super().with_structured_output(schema, include_raw=include_raw, **kwargs)
            if include_raw:
                raise AssertionError("the include_raw wrapper is not needed")
            # As ChatOpenAI's: the model, a check of its reply, the parser.
            return chain.first | RunnableLambda(lambda m: checked.append(m) or m) | chain.last

    cascade = create_intercascade(weak, Checked(respond=strong_respond), bank=bank)
    out = cascade.invoke(APPLES)
    assert len(checked) == 1 and checked[0].tool_calls
    assert out["new_strategy"].strategy.steps[0].startswith("Multiply")
    assert out["usage"]["strong"]["distill"]["output_tokens"] > 0


# ChatOpenAI probes socket options when built (no connection); pytest-socket blocks that.
@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_chat_openai_structured_output_is_called_in_steps():
    from langchain_openai import ChatOpenAI

    from langchain_intercascade.graph.context import _distiller

    model, reader = _distiller(ChatOpenAI(model="gpt-4o", api_key="not-used"))
    assert type(model).__name__ == "_ChatModelBinding" and "response_format" in model.kwargs
    assert reader is not None
