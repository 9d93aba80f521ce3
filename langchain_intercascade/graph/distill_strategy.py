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

from contextlib import suppress
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_intercascade.costs import Usage, record_usage
from langchain_intercascade.graph.context import CascadeContext, contained
from langchain_intercascade.graph.inputs import run_namespace
from langchain_intercascade.graph.state import InterCascadeState
from langchain_intercascade.guards import StrategyRejected
from langchain_intercascade.strategies import Strategy, StrategyRecord, parse_strategy


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


def _strategy(content: Strategy | str) -> Strategy:
    return content if isinstance(content, Strategy) else parse_strategy(content)


class DistillStrategy:
    """Distills the strong answer into a strategy and adds it to the bank."""

    def __init__(self, context: CascadeContext) -> None:
        self.context = context

    def _prompt(self, state: InterCascadeState) -> list[BaseMessage]:
        prompts = self.context.options.prompts
        value = prompts.distill.invoke(
            {"question": state.get("query", ""), "solution": state.get("answer", "")}
        )
        # After the task's constant system message, as in the answer prompts, so the
        # strong model's prompt cache keeps it across answer and distillation.
        return prompts.with_task(value.to_messages())

    def _record(
        self, state: InterCascadeState, config: RunnableConfig, strategy: Strategy
    ) -> StrategyRecord:
        screen = self.context.options.strategy_filter
        reason = screen(strategy) if screen is not None else None
        if reason is not None:
            raise StrategyRejected(reason)
        return StrategyRecord.create(
            strategy,
            namespace=run_namespace(config),
            source_query=state.get("query") if self.context.options.store_source_query else None,
            model=self.context.strong_name,
        )

    def _skip(self, state: InterCascadeState) -> dict[str, Any] | None:
        """The update for a strong answer not worth a distillation call, else None."""
        # A tool-calling strong reply has no solution text to learn a method from.
        if not state.get("answer", "").strip():
            return {}
        threshold = self.context.options.distill_threshold
        if threshold is not None and (state.get("strong_confidence") or 0.0) < threshold:
            return {"distill_skipped": "untrusted"}
        assert self.context.bank is not None
        dedup = self.context.bank.dedup_threshold
        # The query is the new strategy's key (when kept): a retrieved key this close
        # to it means the bank would merge the new strategy.
        keyed_by_query = self.context.options.store_source_query
        if keyed_by_query and dedup is not None:
            if any(s.score >= dedup for s in state.get("strategies", [])):
                return {"distill_skipped": "near_duplicate"}
        return None

    def _joint_strategy(self, state: InterCascadeState) -> Strategy:
        text = state.get("strong_strategy_text")
        if not text:
            raise ValueError("the strong reply had no <strategy> block")
        return parse_strategy(text)

    def __call__(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Distill and store a strategy (or queue it); failures go to ``errors``."""
        skip = self._skip(state)
        if skip is not None:
            return skip
        if self.context.background is not None:
            self.context.background.submit(self.distill, dict(state), config)
            return {}
        return self.distill(state, config)

    def distill(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Distill and store a strategy now; failures go to ``errors``."""
        usage: Usage = {}
        try:
            if self.context.options.distill_mode == "joint":
                strategy = self._joint_strategy(state)
            else:
                usage, content = self._distill(state, config)
                strategy = _strategy(content)
            record = self._record(state, config, strategy)
            assert self.context.bank is not None
            stored = self.context.bank.add(record)
        except Exception as exc:  # the user's answer stands without a strategy
            return {"usage": usage, "errors": [contained("distill_strategy", exc)]}
        # The stored record may be another user's that this one merged into.
        return {"usage": usage, "new_strategy": stored.without_source_query()}

    async def acall(self, state: InterCascadeState, config: RunnableConfig) -> dict[str, Any]:
        """Async :meth:`__call__`."""
        skip = self._skip(state)
        if skip is not None:
            return skip
        if self.context.background is not None:  # a worker thread outlives the event loop
            self.context.background.submit(self.distill, dict(state), config)
            return {}
        usage: Usage = {}
        try:
            if self.context.options.distill_mode == "joint":
                strategy = self._joint_strategy(state)
            else:
                usage, content = await self._adistill(state, config)
                strategy = _strategy(content)
            record = self._record(state, config, strategy)
            assert self.context.bank is not None
            stored = await self.context.bank.aadd(record)
        except Exception as exc:
            return {"usage": usage, "errors": [contained("distill_strategy", exc)]}
        return {"usage": usage, "new_strategy": stored.without_source_query()}

    def _distill(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> tuple[Usage, Strategy | str]:
        prompt, context = self._prompt(state), self.context
        if context.distiller is not None:
            try:
                reply = context.call("distill", context.distiller, prompt, config)
            except Exception as exc:  # e.g. a server that refuses response formats or tools
                contained("distill_strategy (structured output)", exc)
            else:
                reader, parsed = context.strategy_reader, None
                if reader is not None and not isinstance(reply, dict):
                    # A tool call that did not validate, a refusal: the text is tried.
                    with suppress(Exception):
                        parsed = reader.invoke(reply, config)
                return _read_reply(reply, parsed)
        return _read_reply(context.call("distill", context.strong, prompt, config))

    async def _adistill(
        self, state: InterCascadeState, config: RunnableConfig
    ) -> tuple[Usage, Strategy | str]:
        prompt, context = self._prompt(state), self.context
        if context.distiller is not None:
            try:
                reply = await context.acall("distill", context.distiller, prompt, config)
            except Exception as exc:
                contained("distill_strategy (structured output)", exc)
            else:
                reader, parsed = context.strategy_reader, None
                if reader is not None and not isinstance(reply, dict):
                    with suppress(Exception):
                        parsed = await reader.ainvoke(reply, config)
                return _read_reply(reply, parsed)
        return _read_reply(await context.acall("distill", context.strong, prompt, config))
