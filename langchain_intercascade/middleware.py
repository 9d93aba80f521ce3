"""The Inter-Cascade as middleware for LangChain v1 agents (``create_agent``).

An agent whose model is a :class:`~langchain_intercascade.ChatInterCascade` runs
the whole cascade, retrieval and distillation included, on every tool step.
:class:`InterCascadeMiddleware` keeps the learning per task (one agent run):
strategies are retrieved once when the run starts (``before_agent``) and shown to
every weak call of the run, and one strategy is distilled when it ends
(``after_agent``) if the strong model answered any step. In between, each model
call goes to the weak model first; the judge accepts its reply, tool calls
included, or the call is re-run on the strong model. The graph's own nodes do
the retrieval, the judging and the distillation, so both behave alike.

Needs the ``agents`` extra: ``pip install "langchain-intercascade[agents]"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableBinding
from langgraph.config import get_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command
from typing_extensions import NotRequired, TypedDict, override

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.costs import Usage, merge_usage, record_usage
from langchain_intercascade.graph.confidence_judge import judged, outcome_recorded
from langchain_intercascade.graph.context import CascadeContext, contained, unbound
from langchain_intercascade.graph.distill_strategy import distillation
from langchain_intercascade.graph.inputs import run_namespace
from langchain_intercascade.graph.retrieve_strategy import retrieved, search_args
from langchain_intercascade.graph.state import Route
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.graph.weak_answer import weak_prompt
from langchain_intercascade.model_types import ChatModel
from langchain_intercascade.options import CascadeOptions, resolve_options
from langchain_intercascade.strategies import RetrievedStrategy

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
    )
    from langchain.agents.middleware.types import OmitFromInput
except ImportError as exc:  # the package itself does not need LangChain's agents
    raise ImportError(
        "InterCascadeMiddleware needs LangChain v1 agents (langchain>=1.2.9): "
        'pip install "langchain-intercascade[agents]"'
    ) from exc

STATE_KEY: Final = "intercascade"
"""The agent state key of the cascade's record of the current task."""


class CascadeCall(TypedDict):
    """How one model call of the agent was answered.

    Attributes:
        route: ``"weak"`` (accepted), ``"strong"`` (deferred) or
            ``"weak_fallback"`` (deferred, but the strong model failed, so the
            weak reply stands).
        confidence: The judge's confidence in the weak reply (0 when the weak
            model failed or the judge could not judge it).
        judge_signal: Which signal the judge used (``"none"``: not judged).
        tool_calls: The names of the tools the answering reply called.
    """

    route: Route
    confidence: float
    judge_signal: str
    tool_calls: list[str]


class CascadeTask(TypedDict):
    """The cascade's record of one task: one run of the agent.

    Plain data, so that any checkpointer stores it as it is.

    Attributes:
        query: The text strategies were retrieved for (the last user message,
            unless ``retrieval_query`` says otherwise).
        strategies: The strategies shown to every weak call of the task, as
            ``RetrievedStrategy.model_dump(mode="json")``.
        calls: One entry per model call, in order.
        new_strategy_id: The id of the strategy distilled from the task, or None.
        usage: Tokens per model and role, deferred weak replies and judge calls
            included (the agent's messages carry only the answering replies').
        errors: Failures contained during the task (``stage: message``).
    """

    query: str
    strategies: list[dict[str, Any]]
    calls: list[CascadeCall]
    new_strategy_id: str | None
    usage: Usage
    errors: list[str]


class InterCascadeAgentState(AgentState[Any]):
    """The agent's state with the cascade's record of the latest task.

    Attributes:
        intercascade: The latest task's :class:`CascadeTask` (in the output, not
            the input).
    """

    intercascade: NotRequired[Annotated[CascadeTask, OmitFromInput]]


def _agent_options(options: CascadeOptions) -> CascadeOptions:
    """The options, if the middleware can honour them all."""
    unsupported = [
        name
        for name, chosen in (
            ("distill_mode='joint'", options.distill_mode == "joint"),
            ("strong_threshold", options.strong_threshold is not None),
            ("distill_threshold", options.distill_threshold is not None),
            ("recalibrator", options.recalibrator is not None),
            ("record_to", options.record_to is not None),
            ("budget", options.budget is not None),
        )
        if chosen
    ]
    if unsupported:
        raise ValueError(
            f"InterCascadeMiddleware does not support {', '.join(unsupported)}: "
            "an agent's steps have no single answer to abstain on, judge, learn a "
            "joint strategy from, record, or compare with the strong model's, and its strong "
            "calls are the agent's own"
        )
    return options


_Target = tuple[BaseChatModel, dict[str, Any]]
"""A chat model that requests go to, and the arguments bound to it."""


def _target(model: ChatModel, role: str, *, stream: bool) -> _Target:
    chat = unbound(model, role)
    if not stream:
        chat = chat.model_copy(update={"tags": [*(chat.tags or []), TAG_NOSTREAM]})
    return chat, dict(model.kwargs) if isinstance(model, RunnableBinding) else {}


def _sent_to(request: ModelRequest[Any], target: _Target) -> ModelRequest[Any]:
    """The request for a model; its bound arguments go as model settings."""
    model, bound = target
    return request.override(model=model, model_settings={**bound, **request.model_settings})


def _new_task(query: str, strategies: list[RetrievedStrategy], errors: list[str]) -> CascadeTask:
    return CascadeTask(
        query=query,
        strategies=[s.model_dump(mode="json") for s in strategies],
        calls=[],
        new_strategy_id=None,
        usage={},
        errors=errors,
    )


def _reply(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _final_answer(messages: list[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, AIMessage)), "")


@dataclass
class _Step:
    """One model call in progress: the weak reply, the judge's update, what failed."""

    task: CascadeTask
    weak: ModelResponse[Any] | None = None
    verdict: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def weak_message(self) -> AIMessage | None:
        return _reply(self.weak) if self.weak is not None else None

    def accepted(self) -> ModelResponse[Any] | None:
        """The weak response if the judge accepted it."""
        return self.weak if self.verdict.get("route") == "weak" else None

    def answered(self, route: Route, response: ModelResponse[Any]) -> ExtendedModelResponse[Any]:
        """The answering response, with the call added to the task's record."""
        task, answer = self.task, _reply(response)
        usage = task["usage"]
        if self.weak_message is not None:
            usage = record_usage(usage, "weak", "answer", self.weak_message)
        usage = merge_usage(usage, self.verdict.get("usage", {}))
        if route == "strong":
            usage = record_usage(usage, "strong", "answer", answer)
        call = CascadeCall(
            route=route,
            confidence=self.verdict.get("confidence", 0.0),
            judge_signal=self.verdict.get("judge_signal", "none"),
            tool_calls=[c["name"] for c in answer.tool_calls] if answer else [],
        )
        errors = [*task["errors"], *self.errors, *self.verdict.get("errors", [])]
        recorded = {**task, "calls": [*task["calls"], call], "usage": usage, "errors": errors}
        return ExtendedModelResponse(
            model_response=response, command=Command(update={STATE_KEY: recorded})
        )


class InterCascadeMiddleware(AgentMiddleware[InterCascadeAgentState, Any]):
    """The Inter-Cascade in a LangChain v1 agent: weak model first, strong on deferral.

    Every model call of the agent goes to ``weak``, with the task's strategies
    as a hint section after the system prompt; the judge accepts the reply (text
    or tool calls) or the call is re-run on ``strong``, with the same tools and
    no hints. The middleware decides which model answers each call, so the
    agent's own ``model`` is never called: give ``create_agent`` the weak model.

    Per task (one agent run): strategies are retrieved once, from the last user
    message, when the run starts; one strategy is distilled from the question
    and the final answer when the run ends, if the strong model answered any
    step; and the strategies shown are counted accepted if no step was deferred.
    The bank namespace is the run's ``configurable["strategy_namespace"]``, as in
    the cascade graph. The state key ``"intercascade"`` records the task (a
    :class:`CascadeTask`: routes and confidences per call, strategies shown, the
    new strategy's id, tokens, contained errors).

    A failing weak model or judge defers the call; a failing strong model leaves
    the weak reply (``"weak_fallback"``); a failing bank or distillation is
    logged and recorded, and the agent's answer stands. With
    ``stream_mode="messages"`` a deferred weak reply never reaches the stream and
    an accepted one arrives whole, once judged; the strong model streams live.
    The run's config is read with LangGraph's ``get_config``, so async runs need
    Python 3.11 or later.

    Args:
        weak: The cheap chat model that answers first (a bound model such as
            ``model.bind(logprobs=True)`` works too: its arguments go with every
            call).
        strong: The expensive chat model that answers deferred calls.
        bank: Where strategies are retrieved from and stored; None cascades each
            call without strategies.
        options: The cascade's options (see :class:`CascadeOptions`); two-threshold
            mode, ``distill_mode="joint"``, the online recalibrator and ``record_to``
            do not apply to agents, and ``max_input_chars`` is not checked.
        **option_values: Fields of :class:`CascadeOptions`, overriding ``options``.

    Raises:
        TypeError: If a model is not a chat model or the bank not a StrategyBank.
        ValueError: If an option is invalid or does not apply to agents.

    Example:
        ```python
        from langchain.agents import create_agent

        from langchain_intercascade import StrategyBank
        from langchain_intercascade.middleware import InterCascadeMiddleware
        from langchain_intercascade.testing import fake_agent_models, multiply

        weak, strong, embeddings = fake_agent_models()
        cascade = InterCascadeMiddleware(weak, strong, bank=StrategyBank(embeddings))
        agent = create_agent(weak, tools=[multiply], middleware=[cascade])

        first = agent.invoke({"messages": [("human", "Sam has 3 boxes with 4 pens in each box.")]})
        again = agent.invoke({"messages": [("human", "Ana has 5 boxes with 6 pens in each box.")]})
        routes = [[c["route"] for c in out["intercascade"]["calls"]] for out in (first, again)]
        assert routes == [["strong", "strong"], ["weak", "weak"]]  # tool call, then answer
        assert first["intercascade"]["new_strategy_id"] is not None
        assert again["messages"][-1].text == "The total is 30."
        ```
    """

    state_schema = InterCascadeAgentState

    def __init__(
        self,
        weak: ChatModel,
        strong: ChatModel,
        *,
        bank: StrategyBank | None = None,
        options: CascadeOptions | None = None,
        **option_values: Any,
    ) -> None:
        self.context = CascadeContext(
            weak=weak,
            strong=strong,
            bank=bank,
            options=_agent_options(resolve_options(options, option_values)),
        )
        # A weak reply is final only once judged: its tokens stay out of the agent's
        # messages stream, which gets an accepted reply whole, as the node's output.
        self._weak = _target(weak, "weak", stream=False)
        self._strong = _target(strong, "strong", stream=True)

    @property
    def options(self) -> CascadeOptions:
        """The cascade's options."""
        return self.context.options

    # -- the task starts: retrieve once --------------------------------------------

    def _started(self, state: InterCascadeAgentState) -> Steps[dict[str, Any]]:
        namespace = run_namespace(get_config())
        args = search_args(self.context.options, state["messages"], namespace)
        strategies, errors = yield from retrieved(self.context.bank, args)
        return {STATE_KEY: _new_task(args["query"], strategies, errors)}

    @override
    def before_agent(
        self, state: InterCascadeAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Retrieve the task's strategies and start its record.

        Args:
            state: The agent's state.
            runtime: The agent's runtime.

        Returns:
            The state update that starts the task's record.
        """
        return run(self._started(state))

    @override
    async def abefore_agent(
        self, state: InterCascadeAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`before_agent`."""
        return await arun(self._started(state))

    # -- every model call: weak first, judged, strong on deferral ------------------

    def _answered(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Any]
    ) -> Steps[ExtendedModelResponse[Any]]:
        task = cast(InterCascadeAgentState, request.state).get(STATE_KEY) or _new_task("", [], [])
        strategies = [RetrievedStrategy.model_validate(s) for s in task["strategies"]]
        prompts, step = self.context.options.prompts, _Step(task)
        hinted = request.override(
            messages=cast(list[AnyMessage], weak_prompt(prompts, request.messages, strategies))
        )
        weak = _sent_to(hinted, self._weak)
        try:
            step.weak = yield Call(handler, handler, weak)
        except GraphBubbleUp:  # an interrupt, not a failure
            raise
        except Exception as exc:  # the strong model still answers
            step.errors.append(contained("weak_answer", exc))
        # The judge sees what the weak model saw: the system prompt, the hints, the rest.
        seen = [*([weak.system_message] if weak.system_message else []), *weak.messages]
        step.verdict = yield from judged(self.context, seen, step.weak_message, get_config())
        accepted = step.accepted()
        if accepted is not None:
            return step.answered("weak", accepted)
        try:
            strong = yield Call(handler, handler, _sent_to(request, self._strong))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            if step.weak is None:
                raise  # neither model answered
            step.errors.append(contained("strong_answer", exc))
            return step.answered("weak_fallback", step.weak)  # better the weak reply than none
        return step.answered("strong", strong)

    @override
    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ExtendedModelResponse[Any]:
        """Answer one model call of the agent with the weak model, or defer it.

        Args:
            request: The agent's model request.
            handler: Runs a request on its model (with the agent's tools).

        Returns:
            The answering model's response, with the call recorded in the task.
        """
        return run(self._answered(request, handler))

    @override
    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ExtendedModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        return await arun(self._answered(request, handler))

    # -- the task ends: count the strategies' outcome, distill once -----------------

    def _finished(self, state: InterCascadeAgentState) -> Steps[dict[str, Any] | None]:
        task = state.get(STATE_KEY)
        if task is None or not task["calls"]:
            return None
        shown = [str(s["record"]["id"]) for s in task["strategies"]]
        accepted = all(c["route"] == "weak" for c in task["calls"])
        errors = yield from outcome_recorded(self.context.bank, shown, accepted, "record_outcome")
        distilled: dict[str, Any] = {}
        if self.context.distilling and any(c["route"] == "strong" for c in task["calls"]):
            config = get_config()
            distilled = yield from distillation(
                self.context,
                query=task["query"],
                answer=_final_answer(list(state["messages"])),
                strategy_text=None,
                strong_confidence=None,
                strategies=[],
                namespace=run_namespace(config),
                config=config,
            )
        stored = distilled.get("new_strategy")
        finished = {
            **task,
            "new_strategy_id": stored.id if stored is not None else None,
            "usage": merge_usage(task["usage"], distilled.get("usage", {})),
            "errors": [*task["errors"], *errors, *distilled.get("errors", [])],
        }
        return {STATE_KEY: finished}

    @override
    def after_agent(
        self, state: InterCascadeAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Count the shown strategies' outcome and distill the task, if deferred.

        Args:
            state: The agent's state.
            runtime: The agent's runtime.

        Returns:
            The state update that completes the task's record.
        """
        return run(self._finished(state))

    @override
    async def aafter_agent(
        self, state: InterCascadeAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        return await arun(self._finished(state))


__all__ = [
    "STATE_KEY",
    "CascadeCall",
    "CascadeTask",
    "InterCascadeAgentState",
    "InterCascadeMiddleware",
]
