"""Interactive LLM cascades for LangChain and LangGraph.

A cheap weak model answers first; a confidence judge accepts its answer or
defers to a strong model, whose solution is distilled into a reusable strategy
that later helps the weak model (Inter-Cascade, arXiv 2509.22984).
"""

from langchain_intercascade.bank import (
    DEFAULT_NAMESPACE,
    BankStats,
    DedupPolicy,
    SearchType,
    StrategyBank,
    StrategyRetriever,
)
from langchain_intercascade.calibration import (
    CollectedConfidences,
    OnlineRecalibrator,
    ThresholdCalibration,
    acollect_confidences,
    calibrate_threshold,
    collect_confidences,
    threshold_for_deferral_rate,
)
from langchain_intercascade.callbacks import CascadeCostTracker, RouteTotals, track_cascade_costs
from langchain_intercascade.chat_model import ChatInterCascade, cascade_metadata
from langchain_intercascade.costs import Usage, total_usage
from langchain_intercascade.evaluation import EvaluationConfig, EvaluationResult, run_evaluation
from langchain_intercascade.graph import (
    NAMESPACE_KEY,
    InterCascadeGraph,
    InterCascadeState,
    build_intercascade_graph,
    coerce_input,
    create_intercascade,
    last_user_turn,
    pick_answer,
    pick_message,
    run_namespace,
)
from langchain_intercascade.judges import (
    AutoJudge,
    BaseJudge,
    Judgement,
    LogisticJudge,
    LogprobJudge,
    MissingLogprobsError,
    SelfConsistencyJudge,
    VerbalizedJudge,
    VerifierJudge,
    as_judge,
)
from langchain_intercascade.prompts import CascadePrompts
from langchain_intercascade.strategies import (
    RetrievedStrategy,
    Strategy,
    StrategyRecord,
    content_id,
    parse_strategy,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_NAMESPACE",
    "NAMESPACE_KEY",
    "AutoJudge",
    "BankStats",
    "BaseJudge",
    "CascadeCostTracker",
    "CascadePrompts",
    "ChatInterCascade",
    "CollectedConfidences",
    "DedupPolicy",
    "EvaluationConfig",
    "EvaluationResult",
    "InterCascadeGraph",
    "InterCascadeState",
    "Judgement",
    "LogisticJudge",
    "LogprobJudge",
    "MissingLogprobsError",
    "OnlineRecalibrator",
    "RetrievedStrategy",
    "RouteTotals",
    "SearchType",
    "SelfConsistencyJudge",
    "Strategy",
    "StrategyBank",
    "StrategyRecord",
    "StrategyRetriever",
    "ThresholdCalibration",
    "Usage",
    "VerbalizedJudge",
    "VerifierJudge",
    "__version__",
    "acollect_confidences",
    "as_judge",
    "build_intercascade_graph",
    "calibrate_threshold",
    "cascade_metadata",
    "coerce_input",
    "collect_confidences",
    "content_id",
    "create_intercascade",
    "last_user_turn",
    "parse_strategy",
    "pick_answer",
    "pick_message",
    "run_evaluation",
    "run_namespace",
    "threshold_for_deferral_rate",
    "total_usage",
    "track_cascade_costs",
]
