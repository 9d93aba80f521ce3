"""Confidence judges: how sure is the cascade that the weak answer is right?

A judge maps the conversation and the weak model's ``AIMessage`` to a
:class:`Judgement` whose ``confidence`` lies in [0, 1]; the cascade accepts the
weak answer when the confidence reaches its threshold. Subclass
:class:`BaseJudge`, or pass any callable ``(messages, answer) -> float`` or any
Runnable taking ``{"messages": ..., "answer": ...}``: :func:`as_judge` adapts it.
"""

from __future__ import annotations

import asyncio
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import override

from langchain_intercascade.costs import Usage, record_usage
from langchain_intercascade.prompts import CascadePrompts


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
    """The interface every judge implements."""

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
            messages: The conversation the answer replies to.
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
        """Async :meth:`judge`; runs the sync one in a thread unless overridden."""
        return await asyncio.to_thread(self.judge, messages, answer, config=config)


class MissingLogprobsError(ValueError):
    """The model's reply carries no token logprobs."""


def token_logprobs(message: AIMessage) -> list[float]:
    """Read OpenAI-format token logprobs from a reply's ``response_metadata``.

    ``ChatOpenAI(logprobs=True)``, ``ChatLlamaCpp`` (with ``logits_all=True`` and
    ``top_logprobs``) and OpenAI-compatible servers put them under
    ``response_metadata["logprobs"]["content"]``.

    Args:
        message: A chat model's reply.

    Returns:
        One logprob per generated token, possibly empty.
    """
    logprobs = message.response_metadata.get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [float(t["logprob"]) for t in content or [] if t.get("logprob") is not None]


class LogprobJudge(BaseJudge):
    """Normalized token probability of the answer (the Inter-Cascade paper's signal).

    The confidence is the geometric mean of the token probabilities
    (``exp(mean logprob)``) or, with ``aggregate="min"``, the least likely token's
    probability.

    Args:
        aggregate: ``"mean"`` or ``"min"``.
    """

    def __init__(self, aggregate: str = "mean") -> None:
        if aggregate not in ("mean", "min"):
            raise ValueError(f"aggregate must be 'mean' or 'min', got {aggregate!r}")
        self.aggregate = aggregate

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        values = token_logprobs(answer)
        if not values:
            raise MissingLogprobsError(
                "the weak model returned no token logprobs. Turn them on "
                "(ChatOpenAI(logprobs=True); ChatLlamaCpp(logits_all=True) with "
                "model.bind(logprobs=True, top_logprobs=1)) or use another judge, "
                "e.g. VerbalizedJudge."
            )
        mean = math.exp(sum(values) / len(values))
        least = math.exp(min(values))
        return Judgement(
            confidence=mean if self.aggregate == "mean" else least,
            signal=f"logprob_{self.aggregate}",
            details={
                "mean_token_prob": mean,
                "min_token_prob": least,
                "tokens": len(values),
            },
        )


_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(%?)")


def parse_rating(text: str) -> float:
    """Read a 0-1 rating from a model's reply (``0.8``, ``80%``, ``8/10`` style).

    Args:
        text: The reply.

    Returns:
        The rating in [0, 1].

    Raises:
        ValueError: If no rating can be read.
    """
    fraction = re.search(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)", text)
    if fraction and float(fraction.group(2)) > 0:
        return min(1.0, float(fraction.group(1)) / float(fraction.group(2)))
    match = _NUMBER.search(text)
    if not match:
        raise ValueError(f"no rating in the judge's reply: {text[:80]!r}")
    value = float(match.group(1))
    if match.group(2) or value > 1:
        value /= 100
    return min(1.0, max(0.0, value))


class VerbalizedJudge(BaseJudge):
    """Asks a chat model to rate the answer between 0 and 1.

    Args:
        model: The rating model (usually the weak model itself).
        model_key: The usage key its tokens are counted under.
        prompts: Where the rating prompt comes from.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_key: str = "weak",
        prompts: CascadePrompts | None = None,
    ) -> None:
        self.model = model
        self.model_key = model_key
        self.prompts = prompts or CascadePrompts()

    def _prompt(self, messages: Sequence[BaseMessage], answer: AIMessage) -> Any:
        return self.prompts.verbalized_judge.invoke(
            {"conversation": get_buffer_string(list(messages)), "answer": answer.text}
        )

    def _verdict(self, reply: BaseMessage) -> Judgement:
        assert isinstance(reply, AIMessage)
        try:
            rating = parse_rating(reply.text)
        except ValueError:
            rating = 0.0  # an unreadable rating is no evidence the answer is right
        return Judgement(
            confidence=rating,
            signal="verbalized",
            usage=record_usage({}, self.model_key, "judge", reply),
        )

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        reply = self.model.invoke(self._prompt(messages, answer), _judge_config(config))
        return self._verdict(reply)

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        reply = await self.model.ainvoke(self._prompt(messages, answer), _judge_config(config))
        return self._verdict(reply)


class AutoJudge(BaseJudge):
    """The default judge: token probability when logprobs exist, else a self-rating.

    Args:
        fallback: The judge used when the answer carries no logprobs.
        logprob_judge: The judge used when it does.
    """

    def __init__(self, fallback: BaseJudge, logprob_judge: LogprobJudge | None = None) -> None:
        self.fallback = fallback
        self.logprob_judge = logprob_judge or LogprobJudge()

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        if token_logprobs(answer):
            return self.logprob_judge.judge(messages, answer, config=config)
        return self.fallback.judge(messages, answer, config=config)

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        if token_logprobs(answer):
            return self.logprob_judge.judge(messages, answer, config=config)
        return await self.fallback.ajudge(messages, answer, config=config)


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
