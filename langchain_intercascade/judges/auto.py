"""The default judge: token probability where replies carry logprobs, another judge elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from typing_extensions import override

from langchain_intercascade.judges.base import BaseJudge, Judgement
from langchain_intercascade.judges.logprob import LogprobJudge, token_logprobs
from langchain_intercascade.model_types import ChatModel


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
