"""The Inter-Cascade graph: five LangGraph nodes that make a cascade learn.

``retrieve_strategy`` finds strategies similar to the user's last turn,
``weak_answer`` asks the weak model with them as hints, ``confidence_judge``
scores the answer and either accepts it (END) or defers to ``strong_answer``,
whose solution ``distill_strategy`` turns into a reusable strategy for the bank.
Every decision is a node's state update, so streams and traces show it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Annotated, Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import merge_configs
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer, Command
from typing_extensions import TypedDict, override

from langchain_intercascade.answers import AnswerExtractor, extract_number
from langchain_intercascade.bank import DEFAULT_NAMESPACE, SearchType, StrategyBank
from langchain_intercascade.calibration import OnlineRecalibrator
from langchain_intercascade.costs import (
    Usage,
    ainvoke_counted,
    invoke_counted,
    merge_usage,
    record_usage,
)
from langchain_intercascade.judges import (
    AutoJudge,
    BaseJudge,
    Judgement,
    VerbalizedJudge,
    as_judge,
)
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
    parse_strategy,
)

logger = logging.getLogger(__name__)

Route = Literal["weak", "strong", "abstain"]
DistillMode = Literal["separate", "joint"]
NAMESPACE_KEY = "strategy_namespace"
"""The ``configurable`` key that scopes a run's strategy reads and writes."""


class InterCascadeInput(TypedDict):
    """What the graph takes (after :func:`coerce_input`): the conversation."""

    messages: Annotated[list[AnyMessage], add_messages]


class InterCascadeState(TypedDict, total=False):
    """The graph's state; every key but ``messages`` describes the latest turn.

    Attributes:
        messages: The conversation; the final answer is appended to it.
        query: The text strategies were retrieved for (the last user turn).
        strategies: The strategies retrieved and shown to the weak model.
        weak_message: The weak model's reply (None if the weak model failed).
        confidence: The judge's confidence in the weak reply.
        judge_signal: Which signal the judge used.
        judge_details: The judge's sub-scores (e.g. ``logprob_min``), for traces
            and analysis.
        threshold: The acceptance threshold in force (the online recalibrator's,
            when there is one).
        route: ``"weak"`` (weak answer accepted), ``"strong"`` (deferred) or
            ``"abstain"`` (two-threshold mode: neither answer was confident; the
            more confident one is attached as the answer).
        strong_confidence: The strong judge's confidence in the strong reply
            (two-threshold mode only).
        answer: The final answer's text.
        strong_strategy_text: The strategy block of a joint strong reply.
        new_strategy: The strategy stored this turn, or None.
        usage: Tokens per model and role this turn.
        errors: Failures that were contained this turn (node: message).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    query: str
    strategies: list[RetrievedStrategy]
    weak_message: AIMessage | None
    confidence: float
    judge_signal: str
    judge_details: dict[str, float]
    threshold: float
    route: Route | None
    strong_confidence: float | None
    answer: str
    strong_strategy_text: str | None
    new_strategy: StrategyRecord | None
    usage: Usage
    errors: list[str]


def coerce_input(value: Any) -> Any:
    """Turn any supported input into the graph's ``{"messages": [...]}`` input.

    Args:
        value: A string; a message or list of messages (or message-like tuples and
            dicts); a ``PromptValue``; ``{"messages": [...]}``; ``{"query": "..."}``.
            ``None`` and ``Command`` (resuming a checkpointed run) pass through.

    Returns:
        The graph input.

    Raises:
        TypeError: If the input has an unsupported type.
        ValueError: If a dict has neither ``messages`` nor ``query``, or a query is empty.
    """
    if value is None or isinstance(value, Command):
        return value
    if isinstance(value, str):
        return {"messages": [HumanMessage(value)]}
    if isinstance(value, PromptValue):
        return {"messages": value.to_messages()}
    if isinstance(value, BaseMessage):
        return {"messages": [value]}
    if isinstance(value, (list, tuple)):
        return {"messages": convert_to_messages(value)}
    if isinstance(value, dict):
        if "messages" in value:
            return value
        if "query" in value:
            query = value["query"]
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"'query' must be a non-empty string, got {query!r}")
            rest = {k: v for k, v in value.items() if k != "query"}
            return {**rest, "messages": [HumanMessage(query)]}
        raise ValueError(
            f"a dict input needs a 'messages' or a 'query' key; got keys {sorted(value)}"
        )
    raise TypeError(
        "InterCascade input must be a str, a message or list of messages, a PromptValue, "
        f"or a dict with 'messages' or 'query'; got {type(value).__name__}"
    )


def last_user_turn(messages: Sequence[BaseMessage]) -> str:
    """The default retrieval query: the text of the last human message.

    Args:
        messages: The conversation.

    Returns:
        The last human message's text.

    Raises:
        ValueError: If the conversation has no human message.
    """
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    raise ValueError("the conversation has no user (human) message to answer")


ChatModel = BaseChatModel | RunnableBinding[Any, Any]
"""A chat model, or one with bound arguments (``model.bind(logprobs=True)``)."""


def _unbound(model: ChatModel, role: str) -> BaseChatModel:
    inner = model.bound if isinstance(model, RunnableBinding) else model
    if not isinstance(inner, BaseChatModel):
        raise TypeError(f"{role} must be a LangChain chat model, got {type(model).__name__}")
    return inner


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_path"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model.get_name()


def _call_config(config: RunnableConfig, role: str, *, stream: bool = True) -> RunnableConfig:
    tags = [f"intercascade:{role}"] + ([] if stream else ["nostream"])
    return merge_configs(
        config,
        {"run_name": role, "tags": tags, "metadata": {"intercascade_role": role}},
    )


_Distilled = tuple[Strategy | None, Usage, str | None]
"""A distillation's outcome: the strategy (or None), the usage so far, an error."""

_STRATEGY_BLOCK = re.compile(r"<strategy>(.*?)(?:</strategy>|$)", re.DOTALL | re.IGNORECASE)


class _Nodes:
    """The five nodes' logic; each node has a sync and an async entry point."""

    def __init__(
        self,
        *,
        weak: ChatModel,
        strong: ChatModel,
        bank: StrategyBank | None,
        judge: BaseJudge,
        threshold: float,
        k: int,
        score_threshold: float | None,
        distill: bool,
        distill_mode: DistillMode,
        prompts: CascadePrompts,
        retrieval_query: Callable[[Sequence[BaseMessage]], str],
        store_source_query: bool,
        search_type: SearchType = "similarity",
        strong_judge: BaseJudge | None = None,
        strong_threshold: float | None = None,
        recalibrator: OnlineRecalibrator | None = None,
        answer_extractor: AnswerExtractor = extract_number,
    ) -> None:
        self.weak = weak
        self.strong = strong
        self.bank = bank
        self.judge = judge
        self.threshold = threshold
        self.k = k
        self.score_threshold = score_threshold
        self.distill = distill and bank is not None
        self.distill_mode = distill_mode
        self.prompts = prompts
        self.retrieval_query = retrieval_query
        self.store_source_query = store_source_query
        self.search_type = search_type
        self.strong_judge = strong_judge
        self.strong_threshold = strong_threshold
        self.recalibrator = recalibrator
        self.answer_extractor = answer_extractor
        strong_model = _unbound(strong, "strong")
        self.strong_name = _model_name(strong_model)
        self.structured: Runnable[Any, Any] | None
        try:
            self.structured = strong_model.with_structured_output(Strategy, include_raw=True)
        except NotImplementedError:  # no tool calling: fall back to a text parse
            self.structured = None

    def current_threshold(self) -> float:
        """The weak answer's acceptance threshold: the recalibrated one when online."""
        return self.recalibrator.threshold if self.recalibrator else self.threshold

    # -- retrieve_strategy ----------------------------------------------------

    def _retrieve_start(self, state: InterCascadeState, config: RunnableConfig) -> tuple[str, str]:
        query = self.retrieval_query(state.get("messages", []))
        return query, run_namespace(config)

    def _retrieve_done(
        self, query: str, found: list[RetrievedStrategy], errors: list[str]
    ) -> dict[str, Any]:
        # Reset every per-turn key: with a checkpointer the previous turn's values persist.
        return {
            "query": query,
            "strategies": found,
            "weak_message": None,
            "confidence": 0.0,
            "judge_signal": "",
            "judge_details": {},
            "threshold": self.current_threshold(),
            "route": None,
            "strong_confidence": None,
            "answer": "",
            "strong_strategy_text": None,
            "new_strategy": None,
            "usage": {},
            "errors": errors,
        }

    def retrieve_strategy(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        query, namespace = self._retrieve_start(state, config)
        if self.bank is None:
            return self._retrieve_done(query, [], [])
        try:
            found = self.bank.search(
                query,
                k=self.k,
                score_threshold=self.score_threshold,
                namespace=namespace,
                search_type=self.search_type,
            )
        except Exception as exc:  # a broken bank or embedder must not lose the answer
            return self._retrieve_done(query, [], [_contained("retrieve_strategy", exc)])
        return self._retrieve_done(query, found, [])

    async def aretrieve_strategy(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        query, namespace = self._retrieve_start(state, config)
        if self.bank is None:
            return self._retrieve_done(query, [], [])
        try:
            found = await self.bank.asearch(
                query,
                k=self.k,
                score_threshold=self.score_threshold,
                namespace=namespace,
                search_type=self.search_type,
            )
        except Exception as exc:
            return self._retrieve_done(query, [], [_contained("retrieve_strategy", exc)])
        return self._retrieve_done(query, found, [])

    # -- weak_answer ----------------------------------------------------------

    def weak_prompt(self, state: InterCascadeState) -> list[BaseMessage]:
        """The weak model's prompt: the conversation with the strategies as hints.

        The hint section is its own system message, placed after the
        conversation's leading system messages; the user's messages are untouched.
        """
        messages: list[BaseMessage] = list(state.get("messages", []))
        strategies = state.get("strategies") or []
        if not strategies:
            return messages
        hints = SystemMessage(self.prompts.format_strategies(strategies))
        lead = 0
        while lead < len(messages) and isinstance(messages[lead], SystemMessage):
            lead += 1
        return [*messages[:lead], hints, *messages[lead:]]

    def _weak_done(self, state: InterCascadeState, reply: BaseMessage) -> dict[str, Any]:
        message = cast(AIMessage, reply)
        return {
            "weak_message": message,
            "usage": record_usage(state.get("usage", {}), "weak", "answer", message),
        }

    def _weak_failed(self, state: InterCascadeState, exc: Exception) -> dict[str, Any]:
        return {"errors": [*state.get("errors", []), _contained("weak_answer", exc)]}

    def weak_answer(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        try:
            reply = invoke_counted(
                self.weak, self.weak_prompt(state), _call_config(config, "weak_model")
            )
        except Exception as exc:  # the strong model still answers
            return self._weak_failed(state, exc)
        return self._weak_done(state, reply)

    async def aweak_answer(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        try:
            reply = await ainvoke_counted(
                self.weak, self.weak_prompt(state), _call_config(config, "weak_model")
            )
        except Exception as exc:
            return self._weak_failed(state, exc)
        return self._weak_done(state, reply)

    # -- confidence_judge -----------------------------------------------------

    def _judged(
        self, state: InterCascadeState, verdict: Judgement | None, error: str | None
    ) -> dict[str, Any]:
        message = state.get("weak_message")
        confidence = verdict.confidence if verdict else 0.0
        threshold = self.current_threshold()
        update: dict[str, Any] = {
            "confidence": confidence,
            "judge_signal": verdict.signal if verdict else "none",
            "judge_details": dict(verdict.details) if verdict else {},
            "threshold": threshold,
            "usage": merge_usage(state.get("usage", {}), verdict.usage if verdict else {}),
        }
        if error:
            update["errors"] = [*state.get("errors", []), error]
        if message is not None and verdict is not None and confidence >= threshold:
            update.update(route="weak", messages=[message], answer=message.text)
        else:
            update["route"] = "strong"
        return update

    def confidence_judge(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        message = state.get("weak_message")
        if message is None:
            return self._judged(state, None, None)
        try:
            # The judge sees what the weak model saw, strategies included.
            verdict = self.judge.judge(self.weak_prompt(state), message, config=config)
        except Exception as exc:  # an unjudgeable answer is deferred, not accepted
            return self._judged(state, None, _contained("confidence_judge", exc))
        return self._judged(state, verdict, None)

    async def aconfidence_judge(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        message = state.get("weak_message")
        if message is None:
            return self._judged(state, None, None)
        try:
            verdict = await self.judge.ajudge(self.weak_prompt(state), message, config=config)
        except Exception as exc:
            return self._judged(state, None, _contained("confidence_judge", exc))
        return self._judged(state, verdict, None)

    # -- usefulness feedback (after confidence_judge) -------------------------

    @staticmethod
    def _shown_ids(state: InterCascadeState) -> list[str]:
        return [s.record.id for s in state.get("strategies") or []]

    def judge_and_record(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Run the judge, then count the route against the strategies shown."""
        update = self.confidence_judge(state, config)
        ids = self._shown_ids(state)
        if self.bank is not None and ids:
            try:
                self.bank.record_outcome(ids, accepted=update.get("route") == "weak")
            except Exception as exc:  # counters are best effort; the answer stands
                self._add_error(update, state, "confidence_judge", exc)
        return update

    async def ajudge_and_record(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        update = await self.aconfidence_judge(state, config)
        ids = self._shown_ids(state)
        if self.bank is not None and ids:
            try:
                await self.bank.arecord_outcome(ids, accepted=update.get("route") == "weak")
            except Exception as exc:
                self._add_error(update, state, "confidence_judge", exc)
        return update

    # -- strong_answer --------------------------------------------------------

    def strong_prompt(self, state: InterCascadeState) -> list[BaseMessage]:
        """The strong model's prompt: the whole conversation, no strategies."""
        messages: list[BaseMessage] = list(state.get("messages", []))
        if self.distill and self.distill_mode == "joint":
            messages.append(SystemMessage(self.prompts.joint_instructions))
        return messages

    def _strong_done(self, state: InterCascadeState, reply: BaseMessage) -> dict[str, Any]:
        message = cast(AIMessage, reply)
        usage = record_usage(state.get("usage", {}), "strong", "answer", message)
        strategy_text = None
        if self.distill and self.distill_mode == "joint" and isinstance(message.content, str):
            block = _STRATEGY_BLOCK.search(message.content)
            if block:
                strategy_text = block.group(1).strip()
                # The user sees the answer only, never the strategy block.
                message = message.model_copy(
                    update={"content": message.content[: block.start()].rstrip()}
                )
        return {
            "route": "strong",
            "messages": [message],
            "answer": message.text,
            "strong_strategy_text": strategy_text,
            "usage": usage,
        }

    def _strong_failed(self, state: InterCascadeState, exc: Exception) -> dict[str, Any]:
        fallback = state.get("weak_message")
        if fallback is None:
            raise exc  # neither model produced an answer
        # Better the weak answer than none: the user keeps an answer and the error is recorded.
        return {
            "route": "weak",
            "messages": [fallback],
            "answer": fallback.text,
            "errors": [*state.get("errors", []), _contained("strong_answer", exc)],
        }

    def _observe_agreement(self, state: InterCascadeState, strong: AIMessage) -> None:
        # The proxy label: the weak answer counts as right when the strong one agrees.
        weak = state.get("weak_message")
        if self.recalibrator is None or weak is None or state.get("judge_signal") == "none":
            return
        weak_answer = self.answer_extractor(weak.text)
        agreed = weak_answer is not None and weak_answer == self.answer_extractor(strong.text)
        self.recalibrator.observe(state.get("confidence", 0.0), agreed)

    def _strong_judged(
        self,
        state: InterCascadeState,
        update: dict[str, Any],
        verdict: Judgement | None,
        error: str | None,
    ) -> dict[str, Any]:
        """Two-threshold mode: abstain, with the more confident answer, when unsure."""
        confidence = verdict.confidence if verdict else 0.0
        update["strong_confidence"] = confidence
        update["usage"] = merge_usage(update["usage"], verdict.usage if verdict else {})
        if error:
            update["errors"] = [*state.get("errors", []), error]
        if self.strong_threshold is None or confidence >= self.strong_threshold:
            return update
        weak = state.get("weak_message")
        if weak is not None and state.get("confidence", 0.0) > confidence:
            update.update(messages=[weak], answer=weak.text)
        update["route"] = "abstain"  # distill_strategy skips answers nobody is sure of
        return update

    def strong_answer(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        try:
            reply = invoke_counted(
                self.strong, self.strong_prompt(state), _call_config(config, "strong_model")
            )
        except Exception as exc:
            return self._strong_failed(state, exc)
        update = self._strong_done(state, reply)
        strong = update["messages"][0]
        self._observe_agreement(state, strong)
        if self.strong_judge is None:
            return update
        try:
            verdict = self.strong_judge.judge(state["messages"], strong, config=config)
        except Exception as exc:  # an unjudgeable strong answer is not a confident one
            return self._strong_judged(state, update, None, _contained("strong_judge", exc))
        return self._strong_judged(state, update, verdict, None)

    async def astrong_answer(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        try:
            reply = await ainvoke_counted(
                self.strong, self.strong_prompt(state), _call_config(config, "strong_model")
            )
        except Exception as exc:
            return self._strong_failed(state, exc)
        update = self._strong_done(state, reply)
        strong = update["messages"][0]
        self._observe_agreement(state, strong)
        if self.strong_judge is None:
            return update
        try:
            verdict = await self.strong_judge.ajudge(state["messages"], strong, config=config)
        except Exception as exc:
            return self._strong_judged(state, update, None, _contained("strong_judge", exc))
        return self._strong_judged(state, update, verdict, None)

    # -- distill_strategy -----------------------------------------------------

    def _distill_input(self, state: InterCascadeState) -> Any:
        return self.prompts.distill.invoke(
            {"question": state.get("query", ""), "solution": state.get("answer", "")}
        )

    def _parse_distilled(self, state: InterCascadeState, reply: Any) -> _Distilled:
        """Read a strategy from a structured reply (dict), a plain AIMessage or an error."""
        usage = state.get("usage", {})
        if isinstance(reply, Exception):
            return None, usage, _contained("distill_strategy", reply)
        if isinstance(reply, dict):  # with_structured_output(include_raw=True)
            raw = reply.get("raw")
            raw = raw if isinstance(raw, AIMessage) else None
            usage = record_usage(usage, "strong", "distill", raw)
            if isinstance(reply.get("parsed"), Strategy):
                return reply["parsed"], usage, None
            text = raw.text if raw else ""  # the tool call did not validate: try its text
        else:
            usage = record_usage(usage, "strong", "distill", reply)
            text = reply.text
        try:
            return parse_strategy(text), usage, None
        except ValueError as exc:
            return None, usage, _contained("distill_strategy", exc)

    def _joint_strategy(self, state: InterCascadeState) -> _Distilled:
        usage = state.get("usage", {})
        text = state.get("strong_strategy_text")
        if not text:
            return (
                None,
                usage,
                "distill_strategy: the strong reply had no <strategy> block",
            )
        try:
            return parse_strategy(text), usage, None
        except ValueError as exc:
            return None, usage, _contained("distill_strategy", exc)

    def _distilled_update(
        self, state: InterCascadeState, config: RunnableConfig, distilled: _Distilled
    ) -> tuple[dict[str, Any], StrategyRecord | None]:
        strategy, usage, error = distilled
        update: dict[str, Any] = {"usage": usage}
        if error:
            update["errors"] = [*state.get("errors", []), error]
        if strategy is None:
            return update, None
        record = StrategyRecord.create(
            strategy,
            namespace=run_namespace(config),
            source_query=state.get("query") if self.store_source_query else None,
            model=self.strong_name,
        )
        return update, record

    @staticmethod
    def _add_error(
        update: dict[str, Any], state: InterCascadeState, node: str, exc: Exception
    ) -> None:
        update["errors"] = [*update.get("errors", state.get("errors", [])), _contained(node, exc)]

    def _distillable(self, state: InterCascadeState) -> bool:
        # A tool-calling strong reply has no solution text to learn a method from.
        return (
            state.get("route") == "strong"
            and self.bank is not None
            and bool(state.get("answer", "").strip())
        )

    def distill_strategy(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        if not self._distillable(state):
            return {}
        if self.distill_mode == "joint":
            distilled = self._joint_strategy(state)
        else:
            try:
                reply = invoke_counted(
                    self.structured or self.strong,
                    self._distill_input(state),
                    _call_config(config, "distill", stream=False),
                )
            except Exception as exc:  # the user's answer stands without a strategy
                reply = exc
            distilled = self._parse_distilled(state, reply)
        update, record = self._distilled_update(state, config, distilled)
        if record is not None and self.bank is not None:
            try:
                update["new_strategy"] = self.bank.add(record)
            except Exception as exc:
                self._add_error(update, state, "distill_strategy", exc)
        return update

    async def adistill_strategy(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> dict[str, Any]:
        if not self._distillable(state):
            return {}
        if self.distill_mode == "joint":
            distilled = self._joint_strategy(state)
        else:
            try:
                reply = await ainvoke_counted(
                    self.structured or self.strong,
                    self._distill_input(state),
                    _call_config(config, "distill", stream=False),
                )
            except Exception as exc:
                reply = exc
            distilled = self._parse_distilled(state, reply)
        update, record = self._distilled_update(state, config, distilled)
        if record is not None and self.bank is not None:
            try:
                update["new_strategy"] = await self.bank.aadd(record)
            except Exception as exc:
                self._add_error(update, state, "distill_strategy", exc)
        return update


def run_namespace(config: RunnableConfig) -> str:
    """The strategy namespace of a run: ``configurable["strategy_namespace"]``.

    Args:
        config: The run's config.

    Returns:
        The namespace; the default one when the config names none.

    Raises:
        ValueError: If the configured namespace is not a non-empty string (a
            mistyped tenant id must not fall back to a shared namespace).
    """
    namespace = (config.get("configurable") or {}).get(NAMESPACE_KEY)
    if namespace is None:
        return DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not namespace.strip():
        raise ValueError(
            f"configurable[{NAMESPACE_KEY!r}] must be a non-empty string, got {namespace!r}"
        )
    return namespace


def _contained(node: str, exc: BaseException) -> str:
    logger.warning("%s failed and was contained: %s: %s", node, type(exc).__name__, exc)
    return f"{node}: {type(exc).__name__}: {exc}"


class InterCascadeGraph(CompiledStateGraph):  # type: ignore[type-arg]
    """A compiled Inter-Cascade graph that also takes strings, messages and prompts.

    It is a ``CompiledStateGraph`` in every other respect (checkpointer, store,
    subgraph use, LangGraph server). Input goes through :func:`coerce_input`
    in ``stream``/``astream``, which ``invoke``, ``batch`` and the event streams
    all run through.
    """

    @override
    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:  # noqa: A002
        return super().stream(coerce_input(input), config, **kwargs)

    @override
    def astream(  # noqa: A002
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        return super().astream(coerce_input(input), config, **kwargs)


def _route_after_judge(state: InterCascadeState) -> str:
    return END if state.get("route") == "weak" else "strong_answer"


def build_intercascade_graph(
    weak: ChatModel,
    strong: ChatModel,
    *,
    bank: StrategyBank | None,
    judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any] | None = None,
    threshold: float = 0.8,
    k: int = 2,
    score_threshold: float | None = 0.5,
    distill: bool = True,
    distill_mode: DistillMode = "separate",
    prompts: CascadePrompts | None = None,
    retrieval_query: Callable[[Sequence[BaseMessage]], str] = last_user_turn,
    store_source_query: bool = True,
    search_type: SearchType = "similarity",
    strong_threshold: float | None = None,
    strong_judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any] | None = None,
    recalibrator: OnlineRecalibrator | None = None,
    answer_extractor: AnswerExtractor = extract_number,
) -> StateGraph:  # type: ignore[type-arg]
    """Build the uncompiled Inter-Cascade ``StateGraph``, for users who extend it.

    Args:
        weak: The cheap chat model that answers first (a bound model such as
            ``model.bind(logprobs=True)`` works too).
        strong: The expensive chat model that answers deferred queries.
        bank: Where strategies are retrieved from and stored; None runs a
            standard cascade (no strategies, no distillation).
        judge: Scores the weak answer in [0, 1]: a :class:`BaseJudge`, a Runnable
            or a callable ``(messages, answer)``. None uses :class:`AutoJudge`:
            the answer's normalized token probability when the weak model returns
            logprobs, else the weak model's own 0-1 rating.
        threshold: Accept the weak answer when the confidence is at least this.
            The default is a placeholder; calibrate it on your data.
            ``math.inf`` defers everything (what :func:`calibrate_threshold`
            returns when no threshold meets the risk level).
        k: How many strategies to show the weak model (2, as in the paper).
        score_threshold: Show only strategies at least this similar to the query
            (cosine similarity with the default FAISS index); None shows the top k.
        distill: Distill and store a strategy after each strong answer.
        distill_mode: ``"separate"`` asks the strong model for the strategy in a
            second call (structured output where the model supports it);
            ``"joint"`` gets answer and strategy from one strong call and strips
            the strategy from the user's answer. With ``"joint"``, the strategy
            block is part of the strong model's streamed tokens.
        prompts: The cascade's prompts; override any field.
        retrieval_query: Picks the retrieval text from the conversation; the
            default is the last user turn.
        store_source_query: Keep the query a strategy came from in its record;
            False leaves it out for privacy.
        search_type: ``"similarity"`` shows the ``k`` most similar strategies;
            ``"mmr"`` shows diverse ones (maximal marginal relevance).
        strong_threshold: Opt-in two-threshold mode (Jung et al.): the strong
            answer is judged too, and when its confidence is below this the
            cascade abstains: ``route="abstain"``, with the more confident of
            the two answers attached, and no strategy distilled. None (the
            default) always trusts the strong answer.
        strong_judge: Scores the strong answer in two-threshold mode; None uses
            :class:`AutoJudge` on the strong model (its logprobs, else its own
            rating), counting tokens under ``usage["strong"]["judge"]``.
        recalibrator: Opt-in online recalibration: every deferred query whose
            weak answer was judged adds ``(confidence, agreed)`` to this
            :class:`OnlineRecalibrator`, where ``agreed`` means the weak and
            strong final answers are equal; the judge node then uses its
            threshold (its ``initial_threshold`` until the first recalibration)
            instead of ``threshold``. The label is a proxy that assumes the
            strong model is right, and only deferred queries are labelled (see
            :class:`OnlineRecalibrator` for the bias this brings). Share one
            recalibrator between graphs to pool their observations.
        answer_extractor: Reads the final answer from a reply, to compare weak
            and strong answers for the recalibrator (numbers by default; see
            :mod:`langchain_intercascade.answers`).

    Returns:
        The ``StateGraph`` with nodes ``retrieve_strategy``, ``weak_answer``,
        ``confidence_judge``, ``strong_answer`` and ``distill_strategy``.

    Raises:
        TypeError: If a model is not a chat model or the bank not a StrategyBank.
        ValueError: If a number is out of range or ``distill_mode`` is unknown.
    """
    weak_model = _unbound(weak, "weak")
    if bank is not None and not isinstance(bank, StrategyBank):
        raise TypeError(f"bank must be a StrategyBank or None, got {type(bank).__name__}")
    if not (0.0 <= threshold <= 1.0 or threshold == math.inf):
        raise ValueError(f"threshold must lie in [0, 1] or be math.inf, got {threshold}")
    if strong_threshold is not None and not 0.0 <= strong_threshold <= 1.0:
        raise ValueError(f"strong_threshold must lie in [0, 1], got {strong_threshold}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if distill_mode not in ("separate", "joint"):
        raise ValueError(f"distill_mode must be 'separate' or 'joint', got {distill_mode!r}")
    prompts = prompts or CascadePrompts()
    strong_scorer: BaseJudge | None = None  # only two-threshold mode judges the strong answer
    if strong_threshold is not None:
        strong_scorer = (
            as_judge(strong_judge)
            if strong_judge is not None
            else AutoJudge(
                VerbalizedJudge(_unbound(strong, "strong"), model_key="strong", prompts=prompts)
            )
        )
    nodes = _Nodes(
        weak=weak,
        strong=strong,
        bank=bank,
        judge=as_judge(judge)
        if judge is not None
        else AutoJudge(VerbalizedJudge(weak_model, prompts=prompts)),
        threshold=threshold,
        k=k,
        score_threshold=score_threshold,
        distill=distill,
        distill_mode=distill_mode,
        prompts=prompts,
        retrieval_query=retrieval_query,
        store_source_query=store_source_query,
        search_type=search_type,
        strong_judge=strong_scorer,
        strong_threshold=strong_threshold,
        recalibrator=recalibrator,
        answer_extractor=answer_extractor,
    )
    graph = StateGraph(InterCascadeState, input_schema=InterCascadeInput)
    graph.add_node(
        "retrieve_strategy",
        RunnableLambda(nodes.retrieve_strategy, nodes.aretrieve_strategy),
    )
    graph.add_node("weak_answer", RunnableLambda(nodes.weak_answer, nodes.aweak_answer))
    graph.add_node(
        "confidence_judge",
        RunnableLambda(nodes.judge_and_record, nodes.ajudge_and_record),
    )
    graph.add_node("strong_answer", RunnableLambda(nodes.strong_answer, nodes.astrong_answer))
    graph.add_node(
        "distill_strategy",
        RunnableLambda(nodes.distill_strategy, nodes.adistill_strategy),
    )
    graph.add_edge(START, "retrieve_strategy")
    graph.add_edge("retrieve_strategy", "weak_answer")
    graph.add_edge("weak_answer", "confidence_judge")
    graph.add_conditional_edges("confidence_judge", _route_after_judge, ["strong_answer", END])
    graph.add_edge("strong_answer", "distill_strategy" if nodes.distill else END)
    graph.add_edge("distill_strategy", END)
    return graph


def create_intercascade(
    weak: ChatModel,
    strong: ChatModel,
    *,
    bank: StrategyBank | None,
    judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any] | None = None,
    threshold: float = 0.8,
    k: int = 2,
    score_threshold: float | None = 0.5,
    distill: bool = True,
    distill_mode: DistillMode = "separate",
    prompts: CascadePrompts | None = None,
    retrieval_query: Callable[[Sequence[BaseMessage]], str] = last_user_turn,
    store_source_query: bool = True,
    search_type: SearchType = "similarity",
    strong_threshold: float | None = None,
    strong_judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any] | None = None,
    recalibrator: OnlineRecalibrator | None = None,
    answer_extractor: AnswerExtractor = extract_number,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    name: str = "intercascade",
) -> InterCascadeGraph:
    """Create a compiled Inter-Cascade graph, ready to invoke, stream or serve.

    Takes every argument of :func:`build_intercascade_graph`, plus:

    Args:
        weak: The cheap chat model that answers first.
        strong: The expensive chat model that answers deferred queries.
        bank: The strategy bank (None: a standard cascade).
        judge: The confidence judge (see :func:`build_intercascade_graph`).
        threshold: The acceptance threshold.
        k: Strategies shown to the weak model.
        score_threshold: Similarity cut-off for retrieved strategies.
        distill: Distill strategies from strong answers.
        distill_mode: ``"separate"`` or ``"joint"`` strong call.
        prompts: The cascade's prompts.
        retrieval_query: Picks the retrieval text from the conversation.
        store_source_query: Keep each strategy's source query.
        search_type: ``"similarity"`` or ``"mmr"`` retrieval.
        strong_threshold: Opt-in two-threshold mode: abstain below it.
        strong_judge: Scores the strong answer in two-threshold mode.
        recalibrator: Opt-in online recalibration of ``threshold``.
        answer_extractor: Compares weak and strong answers for recalibration.
        checkpointer: A LangGraph checkpointer, for multi-turn threads.
        store: A LangGraph store, passed to the compiled graph.
        name: The graph's name in traces and when used as a subgraph.

    Returns:
        An :class:`InterCascadeGraph` (a ``CompiledStateGraph``). Its output state
        holds ``messages``, ``answer``, ``route``, ``confidence``, ``threshold``,
        ``strategies``, ``new_strategy`` and ``usage``.

    Example:
        ```python
        cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings))
        out = cascade.invoke("A train leaves at ...?")
        out["answer"], out["route"], out["confidence"]
        ```
    """
    graph = build_intercascade_graph(
        weak,
        strong,
        bank=bank,
        judge=judge,
        threshold=threshold,
        k=k,
        score_threshold=score_threshold,
        distill=distill,
        distill_mode=distill_mode,
        prompts=prompts,
        retrieval_query=retrieval_query,
        store_source_query=store_source_query,
        search_type=search_type,
        strong_threshold=strong_threshold,
        strong_judge=strong_judge,
        recalibrator=recalibrator,
        answer_extractor=answer_extractor,
    )
    compiled = graph.compile(checkpointer=checkpointer, store=store, name=name)
    # compile() builds a CompiledStateGraph directly; the subclass only adds input coercion.
    compiled.__class__ = InterCascadeGraph
    return cast(InterCascadeGraph, compiled)


def _final_message(state: dict[str, Any]) -> AIMessage:
    messages = state.get("messages") or []
    if not messages or not isinstance(messages[-1], AIMessage):
        raise ValueError("the cascade's output has no final AI message")
    return messages[-1]


pick_message: Runnable[dict[str, Any], AIMessage] = RunnableLambda(
    _final_message, name="pick_message"
)
"""Picks the final ``AIMessage`` from the cascade's output: ``cascade | pick_message``."""

pick_answer: Runnable[dict[str, Any], str] = RunnableLambda(
    lambda state: _final_message(state).text, name="pick_answer"
)
"""Picks the final answer's text from the cascade's output: ``cascade | pick_answer``."""
