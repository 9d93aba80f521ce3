"""What every node shares: the models, the bank, the judges and the options, resolved once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence
from langgraph.store.base import BaseStore

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.budgets import BudgetLedger
from langchain_intercascade.graph.background import BackgroundDistillations
from langchain_intercascade.graph.calls import acall_model, call_model
from langchain_intercascade.judges import AutoJudge, BaseJudge, VerbalizedJudge
from langchain_intercascade.model_types import ChatModel
from langchain_intercascade.options import CascadeOptions
from langchain_intercascade.strategies import Strategy

logger = logging.getLogger("langchain_intercascade.graph")

CallRole = Literal["weak", "strong", "distill"]
"""The model calls the nodes make; each has its own timeout option."""


def unbound(model: ChatModel, role: str) -> BaseChatModel:
    """The chat model inside a binding.

    Args:
        model: A chat model or a binding around one.
        role: The model's role, for the error message.

    Returns:
        The chat model.

    Raises:
        TypeError: If ``model`` is not a chat model.
    """
    inner = model.bound if isinstance(model, RunnableBinding) else model
    if not isinstance(inner, BaseChatModel):
        raise TypeError(f"{role} must be a LangChain chat model, got {type(model).__name__}")
    return inner


def model_name(model: BaseChatModel) -> str:
    """A chat model's name, as providers report it."""
    for attr in ("model_name", "model", "model_path"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model.get_name()


# Run names in traces; distillation tokens are not part of the user's answer stream.
_ROLE_CONFIGS: dict[str, RunnableConfig] = {
    role: {
        "run_name": name,
        "tags": [f"intercascade:{name}"] + ([] if stream else ["nostream"]),
        "metadata": {"intercascade_role": name},
    }
    for role, name, stream in (
        ("weak", "weak_model", True),
        ("strong", "strong_model", True),
        ("distill", "distill", False),
    )
}


def contained(node: str, exc: BaseException) -> str:
    """Log a failure the cascade survives and describe it for the ``errors`` key."""
    logger.warning("%s failed and was contained: %s: %s", node, type(exc).__name__, exc)
    return f"{node}: {type(exc).__name__}: {exc}"


def _distiller(model: BaseChatModel) -> tuple[Runnable[Any, Any] | None, Runnable[Any, Any] | None]:
    """The strong model asking for a :class:`Strategy`, and what reads the strategy from its reply.

    ``with_structured_output`` is the bound model piped into what reads its reply
    (a parser; for ChatOpenAI, a refusal check and then a parser). The cascade
    calls the model, keeping the reply for its usage, then the reader. With
    ``include_raw=True`` LangChain would keep the reply by wrapping both in five
    more runs: 3.6x the cost of the call with an instant model.

    Returns:
        The model and the reader; the ``include_raw=True`` runnable and None when
        structured output is not a sequence starting with the model; (None, None) when it has
        no tool calling (strategies are then parsed from text).
    """
    try:
        chain = model.with_structured_output(Strategy)
    except NotImplementedError:
        return None, None
    if isinstance(chain, RunnableSequence) and isinstance(
        chain.first, BaseChatModel | RunnableBinding
    ):
        rest = chain.steps[1:]
        return chain.first, rest[0] if len(rest) == 1 else RunnableSequence(*rest)
    return model.with_structured_output(Strategy, include_raw=True), None


@dataclass(frozen=True)
class CascadeContext:
    """The resolved parts of one cascade, shared by its five nodes.

    Attributes:
        weak: The weak model.
        strong: The strong model.
        bank: The strategy bank (None: a standard cascade).
        options: The validated options.
        judge: The weak answer's judge.
        strong_judge: The strong answer's judge (None unless
            ``options.judges_strong_answer``).
        distiller: The strong model asking for a strategy as structured output, or
            None when it has no tool calling (strategies are then parsed from text).
        strategy_reader: What reads the strategy from the distiller's reply (None:
            the distiller returns it with the raw reply, as ``include_raw=True``).
        weak_name: The weak model's name, in teacher records.
        strong_name: The strong model's name, stored with each strategy.
        background: Where distillations run after the answer, when
            ``distill_in_background`` is set.
    """

    weak: ChatModel
    strong: ChatModel
    bank: StrategyBank | None
    options: CascadeOptions
    judge: BaseJudge = field(init=False)
    strong_judge: BaseJudge | None = field(init=False)
    distiller: Runnable[Any, Any] | None = field(init=False)
    strategy_reader: Runnable[Any, Any] | None = field(init=False)
    weak_name: str = field(init=False)
    strong_name: str = field(init=False)
    background: BackgroundDistillations | None = field(init=False)

    def __post_init__(self) -> None:
        weak_model, strong_model = unbound(self.weak, "weak"), unbound(self.strong, "strong")
        if self.bank is not None and not isinstance(self.bank, StrategyBank):
            raise TypeError(f"bank must be a StrategyBank or None, got {type(self.bank).__name__}")
        options, prompts = self.options, self.options.prompts
        judge = options.judge or AutoJudge(VerbalizedJudge(weak_model, prompts=prompts))
        strong_judge = None
        if options.judges_strong_answer:
            strong_judge = options.strong_judge or AutoJudge(
                VerbalizedJudge(strong_model, model_key="strong", prompts=prompts)
            )
        distiller, strategy_reader = _distiller(strong_model)
        # A frozen dataclass: the resolved parts are set once, here. Each model is asked
        # for what its judge reads (e.g. token logprobs from an OpenAI-compatible server).
        object.__setattr__(self, "weak", judge.prepare(self.weak))
        if strong_judge is not None:
            object.__setattr__(self, "strong", strong_judge.prepare(self.strong))
        object.__setattr__(self, "judge", judge)
        object.__setattr__(self, "strong_judge", strong_judge)
        object.__setattr__(self, "distiller", distiller)
        object.__setattr__(self, "strategy_reader", strategy_reader)
        object.__setattr__(self, "weak_name", model_name(weak_model))
        object.__setattr__(self, "strong_name", model_name(strong_model))
        background = self.distilling and self.options.distill_in_background
        object.__setattr__(
            self,
            "background",
            BackgroundDistillations(keep=options.distill_kept, on_finished=options.on_distilled)
            if background
            else None,
        )

    @property
    def distilling(self) -> bool:
        """Whether strong answers are distilled into the bank."""
        return self.options.distill and self.bank is not None

    def call(
        self, role: CallRole, runnable: Runnable[Any, Any], value: Any, config: RunnableConfig
    ) -> Any:
        """Call a model in a role: traced under the role's name, with its timeout and retries."""
        return call_model(runnable, value, config, **self._policy(role))

    async def acall(
        self, role: CallRole, runnable: Runnable[Any, Any], value: Any, config: RunnableConfig
    ) -> Any:
        """Async :meth:`call`."""
        return await acall_model(runnable, value, config, **self._policy(role))

    def _policy(self, role: CallRole) -> dict[str, Any]:
        timeout = getattr(self.options, f"{role}_timeout")
        return {
            "role": role,
            "timeout": timeout,
            "max_retries": self.options.max_retries,
            "patch": _ROLE_CONFIGS[role],
        }

    def threshold(self) -> tuple[float, bool]:
        """The weak answer's acceptance threshold in force, and whether it is calibrated."""
        recalibrator = self.options.recalibrator
        if recalibrator is not None:
            calibration = recalibrator.calibration  # one read: it may change concurrently
            if calibration is not None:
                return calibration.threshold, True
            return recalibrator.threshold, False
        return self.options.threshold_value, self.options.threshold_calibrated

    def budget_ledger(self, store: BaseStore | None) -> BudgetLedger | None:
        """The ledger of the strong-call budget, when options set one.

        Args:
            store: The store the run has (LangGraph's runtime store), if any.

        Returns:
            A ledger on the budget's own store, else ``store``, else the bank's
            store; None without a budget.

        Raises:
            ValueError: If there is a budget but no store to keep it in.
        """
        budget = self.options.budget
        if budget is None:
            return None
        kept = budget.store or store or (self.bank.store if self.bank is not None else None)
        if kept is None:
            raise ValueError(
                "the strong-call budget needs a LangGraph store to be kept in: pass "
                "StrongCallBudget(store=...), or create_intercascade(store=...)"
            )
        return BudgetLedger(kept, budget)
