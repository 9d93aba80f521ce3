"""Evaluate a cascade on your data: what it saves and what it costs in quality.

:func:`run_evaluation` runs weak only, strong only, a standard cascade and
Inter-Cascade on one stream of questions and measures them; every public name
below is importable from here. Its modules, in the order they build on each other:

- ``data``: :class:`Example`, the JSONL / GSM8K / multiple-choice / labelled loaders and the
  stream's seeded order.
- ``timing``: :class:`CallTimes`, model-call durations that a cached rerun reports
  as they were when first made.
- ``records``: the configurations and their labels, :class:`EvaluationConfig`,
  :class:`QueryRecord` and :func:`load_records`.
- ``metrics``: accuracy, cost, bootstrap intervals, rolling series and the judge's
  reliability, computed from records.
- ``report``: :class:`EvaluationResult` and what it writes: JSON, markdown tables,
  PNG plots (with the ``eval`` extra's matplotlib).
- ``confidences``: :func:`collect_confidences` and :func:`acollect_confidences`,
  which run a compiled cascade's weak model and judge over labelled examples
  (the calibration set), and :class:`CollectedConfidences`, what they return.
- ``runner``: :func:`run_evaluation`, the call cache and threshold calibration on
  held-out questions.
"""

from langchain_intercascade.evaluation.confidences import (
    CollectedConfidences,
    acollect_confidences,
    collect_confidences,
)
from langchain_intercascade.evaluation.data import (
    DataFormat,
    Example,
    format_choices,
    load_examples,
    load_gsm8k,
    load_jsonl,
    load_labelled,
    load_multiple_choice,
    order_examples,
)
from langchain_intercascade.evaluation.metrics import (
    ConfigMetrics,
    Difference,
    Interval,
    JudgeQuality,
    ReliabilityBin,
    RollingMetrics,
    auroc,
    bootstrap_interval,
    config_metrics,
    paired_differences,
    reliability,
    rolling_mean,
    rolling_metrics,
)
from langchain_intercascade.evaluation.records import (
    CONFIGURATIONS,
    DEFAULT_SYSTEM_PROMPT,
    LABELS,
    ConfigName,
    EvaluationConfig,
    QueryRecord,
    TokenCounts,
    load_records,
)
from langchain_intercascade.evaluation.report import EvaluationResult, plot_results
from langchain_intercascade.evaluation.runner import run_evaluation
from langchain_intercascade.evaluation.timing import CallTimes

__all__ = [
    "CONFIGURATIONS",
    "DEFAULT_SYSTEM_PROMPT",
    "LABELS",
    "CallTimes",
    "CollectedConfidences",
    "ConfigMetrics",
    "ConfigName",
    "DataFormat",
    "Difference",
    "EvaluationConfig",
    "EvaluationResult",
    "Example",
    "Interval",
    "JudgeQuality",
    "QueryRecord",
    "ReliabilityBin",
    "RollingMetrics",
    "TokenCounts",
    "acollect_confidences",
    "auroc",
    "bootstrap_interval",
    "collect_confidences",
    "config_metrics",
    "format_choices",
    "load_examples",
    "load_gsm8k",
    "load_jsonl",
    "load_labelled",
    "load_multiple_choice",
    "load_records",
    "order_examples",
    "paired_differences",
    "plot_results",
    "reliability",
    "rolling_mean",
    "rolling_metrics",
    "run_evaluation",
]
