"""Token probability: reading logprobs from replies, asking models for them, and the judge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableBinding, RunnableConfig
from typing_extensions import override

from langchain_intercascade.answers import AnswerExtractor
from langchain_intercascade.judges.base import BaseJudge, Judgement
from langchain_intercascade.model_types import ChatModel


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

    run_inline = True  # it reads the reply and calls no model

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
