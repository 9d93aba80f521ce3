"""Shared by every judge: the verdict, the interface, and adapters for callables and Runnables."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import override

from langchain_intercascade.costs import Usage
from langchain_intercascade.model_types import ChatModel


class Judgement(BaseModel):
    """A judge's verdict on one weak answer.

    Attributes:
        confidence: How likely the answer is right, in [0, 1].
        signal: Which signal produced it (e.g. ``"logprob_mean"``, ``"verbalized"``).
        details: Extra figures worth tracing (e.g. the min token probability).
        usage: Tokens the judge spent, as ``{model: {"judge": tokens}}``.
    """

    model_config = ConfigDict(frozen=True)

    confidence: float = Field(ge=0.0, le=1.0)
    signal: str
    details: dict[str, float] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=dict)


class BaseJudge(ABC):
    """The interface every judge implements.

    Attributes:
        run_inline: Whether :meth:`ajudge` may call :meth:`judge` on the event
            loop, for a judge that computes without calls (as LangChain's
            callback handlers have it); otherwise it runs in a thread.
    """

    run_inline: ClassVar[bool] = False

    def prepare(self, model: ChatModel) -> ChatModel:
        """The weak model set up to give this judge what it reads from replies.

        Call it once when wiring the cascade and answer with the returned model.
        This base judge reads nothing from replies and returns ``model`` itself.

        Args:
            model: The weak chat model, possibly with bound arguments.

        Returns:
            The model to answer with.
        """
        return model

    @abstractmethod
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        """Score a weak answer.

        Args:
            messages: The conversation the answer replies to, as the weak model
                saw it: with the retrieved strategies' system message, if any.
            answer: The weak model's reply.
            config: The run's config, for callbacks and tracing of judge calls.

        Returns:
            The judgement.
        """

    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        """Async :meth:`judge`; runs the sync one in a thread (inline with ``run_inline``)."""
        if self.run_inline:
            return self.judge(messages, answer, config=config)
        return await asyncio.to_thread(self.judge, messages, answer, config=config)


def _prompt_inputs(messages: Sequence[BaseMessage], answer: AIMessage) -> dict[str, Any]:
    """The variables a judge prompt may use (a template ignores those it does not)."""
    return {
        "messages": list(messages),
        "conversation": get_buffer_string(list(messages)),
        "answer": answer.text,
    }


def _judge_config(config: RunnableConfig | None) -> RunnableConfig:
    # "nostream" keeps judge tokens out of LangGraph's messages stream.
    return {
        **(config or {}),
        "run_name": "judge",
        "tags": ["intercascade:judge", "nostream"],
    }


def _coerce(result: Any, signal: str) -> Judgement:
    if isinstance(result, Judgement):
        return result
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise TypeError(f"a judge must return a float in [0, 1] or a Judgement, got {result!r}")
    if not 0.0 <= float(result) <= 1.0:
        raise ValueError(f"a judge's confidence must lie in [0, 1], got {result}")
    return Judgement(confidence=float(result), signal=signal)


class _CallableJudge(BaseJudge):
    def __init__(self, func: Callable[[Sequence[BaseMessage], AIMessage], Any]) -> None:
        self.func = func

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return _coerce(self.func(messages, answer), getattr(self.func, "__name__", "custom"))


class _RunnableJudge(BaseJudge):
    def __init__(self, runnable: Runnable[Any, Any]) -> None:
        self.runnable = runnable

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        result = self.runnable.invoke({"messages": list(messages), "answer": answer}, config)
        return _coerce(result, self.runnable.get_name())

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        result = await self.runnable.ainvoke({"messages": list(messages), "answer": answer}, config)
        return _coerce(result, self.runnable.get_name())


def as_judge(judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any]) -> BaseJudge:
    """Adapt a judge, a Runnable or a callable to the :class:`BaseJudge` interface.

    Args:
        judge: A :class:`BaseJudge`; a Runnable taking ``{"messages", "answer"}``;
            or a callable ``(messages, answer)``. The last two return a float in
            [0, 1] or a :class:`Judgement`.

    Returns:
        A :class:`BaseJudge`.
    """
    if isinstance(judge, BaseJudge):
        return judge
    if isinstance(judge, Runnable):
        return _RunnableJudge(judge)
    if callable(judge):
        return _CallableJudge(judge)
    raise TypeError(
        f"a judge must be a BaseJudge, Runnable or callable, got {type(judge).__name__}"
    )
