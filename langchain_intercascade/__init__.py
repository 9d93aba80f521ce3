"""Interactive LLM cascades for LangChain and LangGraph.

A cheap weak model answers first; a confidence judge accepts its answer or defers
to a strong model, whose solution is distilled into a reusable strategy that later
helps the weak model (Inter-Cascade, arXiv 2509.22984).

Package map (``ARCHITECTURE.md`` has the data flow of one turn):

- ``options``: :class:`CascadeOptions`, every cascade option in one place.
- ``graph``: the LangGraph state machine, one module per node, and its factories.
- ``chat_model``: :class:`ChatInterCascade`, the cascade as a LangChain chat model.
- ``middleware``: ``InterCascadeMiddleware``, the cascade in a LangChain v1 agent
  (``create_agent``), learning per task (the ``agents`` extra).
- ``bank``: the strategy bank, its backends, persistence and retriever.
- ``strategies``: what a strategy is, and how one is parsed from text.
- ``prompts``: the cascade's own prompts.
- ``judges``: confidence judges (token probability, verbalized, self-consistency,
  verifier, logistic).
- ``calibration``: risk-controlled thresholds (fixed-sequence testing with
  Clopper-Pearson bounds) and online recalibration.
- ``costs`` and ``callbacks``: token accounting, prices and a cost tracker.
- ``answers``: final-answer extraction and grading.
- ``evaluation``: data loaders, metrics, report and the four-configuration runner.
- ``models``: local GGUF chat models and embeddings, and the model download.
- ``settings``, ``server``, ``cli``, ``demo``: configuration from the environment,
  the LangGraph server's graph factory, the ``intercascade`` command and its demo.
- ``guards``: the filter a strategy passes before it is stored (no personal data, no
  keys, no instructions).
- ``testing``: scripted models and embeddings, and the scripted world they share.

Everything public is importable from its module; the names below are the ones
most users need.
"""

from importlib.metadata import PackageNotFoundError, version

from langchain_intercascade.bank import StrategyBank, StrategyRetriever
from langchain_intercascade.calibration import calibrate_threshold
from langchain_intercascade.callbacks import track_cascade_costs
from langchain_intercascade.chat_model import ChatInterCascade
from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation
from langchain_intercascade.graph import (
    CascadeTurn,
    build_intercascade_graph,
    create_intercascade,
    pick_answer,
)
from langchain_intercascade.judges import AutoJudge, BaseJudge, LogprobJudge
from langchain_intercascade.options import CascadeOptions
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import Strategy

try:
    __version__ = version("langchain-intercascade")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "AutoJudge",
    "BaseJudge",
    "CascadeOptions",
    "CascadePrompts",
    "CascadeTurn",
    "ChatInterCascade",
    "EvaluationConfig",
    "LogprobJudge",
    "Strategy",
    "StrategyBank",
    "StrategyRetriever",
    "__version__",
    "build_intercascade_graph",
    "calibrate_threshold",
    "create_intercascade",
    "pick_answer",
    "run_evaluation",
    "track_cascade_costs",
]
