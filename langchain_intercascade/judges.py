"""Confidence judges: how sure is the cascade that the weak answer is right?

A judge maps the conversation and the weak model's ``AIMessage`` to a
:class:`Judgement` whose ``confidence`` lies in [0, 1]; the cascade accepts the
weak answer when the confidence reaches its threshold. Subclass
:class:`BaseJudge`, or pass any callable ``(messages, answer) -> float`` or any
Runnable taking ``{"messages": ..., "answer": ...}``: :func:`as_judge` adapts it.

A judge that reads something from the weak model's replies (token logprobs)
says so through :meth:`BaseJudge.prepare`, which returns the weak model set up
to provide it; the cascade answers with the prepared model.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.utils import gather_with_concurrency
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import minimize
from scipy.special import expit
from typing_extensions import override

from langchain_intercascade.answers import AnswerExtractor, extract_number
from langchain_intercascade.costs import (
    Usage,
    ainvoke_counted,
    invoke_counted,
    merge_usage,
    record_usage,
)
from langchain_intercascade.prompts import CascadePrompts

logger = logging.getLogger(__name__)

ChatModel = BaseChatModel | RunnableBinding[Any, Any]
"""A chat model, or one with bound arguments (``model.bind(logprobs=True)``)."""


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
        """Async :meth:`judge`; runs the sync one in a thread unless overridden."""
        return await asyncio.to_thread(self.judge, messages, answer, config=config)


class MissingLogprobsError(ValueError):
    """The model's reply carries no token logprobs."""


def _logprob_entries(message: AIMessage) -> list[dict[str, Any]]:
    logprobs = message.response_metadata.get("logprobs") or {}
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [t for t in content or [] if isinstance(t, dict) and t.get("logprob") is not None]


def token_logprobs(message: AIMessage) -> list[float]:
    """Read OpenAI-format token logprobs from a reply's ``response_metadata``.

    ``ChatOpenAI(logprobs=True)``, ``local_chat_model(path, logprobs=True)``,
    ``ChatLlamaCpp`` (with ``logits_all=True`` and ``top_logprobs``) and
    OpenAI-compatible servers put them under
    ``response_metadata["logprobs"]["content"]``.

    Args:
        message: A chat model's reply.

    Returns:
        One logprob per generated token, possibly empty.
    """
    return [float(t["logprob"]) for t in _logprob_entries(message)]


def answer_token_span(tokens: Sequence[str], extractor: AnswerExtractor) -> tuple[int, int] | None:
    """Find the tokens that spell the reply's final answer.

    The span starts at the last token from which the rest of the reply still
    yields the same extracted answer, and ends at the first token where that
    start alone yields it. This works for any extractor, including ones that
    canonicalize (``"$1,200"`` read as ``"1200"``) and tokenizers that split
    numbers digit by digit.

    Args:
        tokens: The reply's tokens, in order.
        extractor: Reads the final answer from a text (see
            :mod:`langchain_intercascade.answers`).

    Returns:
        ``(start, end)`` token indices (end exclusive), or None when the
        extractor finds no answer.
    """
    target = extractor("".join(tokens))
    if target is None:
        return None
    start = next(
        i for i in range(len(tokens) - 1, -1, -1) if extractor("".join(tokens[i:])) == target
    )
    end = next(
        j
        for j in range(start + 1, len(tokens) + 1)
        if extractor("".join(tokens[start:j])) == target
    )
    return start, end


def request_logprobs(model: ChatModel) -> ChatModel:
    """Ask an OpenAI-style chat model for token logprobs in every reply.

    A model with both ``logprobs`` and ``top_logprobs`` fields (``ChatOpenAI``
    and its kin, whether hosted or aimed at a local OpenAI-compatible server) is
    bound with ``logprobs=True`` and, unless it or its binding sets one,
    ``top_logprobs=1``: ``python -m llama_cpp.server`` returns logprobs only when
    ``top_logprobs`` is set. Other models are returned as they are: they report
    logprobs as built (``local_chat_model(path, logprobs=True)``) or not at all.

    Args:
        model: A chat model, possibly with bound arguments.

    Returns:
        The model asking for logprobs, or ``model`` itself.
    """
    inner = model.bound if isinstance(model, RunnableBinding) else model
    fields = type(inner).model_fields if isinstance(inner, BaseChatModel) else {}
    if "logprobs" not in fields or "top_logprobs" not in fields:
        return model
    bound = model.kwargs if isinstance(model, RunnableBinding) else {}
    has_top = bound.get("top_logprobs", getattr(inner, "top_logprobs", None)) is not None
    extra = {} if has_top else {"top_logprobs": 1}
    return cast(RunnableBinding[Any, Any], model.bind(logprobs=True, **extra))


class LogprobJudge(BaseJudge):
    """Normalized token probability of the answer (the Inter-Cascade paper's signal).

    The confidence is the geometric mean of the token probabilities
    (``exp(mean logprob)``) or, with ``aggregate="min"``, the least likely token's
    probability. With an ``extractor``, both are taken over the tokens of the
    final answer (e.g. the digits of "The answer is 42") whenever the extractor
    finds one, and over the whole reply otherwise; ``details`` always carries
    the whole-reply figures and, when found, the span's. Answer with
    ``judge.prepare(weak)``: it asks OpenAI-style models for the logprobs
    (:func:`request_logprobs`).

    Args:
        aggregate: ``"mean"`` or ``"min"``.
        extractor: Reads the final answer from the reply, to score its span
            (e.g. :func:`~langchain_intercascade.answers.extract_number`).

    Raises:
        ValueError: If ``aggregate`` is not ``"mean"`` or ``"min"``.
    """

    def __init__(
        self, aggregate: str = "mean", *, extractor: AnswerExtractor | None = None
    ) -> None:
        if aggregate not in ("mean", "min"):
            raise ValueError(f"aggregate must be 'mean' or 'min', got {aggregate!r}")
        self.aggregate = aggregate
        self.extractor = extractor

    @override
    def prepare(self, model: ChatModel) -> ChatModel:
        """The weak model asking for token logprobs (:func:`request_logprobs`).

        Args:
            model: The weak chat model, possibly with bound arguments.

        Returns:
            The model to answer with.
        """
        return request_logprobs(model)

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        entries = _logprob_entries(answer)
        if not entries:
            raise MissingLogprobsError(
                "the weak model returned no token logprobs. Turn them on "
                "(ChatOpenAI(logprobs=True); local_chat_model(path, logprobs=True); "
                "ChatLlamaCpp(logits_all=True) with model.bind(logprobs=True, "
                "top_logprobs=1)) or use another judge, "
                "e.g. VerbalizedJudge or SelfConsistencyJudge."
            )
        values = [float(t["logprob"]) for t in entries]
        details = _aggregates(values, "")
        signal = f"logprob_{self.aggregate}"
        span = (
            answer_token_span([str(t.get("token", "")) for t in entries], self.extractor)
            if self.extractor is not None
            else None
        )
        if span is not None:
            details.update(_aggregates(values[span[0] : span[1]], "span_"))
            signal = f"logprob_span_{self.aggregate}"
        prefix = "span_" if span is not None else ""
        return Judgement(
            confidence=details[f"{prefix}{self.aggregate}_token_prob"],
            signal=signal,
            details=details,
        )


def _aggregates(values: Sequence[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}mean_token_prob": math.exp(sum(values) / len(values)),
        f"{prefix}min_token_prob": math.exp(min(values)),
        f"{prefix}tokens": float(len(values)),
    }


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


def _prompt_inputs(messages: Sequence[BaseMessage], answer: AIMessage) -> dict[str, Any]:
    """The variables a judge prompt may use (a template ignores those it does not)."""
    return {
        "messages": list(messages),
        "conversation": get_buffer_string(list(messages)),
        "answer": answer.text,
    }


class Rating(BaseModel):
    """A judge model's structured rating of an answer."""

    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="The probability, between 0 and 1, that the answer is fully correct.",
    )


def _structured_rating(result: Any) -> float | None:
    """Read the rating from ``with_structured_output(Rating, include_raw=True)``'s result."""
    if isinstance(result.get("parsed"), Rating):
        return float(result["parsed"].confidence)
    raw = result.get("raw")
    # Small models often write 80 for 80%: rescue the tool call's value before re-asking.
    for call in raw.tool_calls if isinstance(raw, AIMessage) else []:
        if "confidence" in call["args"]:
            try:
                return parse_rating(str(call["args"]["confidence"]))
            except ValueError:
                return None
    return None


class VerbalizedJudge(BaseJudge):
    """Asks a chat model to rate the answer between 0 and 1.

    The rating is requested as structured output (a :class:`Rating`, through the
    model's tool calling) when the model supports it. When it does not, refuses
    the structured call (e.g. an OpenAI-compatible server answering 400 or 500
    to its ``response_format``), or its structured reply holds no readable
    rating, the judge asks again for a plain text reply and reads the number
    from it; an unreadable text rating counts as 0 (no evidence that the answer
    is right). A model that refused the structured call and then answered the
    text one is asked in text only from then on.

    Args:
        model: The rating model (usually the weak model itself).
        model_key: The usage key its tokens are counted under.
        prompts: Where the rating prompt comes from.
        structured: Try structured output first; False always uses the text reply.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_key: str = "weak",
        prompts: CascadePrompts | None = None,
        structured: bool = True,
    ) -> None:
        self.model = model
        self.model_key = model_key
        self.prompts = prompts or CascadePrompts()
        self.structured: Runnable[Any, Any] | None = None
        if structured:
            try:
                self.structured = model.with_structured_output(Rating, include_raw=True)
            except NotImplementedError:  # no tool calling: the text parse is all there is
                self.structured = None

    def _prompt(self, messages: Sequence[BaseMessage], answer: AIMessage) -> Any:
        return self.prompts.verbalized_judge.invoke(_prompt_inputs(messages, answer))

    def _from_structured(self, result: Any) -> tuple[float | None, Usage]:
        raw = result.get("raw")
        usage = record_usage(
            {}, self.model_key, "judge", raw if isinstance(raw, AIMessage) else None
        )
        return _structured_rating(result), usage

    def _from_text(self, reply: BaseMessage, usage: Usage, refusal: Exception | None) -> Judgement:
        if refusal is not None:
            # Text works where structured output failed: the model refuses it, not this call.
            logger.warning(
                "structured rating refused (%r); rating in plain text from now on", refusal
            )
            self.structured = None
        try:
            rating = parse_rating(cast(AIMessage, reply).text)
        except ValueError:
            rating = 0.0  # an unreadable rating is no evidence the answer is right
        return Judgement(
            confidence=rating,
            signal="verbalized",
            usage=record_usage(usage, self.model_key, "judge", cast(AIMessage, reply)),
        )

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        prompt = self._prompt(messages, answer)
        usage: Usage = {}
        refusal: Exception | None = None
        if self.structured is not None:
            try:
                result = invoke_counted(self.structured, prompt, _judge_config(config))
            except Exception as exc:  # refused at call time: the text reply may still work
                refusal = exc
            else:
                rating, usage = self._from_structured(result)
                if rating is not None:
                    return Judgement(confidence=rating, signal="verbalized_structured", usage=usage)
        reply = invoke_counted(self.model, prompt, _judge_config(config))
        return self._from_text(reply, usage, refusal)

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        prompt = self._prompt(messages, answer)
        usage: Usage = {}
        refusal: Exception | None = None
        if self.structured is not None:
            try:
                result = await ainvoke_counted(self.structured, prompt, _judge_config(config))
            except Exception as exc:  # refused at call time: the text reply may still work
                refusal = exc
            else:
                rating, usage = self._from_structured(result)
                if rating is not None:
                    return Judgement(confidence=rating, signal="verbalized_structured", usage=usage)
        reply = await ainvoke_counted(self.model, prompt, _judge_config(config))
        return self._from_text(reply, usage, refusal)


class AutoJudge(BaseJudge):
    """The default judge: token probability when logprobs exist, else a self-rating.

    Answer with ``judge.prepare(weak)``, not ``weak``: :meth:`prepare` asks
    OpenAI-style models (``ChatOpenAI``, also against a local OpenAI-compatible
    server) for token logprobs, which they return only when asked. A reply
    without them is rated by ``fallback``.

    Args:
        fallback: The judge used when the answer carries no logprobs.
        logprob_judge: The judge used when it does.
    """

    def __init__(self, fallback: BaseJudge, logprob_judge: LogprobJudge | None = None) -> None:
        self.fallback = fallback
        self.logprob_judge = logprob_judge or LogprobJudge()

    @override
    def prepare(self, model: ChatModel) -> ChatModel:
        """The weak model asking for token logprobs where it can (:func:`request_logprobs`).

        Args:
            model: The weak chat model, possibly with bound arguments.

        Returns:
            The model to answer with.
        """
        return self.logprob_judge.prepare(model)

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


class SelfConsistencyJudge(BaseJudge):
    """Agreement of extra sampled answers with the weak answer.

    The model answers the same conversation ``n`` more times at ``temperature``;
    the confidence is the fraction of samples whose extracted final answer equals
    the weak answer's. A weak reply that states no final answer gets 0 without
    any sampling.

    Sync judging samples one after another; async judging samples concurrently,
    up to the run config's ``max_concurrency`` (set it to 1 for models that are
    not thread-safe, such as a single ``llama_cpp.Llama``).

    Args:
        model: The model to sample from (usually the weak model itself).
        extractor: Reads the final answer from a reply; see
            :mod:`langchain_intercascade.answers` (``extract_number``,
            ``extract_choice``, ``extract_text``) or pass your own.
        n: How many extra samples to draw.
        temperature: Sampling temperature, bound with ``model.bind(temperature=...)``.
        seed: When given, sample ``i`` is also bound with ``seed=seed + i``, for
            providers that take a seed (OpenAI, llama.cpp). This makes samples
            reproducible, and distinct under an LLM cache, which would otherwise
            return the first sample ``n`` times.
        model_key: The usage key the samples' tokens are counted under.

    Raises:
        ValueError: If ``n`` < 1 or ``temperature`` <= 0.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        extractor: AnswerExtractor = extract_number,
        n: int = 3,
        temperature: float = 0.7,
        seed: int | None = None,
        model_key: str = "weak",
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 for samples to differ, got {temperature}")
        self.extractor = extractor
        self.n = n
        self.model_key = model_key
        self.samplers: list[Runnable[Any, BaseMessage]] = [
            model.bind(temperature=temperature, **({} if seed is None else {"seed": seed + i}))
            for i in range(n)
        ]

    def _verdict(self, target: str | None, samples: Sequence[BaseMessage]) -> Judgement:
        usage: Usage = {}
        votes = []
        for sample in samples:
            usage = record_usage(usage, self.model_key, "judge", cast(AIMessage, sample))
            votes.append(self.extractor(sample.text))
        agreeing = sum(vote == target for vote in votes) if target is not None else 0
        return Judgement(
            confidence=agreeing / self.n,
            signal="self_consistency",
            details={
                "agreeing": float(agreeing),
                "samples": float(len(votes)),
                "answered": float(sum(vote is not None for vote in votes)),
            },
            usage=usage,
        )

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        target = self.extractor(answer.text)
        if target is None:  # nothing to agree with: spare the samples
            return self._verdict(None, [])
        cfg = _judge_config(config)
        return self._verdict(
            target, [invoke_counted(s, list(messages), cfg) for s in self.samplers]
        )

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        target = self.extractor(answer.text)
        if target is None:
            return self._verdict(None, [])
        cfg = _judge_config(config)
        samples = await gather_with_concurrency(
            cfg.get("max_concurrency"),
            *(ainvoke_counted(s, list(messages), cfg) for s in self.samplers),
        )
        return self._verdict(target, samples)


_YES = frozenset({"yes", "true", "correct"})
_NO = frozenset({"no", "false", "incorrect", "wrong"})


def _yes_no(token: str) -> bool | None:
    word = token.strip().strip(string.punctuation).lower()
    return True if word in _YES else False if word in _NO else None


def _p_yes(entries: Sequence[dict[str, Any]]) -> float | None:
    """P(yes) at the first token that answers yes or no.

    The candidates at a position are the chosen token and its ``top_logprobs``
    alternatives; case, spaces and punctuation are ignored ("Yes", " yes.").
    With both answers among them the result is ``P(yes) / (P(yes) + P(no))``;
    with one only (e.g. no alternatives returned), the unseen mass counts as
    the other answer.
    """
    for entry in entries:
        candidates = {str(entry.get("token", "")): float(entry["logprob"])}
        for alt in entry.get("top_logprobs") or []:
            candidates.setdefault(str(alt.get("token", "")), float(alt["logprob"]))
        yes = sum(math.exp(lp) for token, lp in candidates.items() if _yes_no(token) is True)
        no = sum(math.exp(lp) for token, lp in candidates.items() if _yes_no(token) is False)
        if yes and no:
            return yes / (yes + no)
        if yes or no:
            return yes if yes else 1.0 - no
    return None


class VerifierJudge(BaseJudge):
    """Asks a model whether the answer is correct and scores the reply by P(yes).

    One short call: the ``verifier_judge`` prompt continues the conversation with
    the answer and asks "Is your answer above correct? Reply with Yes or No
    only.". With token logprobs, the confidence is ``P(yes) / (P(yes) + P(no))``
    at the first token that answers yes or no, summed over the chosen token and
    its top alternatives. Without logprobs it falls back to the text: 1 for a
    reply starting with yes, else 0.

    Args:
        model: The verifier (usually the weak model itself; any chat model).
        model_key: The usage key its tokens are counted under.
        prompts: Where the verifier prompt comes from.
        top_logprobs: When set, the model is bound with ``logprobs=True,
            top_logprobs=top_logprobs`` (the OpenAI and llama.cpp parameters).
            None uses the model as given, for providers configured otherwise or
            without logprobs. ``ChatLlamaCpp`` also needs ``logits_all=True``.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_key: str = "weak",
        prompts: CascadePrompts | None = None,
        top_logprobs: int | None = 5,
    ) -> None:
        self.model: Runnable[Any, BaseMessage] = (
            model if top_logprobs is None else model.bind(logprobs=True, top_logprobs=top_logprobs)
        )
        self.model_key = model_key
        self.prompts = prompts or CascadePrompts()

    def _prompt(self, messages: Sequence[BaseMessage], answer: AIMessage) -> Any:
        return self.prompts.verifier_judge.invoke(_prompt_inputs(messages, answer))

    def _verdict(self, reply: BaseMessage) -> Judgement:
        message = cast(AIMessage, reply)
        usage = record_usage({}, self.model_key, "judge", message)
        p_yes = _p_yes(_logprob_entries(message))
        if p_yes is not None:
            return Judgement(confidence=p_yes, signal="verifier_p_yes", usage=usage)
        words = message.text.split()
        said_yes = bool(words) and _yes_no(words[0]) is True
        return Judgement(confidence=float(said_yes), signal="verifier_text", usage=usage)

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return self._verdict(
            invoke_counted(self.model, self._prompt(messages, answer), _judge_config(config))
        )

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return self._verdict(
            await ainvoke_counted(self.model, self._prompt(messages, answer), _judge_config(config))
        )


class LogisticJudge(BaseJudge):
    """A logistic combination of several judges' confidences.

    ``confidence = sigmoid(bias + sum_i weights[i] * confidence_i)``. Fit the
    weights on labelled data with :meth:`fit`; ``details`` carries each
    component's confidence under ``"<index>_<signal>"``.

    Args:
        judges: The component judges (anything :func:`as_judge` accepts).
        weights: One weight per judge.
        bias: The intercept.

    Raises:
        ValueError: If there are no judges or the weights do not match them.
    """

    def __init__(
        self,
        judges: Sequence[BaseJudge | Runnable[Any, Any] | Callable[..., Any]],
        weights: Sequence[float],
        bias: float = 0.0,
    ) -> None:
        if not judges:
            raise ValueError("LogisticJudge needs at least one judge")
        if len(weights) != len(judges):
            raise ValueError(f"got {len(weights)} weights for {len(judges)} judges")
        self.judges = [as_judge(j) for j in judges]
        self.weights = tuple(float(w) for w in weights)
        self.bias = float(bias)

    @override
    def prepare(self, model: ChatModel) -> ChatModel:
        """The weak model prepared by every component judge in turn.

        Args:
            model: The weak chat model, possibly with bound arguments.

        Returns:
            The model to answer with.
        """
        for judge in self.judges:
            model = judge.prepare(model)
        return model

    @classmethod
    def fit(
        cls,
        judges: Sequence[BaseJudge | Runnable[Any, Any] | Callable[..., Any]],
        confidences: Sequence[Sequence[float]] | npt.NDArray[Any],
        correct: Sequence[bool] | npt.NDArray[Any],
        *,
        l2: float = 0.01,
    ) -> LogisticJudge:
        """Fit the weights by L2-regularized maximum likelihood.

        Args:
            judges: The component judges.
            confidences: One row per labelled example, one column per judge
                (column ``i`` holds ``judges[i]``'s confidences), e.g. from
                :func:`~langchain_intercascade.calibration.collect_confidences`
                run once per judge.
            correct: Whether each example's answer was right.
            l2: The penalty on the squared weights (not the bias), added to the
                mean log loss; it keeps the weights finite when a judge
                separates the labels perfectly.

        Returns:
            The fitted judge.

        Raises:
            ValueError: If the shapes do not match the judges, a confidence is
                outside [0, 1], ``l2`` is negative, or the labels are all the same.
        """
        x = np.asarray(confidences, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(judges) or y.shape != (x.shape[0],):
            raise ValueError(
                f"confidences must have shape (n, {len(judges)}) and correct shape (n,), "
                f"got {x.shape} and {y.shape}"
            )
        if not np.all((x >= 0.0) & (x <= 1.0)):
            raise ValueError("confidences must lie in [0, 1]")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        if y.min() == y.max():
            raise ValueError("fitting needs both correct and incorrect examples")
        design = np.hstack([np.ones((x.shape[0], 1)), x])
        penalty = np.r_[0.0, np.full(x.shape[1], l2)]

        def loss(theta: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
            z = design @ theta
            value = np.mean(np.logaddexp(0.0, z) - y * z) + np.sum(penalty * theta**2)
            grad = design.T @ (expit(z) - y) / len(y) + 2 * penalty * theta
            return float(value), grad

        theta = minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x
        return cls(judges, weights=theta[1:].tolist(), bias=float(theta[0]))

    def combine(self, confidences: Sequence[float]) -> float:
        """Combine the components' confidences without calling them.

        Args:
            confidences: One confidence per judge, in the judges' order.

        Returns:
            The combined confidence.
        """
        z = self.bias + sum(w * c for w, c in zip(self.weights, confidences, strict=True))
        return float(expit(z))

    def _verdict(self, verdicts: Sequence[Judgement]) -> Judgement:
        usage: Usage = {}
        for verdict in verdicts:
            usage = merge_usage(usage, verdict.usage)
        return Judgement(
            confidence=self.combine([v.confidence for v in verdicts]),
            signal="logistic",
            details={f"{i}_{v.signal}": v.confidence for i, v in enumerate(verdicts)},
            usage=usage,
        )

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return self._verdict([j.judge(messages, answer, config=config) for j in self.judges])

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        verdicts = await gather_with_concurrency(
            (config or {}).get("max_concurrency"),
            *(j.ajudge(messages, answer, config=config) for j in self.judges),
        )
        return self._verdict(verdicts)


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
