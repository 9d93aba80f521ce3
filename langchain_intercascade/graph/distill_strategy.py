"""Node ``distill_strategy``: turn a trusted strong answer into a strategy in the bank.

``separate`` mode asks the strong model for the strategy in a second call, with
structured output where the model supports it and a text parse where it does not
or where the provider refuses it at call time; ``joint`` mode reads the strategy
block the strong answer carried. No call is paid for a strong answer below
``distill_threshold`` or for a query that retrieved a near-duplicate strategy (the
bank would merge the new one into it); ``distill_skipped`` says which. The
``strategy_filter`` option screens the strategy before it is stored. Everything
here is contained: the user's answer already exists and never depends on a
strategy being stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore

from langchain_intercascade.budgets import BudgetLedger
from langchain_intercascade.costs import Usage, record_usage
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.inputs import run_namespace
from langchain_intercascade.graph.recording import recorded
from langchain_intercascade.graph.state import InterCascadeState
from langchain_intercascade.graph.steps import Call, Steps, arun, run
from langchain_intercascade.guards import StrategyRejected, ascreen
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
    parse_strategy,
)


def _read_reply(reply: Any, parsed: Any = None) -> tuple[Usage, Strategy | str]:
    """A distillation reply's usage, and its strategy (structured) or text to parse.

    Args:
        reply: The reply: a message, or ``include_raw=True``'s dict.
        parsed: What the strategy reader made of a message reply, if anything.
    """
    if isinstance(reply, dict):  # with_structured_output(include_raw=True)
        raw = reply.get("raw") if isinstance(reply.get("raw"), AIMessage) else None
        usage = record_usage({}, "strong", "distill", raw)
        parsed = reply.get("parsed")
        # A tool call that did not validate: try its text.
        return usage, parsed if isinstance(parsed, Strategy) else (raw.text if raw else "")
    usage = record_usage({}, "strong", "distill", reply)
    return usage, parsed if isinstance(parsed, Strategy) else reply.text


def skipped(
    context: CascadeContext,
    answer: str,
    strong_confidence: float | None,
    strategies: Sequence[RetrievedStrategy],
) -> dict[str, Any] | None:
    """The update for a strong answer not worth a distillation call, else None.

    Args:
        context: The cascade's parts.
        answer: The strong answer's text.
        strong_confidence: The strong judge's confidence, if it judged.
        strategies: The strategies the turn retrieved.
    """
    # A tool-calling strong reply has no solution text to learn a method from.
    if not answer.strip():
        return {}
    threshold = context.options.distill_threshold
    if threshold is not None and (strong_confidence or 0.0) < threshold:
        return {"distill_skipped": "untrusted"}
    assert context.bank is not None
    dedup = context.bank.dedup_threshold
    # The query is the new strategy's key (when kept): a retrieved key this close
    # to it means the bank would merge the new strategy.
    if context.options.store_source_query and dedup is not None:
        if any(s.score >= dedup for s in strategies):
            return {"distill_skipped": "near_duplicate"}
    return None


def distill_prompt(prompts: CascadePrompts, query: str, answer: str) -> list[BaseMessage]:
    """The distillation prompt for a question and its strong answer."""
    value = prompts.distill.invoke({"question": query, "solution": answer})
    # After the task's constant system message, as in the answer prompts, so the
    # strong model's prompt cache keeps it across answer and distillation.
    return prompts.with_task(value.to_messages())


def screened(context: CascadeContext, strategy: Strategy) -> Steps[None]:
    """Screen a distilled strategy with the ``strategy_filter`` option.

    Under ``ainvoke`` the filter is awaited (``guards.ascreen``), so a screening
    model call does not block the event loop.

    Raises:
        StrategyRejected: If the filter rejects the strategy.
    """
    screen = context.options.strategy_filter
    if screen is not None:
        reason = yield Call(screen, partial(ascreen, screen), strategy)
        if reason is not None:
            raise StrategyRejected(reason)


def strategy_record(
    context: CascadeContext, strategy: Strategy, namespace: str, query: str
) -> StrategyRecord:
    """The record to store for a distilled strategy that the strategy filter passed."""
    return StrategyRecord.create(
        strategy,
        namespace=namespace,
        source_query=query if context.options.store_source_query else None,
        model=context.strong_name,
    )


def distilled_reply(
    context: CascadeContext, prompt: list[BaseMessage], config: RunnableConfig
) -> Steps[tuple[Usage, Strategy | str]]:
    """Ask for the strategy: structured output where it works, else the text to parse."""
    if context.distiller is not None:
        try:
            reply = yield Call(
                context.call, context.acall, "distill", context.distiller, prompt, config
            )
        except Exception as exc:  # e.g. a server that refuses response formats or tools
            contained("distill_strategy (structured output)", exc)
        else:
            reader, parsed = context.strategy_reader, None
            if reader is not None and not isinstance(reply, dict):
                # A tool call that did not validate, a refusal: the text is tried.
                with suppress(Exception):
                    parsed = yield Call(reader.invoke, reader.ainvoke, reply, config)
            return _read_reply(reply, parsed)
    reply = yield Call(context.call, context.acall, "distill", context.strong, prompt, config)
    return _read_reply(reply)


def stored(
    context: CascadeContext,
    *,
    query: str,
    answer: str,
    strategy_text: str | None,
    namespace: str,
    config: RunnableConfig,
) -> Steps[dict[str, Any]]:
    """Distill a strategy from ``answer`` to ``query`` and store it; failures go to ``errors``.

    Args:
        context: The cascade's parts (with a bank).
        query: The question, the new strategy's key.
        answer: The strong answer to learn from.
        strategy_text: A joint strong reply's strategy block (``joint`` mode).
        namespace: The bank namespace to store in.
        config: The run's config.
    """
    usage: Usage = {}
    bank = context.bank
    assert bank is not None
    try:
        if context.options.distill_mode == "joint":
            if not strategy_text:
                raise ValueError("the strong reply had no <strategy> block")
            strategy = parse_strategy(strategy_text)
        else:
            prompt = distill_prompt(context.options.prompts, query, answer)
            usage, content = yield from distilled_reply(context, prompt, config)
            strategy = content if isinstance(content, Strategy) else parse_strategy(content)
        yield from screened(context, strategy)
        record = strategy_record(context, strategy, namespace, query)
        # A merge into a near-duplicate is screened with the same filter.
        kept = yield Call(
            bank.add, bank.aadd, record, strategy_filter=context.options.strategy_filter
        )
    except Exception as exc:  # the user's answer stands without a strategy
        return {"usage": usage, "errors": [contained("distill_strategy", exc)]}
    # The stored record may be another user's that this one merged into.
    return {"usage": usage, "new_strategy": kept.without_source_query()}


def distillation(
    context: CascadeContext,
    *,
    query: str,
    answer: str,
    strategy_text: str | None,
    strong_confidence: float | None,
    strategies: Sequence[RetrievedStrategy],
    namespace: str,
    config: RunnableConfig,
    then: Callable[[dict[str, Any]], Steps[dict[str, Any]]] | None = None,
) -> Steps[dict[str, Any]]:
    """Distill and store a strategy (:func:`stored`), unless :func:`skipped`; or queue it.

    With ``distill_in_background`` the distillation runs on a worker and the
    update is empty: the answer does not wait for it. ``then`` steps through
    the distillation's update wherever it is made (on the worker too), and
    returns it, changed or not: the graph records the turn there.
    """
    skip = skipped(context, answer, strong_confidence, strategies)
    if skip is not None:
        return (yield from then(skip)) if then is not None else skip
    distill = partial(
        stored,
        context,
        query=query,
        answer=answer,
        strategy_text=strategy_text,
        namespace=namespace,
        config=config,
    )

    def work() -> Steps[dict[str, Any]]:
        update = yield from distill()
        return (yield from then(update)) if then is not None else update

    if context.background is not None:  # a worker thread outlives the event loop
        context.background.submit(lambda: run(work()))
        return {}
    return (yield from work())


def charged(
    ledger: BudgetLedger | None, tenant: str, update: dict[str, Any]
) -> Steps[dict[str, Any]]:
    """Charge a distillation's strong tokens to the tenant's budget; a failure goes to ``errors``.

    Args:
        ledger: The strong-call budget's ledger (None: no budget).
        tenant: The tenant the strong answer was reserved for.
        update: The distillation's update.
    """
    if ledger is None or not update.get("usage"):
        return update
    try:
        yield Call(ledger.charge, ledger.acharge, tenant, update["usage"])
    except Exception as exc:  # the strategy stands; the budget misses its cost
        return {**update, "errors": [*update.get("errors", []), contained("budget", exc)]}
    return update


class DistillStrategy:
    """Distills the strong answer into a strategy and adds it to the bank."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def steps(
        self, state: InterCascadeState, config: RunnableConfig, store: BaseStore | None = None
    ) -> Steps[dict[str, Any]]:
        """Distill and store a strategy (or queue it), then record the turn (``record_to``).

        The distillation's strong tokens are charged to the strong-call budget, kept in
        the budget's own store, else ``store`` (the run's), else the bank's.
        """
        namespace = run_namespace(config)
        ledger = self.context.budget_ledger(store)
        # The last message is the strong answer this node distills.
        record = partial(
            recorded,
            self.context,
            conversation=state.get("messages", [])[:-1],
            turn=state,
            tenant=namespace,
        )

        def then(update: dict[str, Any]) -> Steps[dict[str, Any]]:
            update = yield from charged(ledger, namespace, update)
            return (yield from record(update=update))

        return distillation(
            self.context,
            query=state.get("query", ""),
            answer=state.get("answer", ""),
            strategy_text=state.get("strong_strategy_text"),
            strong_confidence=state.get("strong_confidence"),
            strategies=state.get("strategies") or [],
            namespace=namespace,
            config=config,
            then=then,
        )

    def __call__(
        self, state: InterCascadeState, config: RunnableConfig, runtime: Runtime | None = None
    ) -> dict[str, Any]:
        """Distill and store a strategy (or queue it); failures go to ``errors``."""
        return run(self.steps(state, config, runtime.store if runtime is not None else None))

    async def acall(
        self, state: InterCascadeState, config: RunnableConfig, runtime: Runtime | None = None
    ) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        return await arun(self.steps(state, config, runtime.store if runtime is not None else None))
