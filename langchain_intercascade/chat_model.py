"""The cascade as a LangChain chat model: anything that takes a chat model takes the cascade.

:class:`ChatInterCascade` runs the Inter-Cascade graph for every call and returns
the answering model's message, with the cascade's decision in
``response_metadata`` and every model's tokens summed in ``usage_metadata``.

Streaming: the weak answer is final only once the judge has accepted it, so its
tokens are held back while the judge runs and released together on acceptance
(a deferred weak answer is never shown). The strong model's tokens, when the
query is deferred, stream live as the model writes them. When the strong model
fails, a stream gives the weak answer as ``invoke`` does, unless strong tokens were
already shown: it then ends with :class:`StrongStreamDropped`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from typing_extensions import override

from langchain_intercascade.bank import DEFAULT_NAMESPACE, StrategyBank
from langchain_intercascade.costs import total_usage
from langchain_intercascade.graph import (
    NAMESPACE_KEY,
    CascadeTurn,
    InterCascadeGraph,
    create_intercascade,
    run_namespace,
)
from langchain_intercascade.graph.context import model_name, unbound
from langchain_intercascade.graph.inputs import has_visible_text
from langchain_intercascade.model_types import ChatModel
from langchain_intercascade.options import CascadeOptions, fold_options

_GRAPH_CACHE_SIZE = 32
_ANSWERING_MODEL = {
    "weak": "weak",
    "weak_fallback": "weak",
    "weak_budget": "weak",
    "strong": "strong",
}
_ANSWER_NODES = {"weak_answer": "weak", "strong_answer": "strong"}


def _with_tools(model: ChatModel, tools: list[dict[str, Any]], tool_choice: Any) -> ChatModel:
    """Bind tools to a chat model, keeping the arguments it was already bound with."""
    chat_model = unbound(model, "model")
    with_tools = chat_model.bind_tools(tools, tool_choice=tool_choice)
    if isinstance(model, RunnableBinding):
        # bind_tools through a binding would drop the binding's own arguments.
        with_tools = with_tools.bind(**model.kwargs).with_config(model.config)
    return cast(ChatModel, with_tools)


class StrongStreamDropped(RuntimeError):
    """The strong model's stream failed after some of its tokens were streamed.

    ``invoke`` would return the weak answer (``route="weak_fallback"``); a stream
    cannot take back the strong tokens it already showed, so it ends with this
    error instead of passing off the weak answer as their continuation.

    Attributes:
        fallback: The weak answer the cascade fell back to.
    """

    def __init__(self, fallback: AIMessage) -> None:
        super().__init__(
            "the strong model's stream dropped mid-answer; the weak answer is in .fallback"
        )
        self.fallback = fallback


class _Relay:
    """Turns the inner graph's token stream into the cascade's own token stream.

    Weak-answer tokens are held until the judge accepts the answer; strong-answer
    tokens pass through at once. The last chunk carries what was not streamed
    (a non-streaming model's reply, tool calls) and the cascade's metadata.
    """

    def __init__(
        self, *, hide_strategy_block: bool, stream_strong: bool, model_names: dict[str, str]
    ) -> None:
        self.model_names = model_names
        # With a strong judge (two-threshold mode) the strong answer may yet be
        # replaced by an abstention: it then arrives whole, in the last chunk.
        self.stream_strong = stream_strong
        self.held: list[AIMessageChunk] = []
        self.released = False
        # A joint strong reply ends with a <strategy> block the user must not see.
        self.hide_strategy_block = hide_strategy_block
        self.withholding = False
        self.text = ""
        self.sent_content = False
        self.sent_tool_calls = False
        self.state: dict[str, Any] = {}

    def _send(self, chunk: AIMessageChunk) -> Iterator[ChatGenerationChunk]:
        if isinstance(chunk.content, str):
            if self.withholding:
                return
            text = chunk.content
            if self.hide_strategy_block and "<" in text:
                self.withholding = True
                text = text.split("<", 1)[0]
                chunk = AIMessageChunk(content=text)
            self.text += text
        # Blank strong tokens do not commit the stream: a blank reply falls back.
        shown = has_visible_text(chunk.content) if isinstance(chunk.content, str) else chunk.content
        self.sent_content = self.sent_content or bool(shown)
        self.sent_tool_calls = self.sent_tool_calls or bool(chunk.tool_call_chunks)
        if chunk.content or chunk.tool_call_chunks:
            yield ChatGenerationChunk(message=chunk)

    def on_token(
        self, message: BaseMessage, metadata: dict[str, Any]
    ) -> Iterator[ChatGenerationChunk]:
        """Handle one item of the graph's ``messages`` stream."""
        role = _ANSWER_NODES.get(metadata.get("langgraph_node", ""))
        if role is None or not isinstance(message, AIMessage):
            return
        chunk = _clean_chunk(message)
        if role == "weak" and not self.released:
            self.held.append(chunk)
        elif role == "strong" and self.stream_strong:
            yield from self._send(chunk)

    def on_state(self, state: dict[str, Any]) -> Iterator[ChatGenerationChunk]:
        """Handle one item of the graph's ``values`` stream: release a weak answer.

        Raises:
            StrongStreamDropped: If the strong model failed after some of its
                tokens were streamed: they cannot be taken back.
        """
        self.state = state
        route = state.get("route")
        if route not in ("weak", "weak_fallback", "weak_budget") or self.released:
            return
        if route == "weak_fallback" and (self.sent_content or self.sent_tool_calls):
            raise StrongStreamDropped(CascadeTurn.from_state(state).final_message)
        self.released = True
        for chunk in self.held:
            yield from self._send(chunk)

    def finish(self) -> ChatGenerationChunk:
        """The last chunk: what was not streamed, the usage and the cascade's metadata."""
        turn = CascadeTurn.from_state(self.state)
        final = turn.final_message
        rest: str | list[Any]
        if isinstance(final.content, str):
            # What the stream has not shown yet (all of it from a non-streaming model).
            startswith = final.content.startswith(self.text)
            rest = final.content[len(self.text) :] if startswith else ""
        else:  # content blocks: only a reply that did not stream is sent here
            rest = [] if self.sent_content else final.content
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=rest,
                tool_call_chunks=[] if self.sent_tool_calls else _tool_call_chunks(final),
                usage_metadata=total_usage(turn.usage),
                response_metadata=_response_metadata(turn, self.model_names),
                chunk_position="last",
            )
        )


def _clean_chunk(message: AIMessage) -> AIMessageChunk:
    """A copy of a model's chunk with only content and tool calls.

    Usage and metadata are dropped: the cascade's last chunk carries the totals,
    so that adding up the chunks counts each token once.
    """
    if isinstance(message, AIMessageChunk):
        return AIMessageChunk(content=message.content, tool_call_chunks=message.tool_call_chunks)
    return AIMessageChunk(content=message.content, tool_call_chunks=_tool_call_chunks(message))


def _tool_call_chunks(message: AIMessage) -> list[ToolCallChunk]:
    """A whole message's tool calls as stream chunks."""
    return [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(message.tool_calls)
    ]


def _response_metadata(turn: CascadeTurn, model_names: dict[str, str]) -> dict[str, Any]:
    metadata = {
        key: value
        for key, value in turn.final_message.response_metadata.items()
        if key in ("finish_reason", "model_name", "model_provider", "system_fingerprint")
    }
    # Providers that report no model name (e.g. ChatLlamaCpp): name the answering model.
    answering = _ANSWERING_MODEL.get(turn.route or "", "")
    metadata.setdefault("model_name", model_names.get(answering, "intercascade"))
    return {**metadata, **turn.metadata()}


class ChatInterCascade(BaseChatModel):
    """An Inter-Cascade as a chat model: ``prompt | ChatInterCascade(...) | parser``.

    Each call runs the cascade graph on the given conversation: the weak model
    answers with retrieved strategies as hints, the judge accepts it or defers to
    the strong model, and a strong answer is distilled into a new strategy.
    Takes the options of :func:`~langchain_intercascade.create_intercascade`
    except ``checkpointer`` and ``store``: a chat model receives the whole
    conversation on every call, so the caller keeps the history (e.g. an agent
    graph with its own checkpointer).

    The returned ``AIMessage`` is the answering model's, with:

    * ``response_metadata``: ``route``, ``confidence``, ``judge_signal``,
      ``threshold``, ``strategies`` (id, title, similarity), ``new_strategy``,
      ``usage`` (tokens per model and role) and ``errors``, plus the answering
      model's ``model_name`` and ``finish_reason``;
    * ``usage_metadata``: the tokens of every call the turn made (weak answer,
      judge, strong answer, distillation), summed.

    Tools (``bind_tools``, hence ``with_structured_output``) go to both models;
    a tool-calling weak answer is judged and deferred like a text answer.
    ``stop`` and other bound arguments also go to both models. Streaming holds
    the weak answer's tokens until the judge accepts it and streams the strong
    model's tokens live (in two-threshold mode, where the strong answer is
    judged too, it arrives whole once judged).

    The bank namespace is ``namespace``, or a call's
    ``config["configurable"]["strategy_namespace"]`` when given.

    Attributes:
        weak: The cheap chat model that answers first.
        strong: The expensive chat model for deferred queries.
        bank: The strategy bank (None: a standard cascade without strategies).
        options: The cascade's options (see :class:`CascadeOptions`); its fields
            may also be passed directly (``threshold=0.7``).
        namespace: The bank namespace this model reads and writes by default.
        stop: Stop sequences for both models.

    Example:
        ```python
        from langchain_core.output_parsers import StrOutputParser
        from langchain_intercascade import ChatInterCascade, StrategyBank
        from langchain_intercascade.testing import fake_models

        weak, strong, embeddings = fake_models()
        cascade = ChatInterCascade(weak=weak, strong=strong, bank=StrategyBank(embeddings))
        message = cascade.invoke("Sam has 3 boxes with 4 pens in each box. How many pens?")
        assert message.response_metadata["route"] == "strong"
        chain = cascade | StrOutputParser()
        assert chain.invoke("Ana has 5 boxes with 6 pens in each box?") == "The total is 30."
        ```
    """

    # An unknown name (a misspelt option) is an error, not silently ignored.
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    weak: ChatModel
    strong: ChatModel
    bank: StrategyBank | None = None
    options: CascadeOptions = Field(default_factory=CascadeOptions)
    namespace: str = DEFAULT_NAMESPACE
    stop: list[str] | None = None
    # A cached reply would skip the bank: no retrieval stats, no learning.
    cache: BaseCache | bool | None = False

    _graph: InterCascadeGraph = PrivateAttr()
    _graphs: OrderedDict[str, InterCascadeGraph] = PrivateAttr(default_factory=OrderedDict)
    _graphs_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        return fold_options(data)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return run_namespace({"configurable": {NAMESPACE_KEY: value}})

    @override
    def model_post_init(self, context: Any, /) -> None:
        self._graph = self._build(self.weak, self.strong)

    def _build(self, weak: ChatModel, strong: ChatModel) -> InterCascadeGraph:
        return create_intercascade(weak, strong, bank=self.bank, options=self.options)

    @override
    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        return super().invoke(input, config, **_namespace_kwargs(config, kwargs))

    @override
    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        return await super().ainvoke(input, config, **_namespace_kwargs(config, kwargs))

    @override
    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, **_namespace_kwargs(config, kwargs))

    @override
    def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, **_namespace_kwargs(config, kwargs))

    @property
    def graph(self) -> InterCascadeGraph:
        """The cascade graph this model runs (without per-call tools or stop words)."""
        return self._graph

    @property
    def _llm_type(self) -> str:
        return "intercascade"

    def _model_names(self) -> dict[str, str]:
        return {
            "weak": model_name(unbound(self.weak, "weak")),
            "strong": model_name(unbound(self.strong, "strong")),
        }

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            **self._model_names(),
            "threshold": self.options.threshold_value,
            "k": self.options.k,
            "score_threshold": self.options.score_threshold,
            "distill_mode": self.options.distill_mode if self.options.distill else None,
            "namespace": self.namespace,
        }

    @override
    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        names = self._model_names()
        params = LangSmithParams(
            ls_provider="intercascade",
            # A bound `model=` goes to both models, so it names the call.
            ls_model_name=kwargs.get("model") or f"{names['weak']}>{names['strong']}",
            ls_model_type="chat",
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    @override
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to both the weak and the strong model.

        Args:
            tools: Tools in any form ``convert_to_openai_tool`` accepts.
            tool_choice: Passed to both models' ``bind_tools``.
            **kwargs: Further arguments for both models.

        Returns:
            This cascade with the tools bound.
        """
        return self.bind(
            tools=[convert_to_openai_tool(tool) for tool in tools],
            tool_choice=tool_choice,
            **kwargs,
        )

    def _graph_for(self, stop: list[str] | None, kwargs: dict[str, Any]) -> InterCascadeGraph:
        """The graph for one call: per-call tools, stop words and arguments go to both models.

        Graphs are cached by those arguments: an agent binds the same tools on
        every step.
        """
        call = {k: v for k, v in kwargs.items() if k != NAMESPACE_KEY}
        tools = call.pop("tools", None)
        tool_choice = call.pop("tool_choice", None)
        if stop or self.stop:
            call["stop"] = stop or self.stop
        if not tools and not call:
            return self._graph
        key = json.dumps([tools, tool_choice, call], sort_keys=True, default=repr)
        with self._graphs_lock:
            if key in self._graphs:
                self._graphs.move_to_end(key)
                return self._graphs[key]

        def prepare(model: ChatModel) -> ChatModel:
            model = _with_tools(model, tools, tool_choice) if tools else model
            return cast(ChatModel, model.bind(**call)) if call else model

        graph = self._build(prepare(self.weak), prepare(self.strong))
        with self._graphs_lock:
            self._graphs[key] = graph
            if len(self._graphs) > _GRAPH_CACHE_SIZE:
                self._graphs.popitem(last=False)
        return graph

    def _config(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> RunnableConfig:
        namespace = kwargs.get(NAMESPACE_KEY) or self.namespace
        config: RunnableConfig = {"configurable": {NAMESPACE_KEY: namespace}}
        if run_manager is not None:
            # Nest the graph's runs under this model's run (traces, callbacks).
            callbacks = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
            callbacks.set_handlers(run_manager.inheritable_handlers)
            callbacks.add_tags(run_manager.inheritable_tags)
            # This model's ls_* trace keys describe this run only, not the graph's runs.
            callbacks.add_metadata(
                {
                    key: value
                    for key, value in run_manager.inheritable_metadata.items()
                    if not key.startswith("ls_")
                }
            )
            config["callbacks"] = callbacks
        return config

    def _relay(self) -> _Relay:
        options = self.options
        joint = options.distill and self.bank is not None and options.distill_mode == "joint"
        return _Relay(
            hide_strategy_block=joint,
            stream_strong=options.strong_threshold is None,
            model_names=self._model_names(),
        )

    @override
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        state = self._graph_for(stop, kwargs).invoke(messages, self._config(run_manager, kwargs))
        return _result(state, self._model_names())

    @override
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        state = await self._graph_for(stop, kwargs).ainvoke(
            messages, self._config(run_manager, kwargs)
        )
        return _result(state, self._model_names())

    @override
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        relay = self._relay()
        for mode, item in self._graph_for(stop, kwargs).stream(
            messages, self._config(run_manager, kwargs), stream_mode=["messages", "values"]
        ):
            yield from relay.on_state(item) if mode == "values" else relay.on_token(*item)
        yield relay.finish()

    @override
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        relay = self._relay()
        async for mode, item in self._graph_for(stop, kwargs).astream(
            messages, self._config(run_manager, kwargs), stream_mode=["messages", "values"]
        ):
            for chunk in relay.on_state(item) if mode == "values" else relay.on_token(*item):
                yield chunk
        yield relay.finish()


def _namespace_kwargs(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Carry a call's ``configurable`` namespace to the graph (LangChain drops configurable)."""
    if NAMESPACE_KEY not in ((config or {}).get("configurable") or {}):
        return kwargs
    return {**kwargs, NAMESPACE_KEY: run_namespace(config or {})}


def _result(state: dict[str, Any], model_names: dict[str, str]) -> ChatResult:
    turn = CascadeTurn.from_state(state)
    final = turn.final_message
    message = AIMessage(
        content=final.content,
        tool_calls=final.tool_calls,
        invalid_tool_calls=final.invalid_tool_calls,
        usage_metadata=total_usage(turn.usage),
        response_metadata=_response_metadata(turn, model_names),
    )
    return ChatResult(generations=[ChatGeneration(message=message)])
