"""Agreement of the weak answer's label with the labels of the strategies it was shown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from typing_extensions import override

from langchain_intercascade.judges.base import BaseJudge, Judgement, as_judge
from langchain_intercascade.judges.logprob import LogprobJudge
from langchain_intercascade.model_types import ChatModel
from langchain_intercascade.prompts import CascadePrompts

if TYPE_CHECKING:
    from langchain_intercascade.labels import LabelSet


class LabelAgreementJudge(BaseJudge):
    """A label task's judge: a base confidence, raised where the shown strategies agree.

    The weak model mostly answers with the label of a strategy it was shown, so
    whether its label is the top strategy's (agreement 1), another shown
    strategy's (0.5) or none of theirs (0) is a second signal beside the
    answer's token probability. ``confidence = (1 - weight) * base + weight *
    agreement``; calibrate its threshold like any judge's, on prompts that show
    strategies (``intercascade calibrate --bank``), since without strategies the
    agreement is always 0.

    Args:
        labels: The task's labels.
        judge: The base judge; None uses :class:`LogprobJudge` (the label's
            normalized token probability).
        weight: The agreement's share of the confidence, in [0, 1].
        prompts: The prompts whose hint section is read back (the cascade's);
            None: the label task's own.

    Raises:
        ValueError: If ``weight`` is outside [0, 1].

    Example:
        ```python
        from langchain_core.messages import AIMessage, HumanMessage
        from langchain_intercascade.judges import LabelAgreementJudge
        from langchain_intercascade.labels import LabelSet

        labels = LabelSet(labels=["refund", "card_arrival"])
        judge = LabelAgreementJudge(labels, judge=lambda messages, answer: 0.6)
        verdict = judge.judge([HumanMessage("Where is my card?")], AIMessage("card_arrival"))
        assert verdict.details["agreement"] == 0.0 and verdict.confidence == 0.3
        ```
    """

    def __init__(
        self,
        labels: LabelSet,
        *,
        judge: BaseJudge | Runnable[Any, Any] | Callable[..., Any] | None = None,
        weight: float = 0.5,
        prompts: CascadePrompts | None = None,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {weight}")
        self.labels = labels
        self.base = LogprobJudge() if judge is None else as_judge(judge)
        self.weight = float(weight)
        self.prompts = prompts or labels.prompts()

    @override
    def prepare(self, model: ChatModel) -> ChatModel:
        """The weak model as the base judge needs it."""
        return self.base.prepare(model)

    def agreement(self, messages: Sequence[BaseMessage], answer: AIMessage) -> float:
        """1 for the top shown strategy's label, 0.5 for another shown one's, else 0."""
        label = self.labels.extract(answer.text)
        shown = [self.labels.extract(title) for title in self.prompts.shown_titles(messages)]
        if label is None or label not in shown:
            return 0.0
        return 1.0 if shown[0] == label else 0.5

    def _combine(self, base: Judgement, agreement: float) -> Judgement:
        confidence = (1.0 - self.weight) * base.confidence + self.weight * agreement
        return Judgement(
            confidence=min(1.0, max(0.0, confidence)),
            signal="label_agreement",
            details={**base.details, "base": base.confidence, "agreement": agreement},
            usage=base.usage,
        )

    @override
    def judge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        return self._combine(
            self.base.judge(messages, answer, config=config), self.agreement(messages, answer)
        )

    @override
    async def ajudge(
        self,
        messages: Sequence[BaseMessage],
        answer: AIMessage,
        *,
        config: RunnableConfig | None = None,
    ) -> Judgement:
        base = await self.base.ajudge(messages, answer, config=config)
        return self._combine(base, self.agreement(messages, answer))
