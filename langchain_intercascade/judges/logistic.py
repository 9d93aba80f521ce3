"""A logistic combination of several judges, with its maximum-likelihood fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import gather_with_concurrency
from scipy.optimize import minimize
from scipy.special import expit
from typing_extensions import override

from langchain_intercascade.costs import Usage, merge_usage
from langchain_intercascade.judges.base import BaseJudge, Judgement, as_judge
from langchain_intercascade.model_types import ChatModel


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
                :func:`~langchain_intercascade.evaluation.collect_confidences`
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
