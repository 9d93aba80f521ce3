"""The factories: wire the five nodes and their edges into a LangGraph graph.

``retrieve_strategy -> weak_answer -> confidence_judge -> END | strong_answer``,
then ``strong_answer -> distill_strategy -> END`` when there is a bank to learn
into (``strong_answer -> END`` otherwise).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer
from typing_extensions import override

from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.bank.store_backend import has_semantic_index
from langchain_intercascade.graph.confidence_judge import ConfidenceJudge, route_after_judge
from langchain_intercascade.graph.context import CascadeContext
from langchain_intercascade.graph.distill_strategy import DistillStrategy
from langchain_intercascade.graph.inputs import coerce_input
from langchain_intercascade.graph.retrieve_strategy import RetrieveStrategy
from langchain_intercascade.graph.state import (
    InterCascadeInput,
    InterCascadeOutput,
    InterCascadeState,
    RouteState,
)
from langchain_intercascade.graph.strong_answer import StrongAnswer, route_after_strong
from langchain_intercascade.graph.weak_answer import WeakAnswer
from langchain_intercascade.model_types import ChatModel
from langchain_intercascade.options import CascadeOptions, resolve_options


class InterCascadeGraph(CompiledStateGraph):  # type: ignore[type-arg]
    """A compiled Inter-Cascade graph that also takes strings, messages and prompts.

    It is a ``CompiledStateGraph`` in every other respect (checkpointer, store,
    subgraph use, LangGraph server). Input goes through :func:`coerce_input` in
    ``stream``/``astream``, which ``invoke``, ``batch`` and the event streams all
    run through.

    Attributes:
        context: The models, bank, judges and options its nodes share.
    """

    def __init__(self, *, context: CascadeContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context

    @property
    def options(self) -> CascadeOptions:
        """The cascade's options."""
        return self.context.options

    def wait_for_distillations(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait for distillations still running after their answers (``distill_in_background``).

        Args:
            timeout: Seconds to wait at most; None waits for all.

        Returns:
            The updates of the distillations finished since the last call (each with
            ``usage``, and ``new_strategy`` or ``errors``), the latest ``distill_kept``
            of them; empty when distillation runs in the turn or ``on_distilled``
            takes them.
        """
        background = self.context.background
        return background.wait(timeout) if background is not None else []

    @property
    def dropped_distillations(self) -> int:
        """Finished background distillations dropped unread.

        Past ``distill_kept``, or refused by ``on_distilled``; their strategies were
        stored all the same.
        """
        background = self.context.background
        return background.dropped if background is not None else 0

    @override
    def stream(  # noqa: A002
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        value = coerce_input(input, max_chars=self.options.max_input_chars)
        return super().stream(value, config, **kwargs)

    @override
    def astream(  # noqa: A002
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        value = coerce_input(input, max_chars=self.options.max_input_chars)
        return super().astream(value, config, **kwargs)


def _context(
    weak: ChatModel,
    strong: ChatModel,
    bank: StrategyBank | None,
    options: CascadeOptions | None,
    values: dict[str, Any],
) -> CascadeContext:
    return CascadeContext(
        weak=weak, strong=strong, bank=bank, options=resolve_options(options, values)
    )


def _route(choose: Callable[[RouteState], str]) -> RunnableCallable:
    """An edge's routing function, run inline by ``ainvoke`` too.

    LangGraph runs a plain function's async path in a thread; the type of its
    argument makes LangGraph read the route alone, not the whole state.
    """

    async def achoose(state: RouteState) -> str:
        return choose(state)

    return RunnableCallable(choose, achoose, name=choose.__name__, trace=False)


def _wire(context: CascadeContext) -> StateGraph:  # type: ignore[type-arg]
    graph = StateGraph(
        InterCascadeState, input_schema=InterCascadeInput, output_schema=InterCascadeOutput
    )
    for name, node in (
        ("retrieve_strategy", RetrieveStrategy(context)),
        ("weak_answer", WeakAnswer(context)),
        ("confidence_judge", ConfidenceJudge(context)),
        ("strong_answer", StrongAnswer(context)),
        ("distill_strategy", DistillStrategy(context)),
    ):
        if name == "distill_strategy" and not context.distilling:
            continue
        # LangGraph's own node wrapper: one traced run per node (a RunnableLambda adds a
        # second), and a native async path (a plain function would run in a thread).
        graph.add_node(name, RunnableCallable(node.__call__, node.acall, name=name, trace=False))
    graph.add_edge(START, "retrieve_strategy")
    graph.add_edge("retrieve_strategy", "weak_answer")
    graph.add_edge("weak_answer", "confidence_judge")
    after_judge = _route(route_after_judge)
    graph.add_conditional_edges("confidence_judge", after_judge, ["strong_answer", END])
    if context.distilling:
        after_strong = _route(route_after_strong)
        graph.add_conditional_edges("strong_answer", after_strong, ["distill_strategy", END])
        graph.add_edge("distill_strategy", END)
    else:
        graph.add_edge("strong_answer", END)
    return graph


def build_intercascade_graph(
    weak: ChatModel,
    strong: ChatModel,
    *,
    bank: StrategyBank | None = None,
    options: CascadeOptions | None = None,
    **option_values: Any,
) -> StateGraph:  # type: ignore[type-arg]
    """Build the uncompiled Inter-Cascade ``StateGraph``, for users who extend it.

    Args:
        weak: The cheap chat model that answers first (a bound model such as
            ``model.bind(logprobs=True)`` works too).
        strong: The expensive chat model that answers deferred queries.
        bank: Where strategies are retrieved from and stored; None runs a
            standard cascade (no strategies, no distillation).
        options: The cascade's options (see :class:`CascadeOptions`).
        **option_values: Fields of :class:`CascadeOptions`, overriding ``options``.

    Returns:
        The ``StateGraph`` with nodes ``retrieve_strategy``, ``weak_answer``,
        ``confidence_judge``, ``strong_answer`` and (with a bank)
        ``distill_strategy``.

    Raises:
        TypeError: If a model is not a chat model or the bank not a StrategyBank.
        pydantic.ValidationError: If an option is invalid (a ``ValueError``
            naming the option).
    """
    return _wire(_context(weak, strong, bank, options, option_values))


def create_intercascade(
    weak: ChatModel,
    strong: ChatModel,
    *,
    bank: StrategyBank | None = None,
    options: CascadeOptions | None = None,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    name: str = "intercascade",
    **option_values: Any,
) -> InterCascadeGraph:
    """Create a compiled Inter-Cascade graph, ready to invoke, stream or serve.

    Args:
        weak: The cheap chat model that answers first.
        strong: The expensive chat model that answers deferred queries.
        bank: The strategy bank. None: with a ``store`` that has a semantic
            index, ``StrategyBank.from_store(store)``, which learns into the
            store; otherwise a standard cascade.
        options: The cascade's options (see :class:`CascadeOptions`).
        checkpointer: A LangGraph checkpointer, for multi-turn threads.
        store: A LangGraph store, passed to the compiled graph (and holding the
            bank when ``bank`` is None and the store has a semantic index).
        name: The graph's name in traces and when used as a subgraph.
        **option_values: Fields of :class:`CascadeOptions` (``threshold``, ``k``,
            ``judge``, ...), overriding ``options``.

    Returns:
        An :class:`InterCascadeGraph` (a ``CompiledStateGraph``) whose output is an
        :class:`InterCascadeOutput`; :meth:`CascadeTurn.from_state` reads it.

    Raises:
        TypeError: If a model is not a chat model or the bank not a StrategyBank.
        pydantic.ValidationError: If an option is invalid (a ``ValueError``
            naming the option).

    Example:
        ```python
        from langchain_intercascade import StrategyBank, create_intercascade
        from langchain_intercascade.testing import fake_models

        weak, strong, embeddings = fake_models()
        cascade = create_intercascade(weak, strong, bank=StrategyBank(embeddings))
        first = cascade.invoke("Sam has 3 boxes with 4 pens in each box. How many pens?")
        again = cascade.invoke("Ana has 5 boxes with 6 pens in each box. How many pens?")
        assert (first["route"], again["route"]) == ("strong", "weak")
        assert again["answer"] == "The total is 30."
        ```
    """
    if bank is None and store is not None and has_semantic_index(store):
        bank = StrategyBank.from_store(store)
    context = _context(weak, strong, bank, options, option_values)
    compiled = _wire(context).compile(checkpointer=checkpointer, store=store, name=name)
    # The same compiled graph, built as the subclass that coerces input (as copy() does).
    return InterCascadeGraph(context=context, **vars(compiled))
