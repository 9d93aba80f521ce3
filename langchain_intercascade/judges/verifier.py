"""A yes/no verification question, scored by P(yes) from its token logprobs."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from typing_extensions import override

from langchain_intercascade.costs import ainvoke_counted, invoke_counted, record_usage
from langchain_intercascade.judges.base import BaseJudge, Judgement, _judge_config, _prompt_inputs
from langchain_intercascade.judges.logprob import _logprob_entries
from langchain_intercascade.prompts import CascadePrompts

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
