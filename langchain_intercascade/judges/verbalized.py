"""A model's own 0-1 rating of the answer: structured output first, plain text as fallback."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, Field
from typing_extensions import override

from langchain_intercascade.costs import Usage, ainvoke_counted, invoke_counted, record_usage
from langchain_intercascade.judges.base import BaseJudge, Judgement, _judge_config, _prompt_inputs
from langchain_intercascade.prompts import CascadePrompts

logger = logging.getLogger(__name__)

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
