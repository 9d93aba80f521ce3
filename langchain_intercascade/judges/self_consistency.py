"""Agreement of extra sampled answers with the weak answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import gather_with_concurrency
from typing_extensions import override

from langchain_intercascade.answers import AnswerExtractor, extract_number
from langchain_intercascade.costs import Usage, ainvoke_counted, invoke_counted, record_usage
from langchain_intercascade.judges.base import BaseJudge, Judgement, _judge_config


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
