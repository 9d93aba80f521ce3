"""Metrics from records: accuracy, cost, bootstrap intervals, rolling series, judge quality."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field
from scipy.stats import rankdata

from langchain_intercascade.evaluation.records import (
    ConfigName,
    EvaluationConfig,
    QueryRecord,
    TokenCounts,
)


class Interval(BaseModel):
    """An estimate with a bootstrap confidence interval."""

    estimate: float
    low: float
    high: float


class ConfigMetrics(BaseModel):
    """One configuration's metrics over the whole stream.

    Attributes:
        n: Questions answered.
        system_accuracy: Fraction of final answers that are right, with its interval.
        weak_accuracy: The weak model's accuracy over all queries, accepted or not.
        weak_accuracy_with_strategies: ... on queries where it saw strategies.
        n_with_strategies: How many such queries.
        weak_accuracy_without_strategies: ... on the others.
        strong_call_rate: Fraction of queries the strong model answered.
        strong_calls: How many.
        tokens: Tokens per model and role, summed.
        fees: The summed fee.
        fee_per_query: The mean fee.
        latency_mean_s: Mean seconds of model calls per query.
        accepted_precision: Among weak answers the judge accepted, the fraction right.
        bank_size: Strategies in the bank at the end.
        distillations_skipped: Strong answers not distilled, by reason.
        errors: Contained failures, summed.
    """

    n: int
    system_accuracy: Interval
    weak_accuracy: float | None
    weak_accuracy_with_strategies: float | None
    n_with_strategies: int
    weak_accuracy_without_strategies: float | None
    strong_call_rate: float
    strong_calls: int
    tokens: TokenCounts
    fees: float
    fee_per_query: float
    latency_mean_s: float
    accepted_precision: float | None
    bank_size: int
    distillations_skipped: dict[str, int] = Field(default_factory=dict)
    errors: int


class Difference(BaseModel):
    """A paired difference ``a - b`` of one metric, over the questions both ran.

    Attributes:
        a: The first configuration.
        b: The one it is compared with.
        metric: ``system_accuracy``, ``weak_accuracy``, ``strong_call_rate`` or
            ``fee_per_query``.
        n: Questions in the comparison.
        interval: The difference with its bootstrap interval.
    """

    a: ConfigName
    b: ConfigName
    metric: str
    n: int
    interval: Interval


class RollingMetrics(BaseModel):
    """Metrics over stream position: means over the trailing window ending at each position.

    Attributes:
        positions: The stream positions the configuration ran.
        system_accuracy: Rolling system accuracy.
        weak_accuracy: Rolling weak-model accuracy (empty for strong only).
        strong_call_rate: Rolling strong-call rate.
        bank_size: Strategies in the bank after each position.
    """

    positions: list[int]
    system_accuracy: list[float]
    weak_accuracy: list[float]
    strong_call_rate: list[float]
    bank_size: list[int]


class ReliabilityBin(BaseModel):
    """One bin of a reliability diagram."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


class JudgeQuality(BaseModel):
    """How well the judge's confidence separates right from wrong weak answers.

    Attributes:
        n: Judged weak answers (from both cascades).
        auroc: Probability that a right answer gets a higher confidence than a
            wrong one (0.5: no better than chance; None without both classes).
        ece: Expected calibration error over the bins.
        bins: The reliability diagram.
    """

    n: int
    auroc: float | None
    ece: float | None
    bins: list[ReliabilityBin]


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def bootstrap_interval(
    values: Sequence[float], *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The mean of ``values`` with a percentile bootstrap interval.

    For a paired difference pass the per-question differences.

    Args:
        values: One value per question.
        n_resamples: Bootstrap resamples.
        level: The interval's coverage.
        seed: The resampling seed.

    Returns:
        The mean and its interval (all NaN for no values).
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Interval(estimate=math.nan, low=math.nan, high=math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(estimate=float(data.mean()), low=float(low), high=float(high))


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Trailing-window means: element ``i`` averages ``values[max(0, i - window + 1) : i + 1]``.

    Args:
        values: The series.
        window: The window length.

    Returns:
        One mean per element.
    """
    data = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(data)])
    ends = np.arange(1, data.size + 1)
    starts = np.maximum(0, ends - window)
    return [float(x) for x in (sums[ends] - sums[starts]) / (ends - starts)]


def auroc(confidences: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """Area under the ROC curve of confidences against right/wrong labels (ties count half).

    Args:
        confidences: The judge's confidences.
        labels: Whether each answer was right.

    Returns:
        The AUROC, or None unless both classes occur.
    """
    truth = np.asarray(labels, dtype=bool)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(np.asarray(confidences, dtype=float))
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def reliability(
    confidences: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> JudgeQuality:
    """The judge's reliability diagram, expected calibration error and AUROC.

    Args:
        confidences: Confidences in [0, 1].
        labels: Whether each answer was right.
        bins: Equal-width bins over [0, 1].

    Returns:
        The judge's quality figures.
    """
    conf = np.asarray(confidences, dtype=float)
    truth = np.asarray(labels, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # A confidence of exactly 1.0 belongs to the last bin.
    index = np.clip(np.digitize(conf, edges[1:-1], right=False), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        mean_conf = float(conf[mask].mean()) if count else None
        accuracy = float(truth[mask].mean()) if count else None
        if count and mean_conf is not None and accuracy is not None:
            ece += count / conf.size * abs(mean_conf - accuracy)
        rows.append(
            ReliabilityBin(
                low=float(edges[b]),
                high=float(edges[b + 1]),
                count=count,
                mean_confidence=mean_conf,
                accuracy=accuracy,
            )
        )
    return JudgeQuality(
        n=int(conf.size),
        auroc=auroc(conf, truth.astype(bool)),
        ece=ece if conf.size else None,
        bins=rows,
    )


def _sum_tokens(records: Sequence[QueryRecord]) -> TokenCounts:
    total: TokenCounts = {}
    for record in records:
        for model, roles in record.tokens.items():
            for role, counts in roles.items():
                slot = total.setdefault(model, {}).setdefault(
                    role, {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
                )
                for key in slot:
                    slot[key] += counts.get(key, 0)
    return total


def config_metrics(records: Sequence[QueryRecord], config: EvaluationConfig) -> ConfigMetrics:
    """Aggregate one configuration's records.

    Args:
        records: The configuration's records, in stream order.
        config: For the bootstrap settings.

    Returns:
        The metrics.
    """
    weak = [r for r in records if r.weak_correct is not None]
    shown = [r for r in weak if r.strategies_shown > 0]
    hidden = [r for r in weak if r.strategies_shown == 0]
    accepted = [r for r in weak if r.route == "weak" and r.confidence is not None]
    strong_calls = sum(r.route == "strong" for r in records)
    fees = float(sum(r.fee for r in records))
    return ConfigMetrics(
        n=len(records),
        system_accuracy=bootstrap_interval(
            [r.correct for r in records],
            n_resamples=config.n_bootstrap,
            level=config.confidence_level,
            seed=config.seed,
        ),
        weak_accuracy=_mean([bool(r.weak_correct) for r in weak]),
        weak_accuracy_with_strategies=_mean([bool(r.weak_correct) for r in shown]),
        n_with_strategies=len(shown),
        weak_accuracy_without_strategies=_mean([bool(r.weak_correct) for r in hidden]),
        strong_call_rate=strong_calls / len(records) if records else 0.0,
        strong_calls=strong_calls,
        tokens=_sum_tokens(records),
        fees=fees,
        fee_per_query=fees / len(records) if records else 0.0,
        latency_mean_s=_mean([r.latency_s for r in records]) or 0.0,
        accepted_precision=_mean([bool(r.weak_correct) for r in accepted]),
        bank_size=records[-1].bank_size if records else 0,
        distillations_skipped=dict(
            Counter(r.distill_skipped for r in records if r.distill_skipped)
        ),
        errors=sum(len(r.errors) for r in records),
    )


def _metric_value(record: QueryRecord, metric: str) -> float | None:
    if metric == "system_accuracy":
        return float(record.correct)
    if metric == "weak_accuracy":
        return None if record.weak_correct is None else float(record.weak_correct)
    if metric == "strong_call_rate":
        return float(record.route == "strong")
    return record.fee


_PAIRED_METRICS = ("system_accuracy", "weak_accuracy", "strong_call_rate", "fee_per_query")
_COMPARISONS: tuple[tuple[ConfigName, ConfigName], ...] = (
    ("intercascade", "cascade"),
    ("intercascade", "weak"),
    ("cascade", "weak"),
    ("intercascade", "strong"),
    ("cascade", "strong"),
)


def paired_differences(
    records: dict[ConfigName, list[QueryRecord]], config: EvaluationConfig
) -> list[Difference]:
    """Bootstrap the differences between configurations, paired by stream position.

    Args:
        records: Each configuration's records.
        config: For the bootstrap settings.

    Returns:
        One difference per comparison and metric that both configurations have.
    """
    out = []
    for a, b in _COMPARISONS:
        if a not in records or b not in records:
            continue
        by_position = {r.position: r for r in records[b]}
        pairs = [(r, by_position[r.position]) for r in records[a] if r.position in by_position]
        for metric in _PAIRED_METRICS:
            diffs = [
                va - vb
                for ra, rb in pairs
                if (va := _metric_value(ra, metric)) is not None
                and (vb := _metric_value(rb, metric)) is not None
            ]
            if diffs:
                interval = bootstrap_interval(
                    diffs,
                    n_resamples=config.n_bootstrap,
                    level=config.confidence_level,
                    seed=config.seed,
                )
                out.append(Difference(a=a, b=b, metric=metric, n=len(diffs), interval=interval))
    return out


def rolling_metrics(records: Sequence[QueryRecord], window: int) -> RollingMetrics:
    """One configuration's metrics over stream position.

    Args:
        records: The configuration's records, in stream order.
        window: The trailing window length.

    Returns:
        The rolling series.
    """
    return RollingMetrics(
        positions=[r.position for r in records],
        system_accuracy=rolling_mean([r.correct for r in records], window),
        weak_accuracy=rolling_mean(
            [bool(r.weak_correct) for r in records if r.weak_correct is not None], window
        ),
        strong_call_rate=rolling_mean([r.route == "strong" for r in records], window),
        bank_size=[r.bank_size for r in records],
    )
