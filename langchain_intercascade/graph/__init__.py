"""The Inter-Cascade as a LangGraph state machine, one module per node.

Module map:

- ``state``: the input, state and output schemas; :class:`CascadeTurn`, the typed
  reader of a finished turn; ``pick_message`` / ``pick_answer``.
- ``inputs``: :func:`coerce_input` (what the cascade accepts, and what it rejects)
  and :func:`run_namespace` (the bank namespace of a run).
- ``context``: :class:`CascadeContext`, the models, bank, judges and options the
  nodes share.
- ``retrieve_strategy``, ``weak_answer``, ``confidence_judge``, ``strong_answer``,
  ``distill_strategy``: the five nodes, in the order a turn runs them.
- ``factory``: :func:`build_intercascade_graph` and :func:`create_intercascade`,
  which wire the nodes and edges; :class:`InterCascadeGraph`, the compiled graph.

One turn: ``retrieve_strategy`` finds the ``k`` strategies most similar to the
last user turn; ``weak_answer`` asks the weak model with them as hints;
``confidence_judge`` scores the weak answer and accepts it (END) or defers to
``strong_answer``; ``distill_strategy`` turns the strong answer into a strategy
for the bank. Every decision is a state update, so streams and traces show it.
"""

from langchain_intercascade.graph.factory import (
    InterCascadeGraph,
    build_intercascade_graph,
    create_intercascade,
)
from langchain_intercascade.graph.inputs import NAMESPACE_KEY, coerce_input, run_namespace
from langchain_intercascade.graph.state import (
    CascadeTurn,
    InterCascadeInput,
    InterCascadeOutput,
    InterCascadeState,
    Route,
    pick_answer,
    pick_message,
)

__all__ = [
    "NAMESPACE_KEY",
    "CascadeTurn",
    "InterCascadeGraph",
    "InterCascadeInput",
    "InterCascadeOutput",
    "InterCascadeState",
    "Route",
    "build_intercascade_graph",
    "coerce_input",
    "create_intercascade",
    "pick_answer",
    "pick_message",
    "run_namespace",
]
