"""Evaluate a cascade on your data: what it saves and what it costs in quality.

:func:`run_evaluation` runs four configurations on the same stream of questions,
in the same order: the weak model alone, the strong model alone, a standard
cascade (same judge and threshold, no strategies) and Inter-Cascade. It grades
every answer, prices the tokens, tracks the metrics over stream position (learning
shows over time) and puts bootstrap confidence intervals on the differences.
:meth:`EvaluationResult.save` writes JSON, a markdown table and PNG plots.

Model calls are cached with LangChain's ``SQLiteCache`` when ``cache_path`` is
set: with deterministic models (temperature 0), a rerun after a crash or a code
change pays only for new prompts, and configurations that send the same prompt
(the weak-only baseline and a cascade's first weak call) pay for it once.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, cast
from uuid import UUID

import numpy as np
import numpy.typing as npt
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.stats import rankdata

from langchain_intercascade.answers import (
    EXTRACTORS,
    AnswerExtractor,
    AnswerKind,
    gsm8k_gold,
    make_grader,
)
from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.calibration import (
    ThresholdCalibration,
    calibrate_threshold,
    collect_confidences,
)
from langchain_intercascade.costs import DEFAULT_PRICES, PriceTable, Usage, record_usage
from langchain_intercascade.graph import InterCascadeGraph, create_intercascade
from langchain_intercascade.judges import BaseJudge
from langchain_intercascade.prompts import CascadePrompts

ConfigName = Literal["weak", "strong", "cascade", "intercascade"]
CONFIGURATIONS: tuple[ConfigName, ...] = ("weak", "strong", "cascade", "intercascade")
"""The four configurations: weak only, strong only, standard cascade, Inter-Cascade."""
DataFormat = Literal["jsonl", "gsm8k", "multiple_choice"]
TokenCounts = dict[str, dict[str, dict[str, int]]]
"""Tokens as ``{model: {role: {"input_tokens", "output_tokens", "total_tokens"}}}``."""

DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem step by step. Show your reasoning briefly, then finish with "
    "a line of the form 'The answer is N.'"
)
"""Makes small models reason before answering (a 1.5B model is right ~5x more often)."""

_LABELS = ("weak only", "strong only", "standard cascade", "Inter-Cascade")
LABELS: dict[ConfigName, str] = dict(zip(CONFIGURATIONS, _LABELS, strict=True))


# -- data ---------------------------------------------------------------------


class Example(BaseModel):
    """One question of an evaluation stream.

    Attributes:
        id: A stable identifier (the line number when the data has none).
        question: The text sent to the models.
        answer: The gold answer (a number, a choice letter or a text).
        metadata: Anything else the data set carries (e.g. a worked solution).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    answer: str
    metadata: dict[str, Any] = Field(default_factory=dict)


def _read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{number}: expected a JSON object per line")
                yield number, row


def _field(row: dict[str, Any], key: str, path: str | Path, number: int) -> Any:
    if key not in row:
        raise ValueError(f"{path}:{number}: missing field {key!r} (has {sorted(row)})")
    return row[key]


def load_jsonl(
    path: str | Path,
    *,
    question_key: str = "question",
    answer_key: str = "answer",
    id_key: str | None = None,
) -> list[Example]:
    """Load question/answer pairs from a JSONL file.

    Args:
        path: One JSON object per line.
        question_key: The field holding the question.
        answer_key: The field holding the gold answer (kept as text).
        id_key: The field holding an id; None numbers the lines.

    Returns:
        The examples, in file order; other fields go to ``metadata``.

    Raises:
        ValueError: If a line is not an object or lacks a field.
    """
    examples = []
    for number, row in _read_jsonl(path):
        question = _field(row, question_key, path, number)
        answer = _field(row, answer_key, path, number)
        ident = str(row[id_key]) if id_key else str(number)
        rest = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        examples.append(Example(id=ident, question=question, answer=str(answer), metadata=rest))
    return examples


def load_gsm8k(path: str | Path) -> list[Example]:
    """Load GSM8K (``question``, and ``answer`` as a worked solution ending in ``#### N``).

    Args:
        path: A GSM8K JSONL file, e.g. ``test.jsonl``.

    Returns:
        The examples; ``answer`` is the canonical number and
        ``metadata["solution"]`` the worked solution.
    """
    examples = []
    for number, row in _read_jsonl(path):
        solution = str(_field(row, "answer", path, number))
        examples.append(
            Example(
                id=f"gsm8k-{number}",
                question=_field(row, "question", path, number),
                answer=gsm8k_gold(solution),
                metadata={"solution": solution},
            )
        )
    return examples


def format_choices(question: str, choices: Sequence[str]) -> str:
    """Render a question with lettered options ("A) ...") and an answer instruction.

    Args:
        question: The question stem.
        choices: The options, in order.

    Returns:
        The text sent to the models.
    """
    options = "\n".join(f"{chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


def load_multiple_choice(
    path: str | Path,
    *,
    question_key: str = "question",
    choices_key: str = "choices",
    answer_key: str = "answer",
) -> list[Example]:
    """Load multiple-choice questions from a JSONL file.

    The gold answer may be a letter (``"C"``), a 0-based index (``2``) or the text
    of the correct option; it is stored as the letter.

    Args:
        path: One JSON object per line.
        question_key: The field holding the question stem.
        choices_key: The field holding the list of options.
        answer_key: The field holding the correct option.

    Returns:
        The examples, with the options rendered into the question.

    Raises:
        ValueError: If a gold answer matches no option.
    """
    examples = []
    for number, row in _read_jsonl(path):
        choices = [str(c) for c in _field(row, choices_key, path, number)]
        gold = _field(row, answer_key, path, number)
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        if isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(choices):
            letter = letters[gold]
        elif isinstance(gold, str) and gold.strip().upper() in letters:
            letter = gold.strip().upper()
        elif isinstance(gold, str) and gold in choices:
            letter = letters[choices.index(gold)]
        else:
            raise ValueError(f"{path}:{number}: answer {gold!r} matches none of {choices}")
        question = format_choices(_field(row, question_key, path, number), choices)
        rest = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        examples.append(Example(id=str(number), question=question, answer=letter, metadata=rest))
    return examples


def load_examples(path: str | Path, data_format: DataFormat = "jsonl") -> list[Example]:
    """Load a data set in one of the supported formats.

    Args:
        path: The JSONL file.
        data_format: ``"jsonl"`` (question/answer), ``"gsm8k"`` or ``"multiple_choice"``.

    Returns:
        The examples, in file order.
    """
    if data_format == "gsm8k":
        return load_gsm8k(path)
    if data_format == "multiple_choice":
        return load_multiple_choice(path)
    return load_jsonl(path)


def order_examples(
    examples: Sequence[Example], *, seed: int = 0, shuffle: bool = True, limit: int | None = None
) -> list[Example]:
    """Fix the stream's order: a seeded shuffle, then the first ``limit``.

    The order of the first ``n`` examples does not depend on ``limit``, so a
    larger rerun extends a smaller one (and reuses its cached calls).

    Args:
        examples: The data set.
        seed: The shuffle's seed.
        shuffle: False keeps the file order.
        limit: Keep at most this many.

    Returns:
        The stream.
    """
    ordered = list(examples)
    if shuffle:
        random.Random(seed).shuffle(ordered)
    return ordered[:limit] if limit is not None else ordered


# -- call timing --------------------------------------------------------------


class CallTimes:
    """Seconds each distinct model call took when it was actually made.

    A cached call returns in microseconds; reporting that as latency would make
    whichever configuration ran a prompt second look free. The ledger keeps the
    first measured duration per (prompt, parameters) and reports it for every
    later identical call. With a ``path`` it persists next to the call cache.

    Args:
        path: A SQLite file to keep the durations in; None keeps them in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS intercascade_call_seconds "
            "(key TEXT PRIMARY KEY, seconds REAL NOT NULL)"
        )
        self._db.commit()

    def seconds(self, key: str, measured: float) -> float:
        """The call's duration: the stored one if the call was made before, else ``measured``."""
        with self._lock:
            row = self._db.execute(
                "SELECT seconds FROM intercascade_call_seconds WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                return float(row[0])
            self._db.execute(
                "INSERT INTO intercascade_call_seconds (key, seconds) VALUES (?, ?)",
                (key, measured),
            )
            self._db.commit()
            return measured

    def close(self) -> None:
        """Close the database."""
        self._db.close()


class _QueryTimer(BaseCallbackHandler):
    """Sums the (ledger) durations of the model calls made for one query."""

    def __init__(self, ledger: CallTimes) -> None:
        self.ledger = ledger
        self.total = 0.0
        self._started: dict[UUID, tuple[str, float]] = {}

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        params = json.dumps(kwargs.get("invocation_params") or {}, sort_keys=True, default=str)
        # Message ids differ between runs; like LangChain's cache, key on content only.
        prompt = dumps([[m.model_copy(update={"id": None}) for m in ms] for ms in messages])
        key = hashlib.sha256(f"{prompt}\x00{params}".encode()).hexdigest()
        self._started[run_id] = (key, time.perf_counter())

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._started.pop(run_id, None)
        if started is not None:
            key, start = started
            self.total += self.ledger.seconds(key, time.perf_counter() - start)


# -- configuration and records ------------------------------------------------


class EvaluationConfig(BaseModel):
    """What to evaluate and how; every field has a default a CLI can override.

    Attributes:
        data_path: The data set (unused when examples are passed directly).
        data_format: ``"jsonl"``, ``"gsm8k"`` or ``"multiple_choice"``.
        answer_kind: How answers are extracted and compared.
        limit: Evaluate at most this many questions.
        seed: Seeds the stream's order and the bootstrap.
        shuffle: Shuffle the data set (seeded) before taking ``limit``.
        configurations: Which of the four configurations to run.
        strong_sample_every: Run the strong-only baseline on every n-th question
            only (1: all), to save time; its metrics are then estimates.
        threshold: The cascades' acceptance threshold (``math.inf``: defer
            everything).
        calibration_examples: Hold this many questions out of the head of the
            ordered stream and set ``threshold`` from them instead, with
            :func:`calibrate_threshold` on the standard cascade's weak answers
            (weak model and judge only). 0 uses ``threshold`` as given.
        alpha: The calibration's target error rate among accepted answers.
        delta: The calibration's failure probability.
        k: Strategies shown to the weak model.
        score_threshold: Similarity cut-off for retrieved strategies.
        system_prompt: A system message put before every question (None: none).
        window: The rolling window, in questions, for metrics over the stream.
        n_bootstrap: Bootstrap resamples for confidence intervals.
        confidence_level: The intervals' coverage.
        reliability_bins: Bins of the judge's reliability diagram.
        prices: Token prices per model key.
        cache_path: SQLite file for LangChain's model-call cache (None: no cache).
        output_dir: Where :func:`run_evaluation` writes results (None: nowhere).
        progress: Show a progress bar.
    """

    data_path: Path | None = None
    data_format: DataFormat = "jsonl"
    answer_kind: AnswerKind = "number"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    shuffle: bool = True
    configurations: list[ConfigName] = Field(default_factory=lambda: list(CONFIGURATIONS))
    strong_sample_every: int = Field(default=1, ge=1)
    threshold: float = Field(default=0.8, ge=0.0)
    calibration_examples: int = Field(default=0, ge=0)
    alpha: float = Field(default=0.1, gt=0.0, lt=1.0)
    delta: float = Field(default=0.1, gt=0.0, lt=1.0)
    k: int = Field(default=2, ge=1)
    score_threshold: float | None = 0.5
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    window: int = Field(default=20, ge=1)
    n_bootstrap: int = Field(default=2000, ge=100)
    confidence_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    reliability_bins: int = Field(default=10, ge=2)
    prices: PriceTable = DEFAULT_PRICES
    cache_path: Path | None = None
    output_dir: Path | None = None
    progress: bool = True

    # A calibrated threshold may be inf; "constants" keeps it through config.json.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    @field_validator("threshold")
    @classmethod
    def _threshold_in_range(cls, value: float) -> float:
        if value > 1.0 and not math.isinf(value):
            raise ValueError(f"threshold must lie in [0, 1] or be inf, got {value}")
        return value


class QueryRecord(BaseModel):
    """What one configuration did with one question.

    Attributes:
        position: The question's position in the stream (0-based).
        example_id: The example's id.
        gold: The gold answer.
        reply: The final answer's text.
        predicted: The answer read from it (None if none could be read).
        correct: Whether the final answer is right.
        weak_reply: The weak model's reply (None for strong only).
        weak_correct: Whether the weak model's reply is right, accepted or not.
        route: ``"weak"`` or ``"strong"``: which model's answer was returned.
        confidence: The judge's confidence in the weak reply (cascades only).
        judge_details: The judge's sub-scores (cascades only).
        strategies_shown: How many strategies the weak model saw.
        strategy_scores: Their similarity scores.
        strategy_ids: Their ids in the bank.
        bank_size: Strategies in the bank after the question.
        new_strategy: The strategy distilled from this question, as text.
        new_strategy_id: Its id in the bank.
        tokens: Tokens per model and role.
        fee: The tokens' price.
        latency_s: Seconds of model calls (first-call durations, see :class:`CallTimes`).
        errors: Failures the run contained.
    """

    position: int
    example_id: str
    gold: str
    reply: str
    predicted: str | None
    correct: bool
    weak_reply: str | None = None
    weak_correct: bool | None = None
    route: Literal["weak", "strong"]
    confidence: float | None = None
    judge_details: dict[str, float] = Field(default_factory=dict)
    strategies_shown: int = 0
    strategy_scores: list[float] = Field(default_factory=list)
    strategy_ids: list[str] = Field(default_factory=list)
    bank_size: int = 0
    new_strategy: str | None = None
    new_strategy_id: str | None = None
    tokens: TokenCounts = Field(default_factory=dict)
    fee: float = 0.0
    latency_s: float = 0.0
    errors: list[str] = Field(default_factory=list)


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


# -- metrics ------------------------------------------------------------------


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


def load_records(path: str | Path) -> dict[ConfigName, list[QueryRecord]]:
    """Read the ``records.jsonl`` a run appends to, e.g. to summarize an unfinished run.

    Args:
        path: The file :func:`run_evaluation` wrote in its ``output_dir``.

    Returns:
        Each configuration's records, in stream order, in the order the
        configurations first appear.
    """
    records: dict[ConfigName, list[QueryRecord]] = {}
    for _, row in _read_jsonl(path):
        name = row.pop("configuration")
        records.setdefault(name, []).append(QueryRecord.model_validate(row))
    return records


# -- result -------------------------------------------------------------------


class EvaluationResult(BaseModel):
    """Everything an evaluation measured.

    Attributes:
        config: The configuration it ran with.
        n_examples: Questions in the stream.
        metrics: Per configuration, over the whole stream.
        differences: Paired bootstrap differences between configurations.
        rolling: Per configuration, over stream position.
        judge: The judge's reliability (weak answers judged by either cascade).
        records: Per configuration, one record per question.
        calibration: How ``config.threshold`` was calibrated on held-out
            questions (None when it was given).
    """

    config: EvaluationConfig
    n_examples: int
    metrics: dict[ConfigName, ConfigMetrics]
    differences: list[Difference]
    rolling: dict[ConfigName, RollingMetrics]
    judge: JudgeQuality
    records: dict[ConfigName, list[QueryRecord]]
    calibration: ThresholdCalibration | None = None

    model_config = ConfigDict(ser_json_inf_nan="constants")

    @classmethod
    def from_records(
        cls,
        records: dict[ConfigName, list[QueryRecord]],
        config: EvaluationConfig,
        n_examples: int,
        calibration: ThresholdCalibration | None = None,
    ) -> EvaluationResult:
        """Compute every metric from the records.

        Args:
            records: Each configuration's records, in stream order.
            config: The run's configuration.
            n_examples: Questions in the stream.
            calibration: How the threshold was calibrated, if it was.

        Returns:
            The result.
        """
        judged = [
            r
            for name in ("cascade", "intercascade")
            for r in records.get(name, [])
            if r.confidence is not None and r.weak_correct is not None
        ]
        return cls(
            config=config,
            n_examples=n_examples,
            metrics={name: config_metrics(rs, config) for name, rs in records.items()},
            differences=paired_differences(records, config),
            rolling={name: rolling_metrics(rs, config.window) for name, rs in records.items()},
            judge=reliability(
                [r.confidence or 0.0 for r in judged],
                [bool(r.weak_correct) for r in judged],
                config.reliability_bins,
            ),
            records=records,
            calibration=calibration,
        )

    def to_markdown(self) -> str:
        """Render the headline metrics and differences as markdown tables.

        Returns:
            The markdown.
        """
        currency = self.config.prices.currency
        lines = [
            f"| configuration | n | system accuracy [{self.config.confidence_level:.0%} CI] "
            "| weak accuracy | weak acc. with / without strategies (n with) "
            f"| strong-call rate | weak tokens | strong tokens | fee per 1k queries ({currency}) "
            "| model s/query |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in self.metrics.items():
            acc = m.system_accuracy
            with_without = (
                f"{_pct(m.weak_accuracy_with_strategies)} / "
                f"{_pct(m.weak_accuracy_without_strategies)} ({m.n_with_strategies})"
            )
            lines.append(
                f"| {LABELS[name]} | {m.n} | {acc.estimate:.1%} [{acc.low:.1%}, {acc.high:.1%}] "
                f"| {_pct(m.weak_accuracy)} | {with_without} | {m.strong_call_rate:.1%} "
                f"| {_tokens(m.tokens, 'weak')} | {_tokens(m.tokens, 'strong')} "
                f"| {1000 * m.fee_per_query:.3f} | {m.latency_mean_s:.1f} |"
            )
        lines += [
            "",
            f"| difference | metric | n | estimate [{self.config.confidence_level:.0%} CI] |",
            "|---|---|---|---|",
        ]
        for d in self.differences:
            iv = d.interval
            scale = 1000.0 if d.metric == "fee_per_query" else 100.0
            unit = f" {currency}/1k" if d.metric == "fee_per_query" else " pts"
            lines.append(
                f"| {LABELS[d.a]} - {LABELS[d.b]} | {d.metric} | {d.n} "
                f"| {scale * iv.estimate:+.2f}{unit} [{scale * iv.low:+.2f}, "
                f"{scale * iv.high:+.2f}] |"
            )
        j = self.judge
        lines += [
            "",
            f"Judge: AUROC {_num(j.auroc)}, ECE {_num(j.ece)} over {j.n} judged weak answers; "
            f"threshold {self.config.threshold}. Prices: {self.config.prices.as_of}.",
        ]
        if (c := self.calibration) is not None:
            lines.append(
                f"Threshold calibrated on {c.n_samples} held-out questions at alpha {c.alpha}, "
                f"delta {c.delta}: {c.n_accepted} accepted ({c.n_errors_accepted} wrong), "
                f"risk upper bound {c.risk_upper_bound:.3f}"
                + (
                    " (no threshold meets alpha: everything is deferred)."
                    if math.isinf(c.threshold)
                    else "."
                )
            )
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path, *, plots: bool = True) -> Path:
        """Write ``results.json``, ``results.md`` and (with matplotlib) the PNG plots.

        Args:
            folder: The output folder (created if missing).
            plots: Also draw ``accuracy_vs_cost.png``, ``over_stream.png`` and
                ``reliability.png``.

        Returns:
            The folder.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.json").write_text(self.model_dump_json(indent=1), encoding="utf-8")
        (target / "results.md").write_text(self.to_markdown(), encoding="utf-8")
        if plots:
            plot_results(self, target)
        return target


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _tokens(tokens: TokenCounts, model: str) -> str:
    total = sum(c["total_tokens"] for c in tokens.get(model, {}).values())
    return f"{total:,}"


def plot_results(result: EvaluationResult, folder: Path) -> list[Path]:
    """Draw the three plots into ``folder``.

    Args:
        result: The evaluation's result.
        folder: Where to write the PNG files.

    Returns:
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, m in result.metrics.items():
        acc = m.system_accuracy
        x = 1000 * m.fee_per_query
        ax.errorbar(
            x,
            acc.estimate,
            yerr=[[acc.estimate - acc.low], [acc.high - acc.estimate]],
            fmt="o",
            capsize=4,
            label=LABELS[name],
        )
        ax.annotate(f"{m.strong_call_rate:.0%} strong", (x, acc.estimate), fontsize=8)
    ax.set_xlabel(f"fee per 1,000 queries ({result.config.prices.currency})")
    ax.set_ylabel("system accuracy")
    ax.set_title("Accuracy vs cost")
    ax.legend()
    fig.tight_layout()
    written.append(folder / "accuracy_vs_cost.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(3, 1, figsize=(7, 9), sharex=True)
    for name, roll in result.rolling.items():
        if name in ("cascade", "intercascade"):
            axes[0].plot(roll.positions, roll.strong_call_rate, label=LABELS[name])
        if roll.weak_accuracy:
            weak_positions = [
                r.position for r in result.records[name] if r.weak_correct is not None
            ]
            axes[1].plot(weak_positions, roll.weak_accuracy, label=LABELS[name])
        if name == "intercascade":
            axes[2].plot(roll.positions, roll.bank_size, label=LABELS[name])
    window = result.config.window
    axes[0].set_ylabel(f"strong-call rate\n(last {window})")
    axes[1].set_ylabel(f"weak accuracy\n(last {window})")
    axes[2].set_ylabel("strategies in bank")
    axes[2].set_xlabel("stream position")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(folder / "over_stream.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = [b for b in result.judge.bins if b.count]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.bar(
        [(b.low + b.high) / 2 for b in bins],
        [b.accuracy or 0.0 for b in bins],
        width=[b.high - b.low for b in bins],
        edgecolor="black",
        alpha=0.6,
        label="weak accuracy in bin",
    )
    for b in bins:
        ax.annotate(str(b.count), ((b.low + b.high) / 2, (b.accuracy or 0.0) + 0.02), ha="center")
    ax.axvline(result.config.threshold, color="red", linewidth=1, label="threshold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("judge confidence")
    ax.set_ylabel("fraction right")
    ax.set_title(f"Judge reliability (AUROC {_num(result.judge.auroc)})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    written.append(folder / "reliability.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


# -- runner -------------------------------------------------------------------


@contextmanager
def _llm_cache(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    from langchain_community.cache import SQLiteCache

    previous = get_llm_cache()
    set_llm_cache(SQLiteCache(database_path=str(path)))
    try:
        yield
    finally:
        set_llm_cache(previous)


def _token_counts(usage: Usage) -> TokenCounts:
    keys = ("input_tokens", "output_tokens", "total_tokens")
    counts: TokenCounts = {}
    for model, roles in usage.items():
        for role, tokens in roles.items():
            values = cast(dict[str, Any], tokens)
            counts.setdefault(model, {})[role] = {k: int(values.get(k) or 0) for k in keys}
    return counts


def _progress(stream: list[Example], *, enabled: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError(
            'the evaluation needs tqdm and matplotlib: pip install "langchain-intercascade[eval]"'
        ) from exc
    return tqdm(stream, desc="evaluating", unit="q", disable=not enabled)


def _cache_key(model: BaseChatModel) -> str:
    # The key LangChain's cache files a model's calls under, besides the prompt.
    return model._get_llm_string()


def _messages(config: EvaluationConfig, example: Example) -> list[BaseMessage]:
    question = HumanMessage(example.question)
    return [SystemMessage(config.system_prompt), question] if config.system_prompt else [question]


def _calibrate(
    config: EvaluationConfig,
    examples: Sequence[Example],
    *,
    weak: BaseChatModel,
    strong: BaseChatModel,
    judge: BaseJudge | None,
    prompts: CascadePrompts | None,
    extractor: AnswerExtractor | None,
) -> ThresholdCalibration:
    """Calibrate the cascades' threshold on held-out questions.

    The standard cascade's weak model and judge answer them (no strategies, no
    strong calls); Inter-Cascade's weak answers see strategies, so for it the
    guarantee holds only as far as strategies leave the confidences alike.
    """
    cascade = create_intercascade(
        weak, strong, bank=None, judge=judge, prompts=prompts, name="calibration"
    )
    collected = collect_confidences(
        cascade,
        [(_messages(config, e), e.answer) for e in examples],
        make_grader(config.answer_kind, extractor),
        config={"max_concurrency": 1, "run_name": "calibration"},
    )
    return calibrate_threshold(
        collected.confidences, collected.correct, alpha=config.alpha, delta=config.delta
    )


class _Runner:
    """Runs one question through each configuration and records what happened."""

    def __init__(
        self,
        config: EvaluationConfig,
        *,
        weak: BaseChatModel,
        strong: BaseChatModel,
        bank: StrategyBank,
        judge: BaseJudge | None,
        prompts: CascadePrompts | None,
        extractor: AnswerExtractor | None,
        ledger: CallTimes,
    ) -> None:
        self.config = config
        self.weak = weak
        self.strong = strong
        self.bank = bank
        self.extract = extractor or EXTRACTORS[config.answer_kind]
        self.grade = make_grader(config.answer_kind, extractor)
        self.ledger = ledger
        shared: dict[str, Any] = {
            "judge": judge,
            "threshold": config.threshold,
            "k": config.k,
            "score_threshold": config.score_threshold,
            "prompts": prompts,
        }
        self.graphs: dict[ConfigName, InterCascadeGraph] = {
            "cascade": create_intercascade(weak, strong, bank=None, name="cascade", **shared),
            "intercascade": create_intercascade(
                weak, strong, bank=bank, name="intercascade", **shared
            ),
        }

    def run(self, name: ConfigName, position: int, example: Example) -> QueryRecord:
        timer = _QueryTimer(self.ledger)
        run_config: RunnableConfig = {"callbacks": [timer], "run_name": name}
        try:
            if name in ("weak", "strong"):
                fields = self._single(name, example, run_config)
            else:
                fields = self._cascade(name, example, run_config)
        except Exception as exc:  # one failed question must not end a long run
            fields = {
                "reply": "",
                "route": "strong" if name == "strong" else "weak",
                "errors": [f"{name}: {type(exc).__name__}: {exc}"],
            }
        reply = fields.pop("reply")
        tokens = fields.pop("usage", {})
        return QueryRecord(
            position=position,
            example_id=example.id,
            gold=example.answer,
            reply=reply,
            predicted=self.extract(reply),
            correct=self.grade(reply, example.answer),
            tokens=_token_counts(tokens),
            fee=self.config.prices.cost(tokens),
            latency_s=timer.total,
            **fields,
        )

    def _single(
        self, name: ConfigName, example: Example, run_config: RunnableConfig
    ) -> dict[str, Any]:
        model = self.weak if name == "weak" else self.strong
        reply = model.invoke(_messages(self.config, example), run_config)
        assert isinstance(reply, AIMessage)
        fields: dict[str, Any] = {
            "reply": reply.text,
            "route": name,
            "usage": record_usage({}, name, "answer", reply),
        }
        if name == "weak":
            fields.update(
                weak_reply=reply.text, weak_correct=self.grade(reply.text, example.answer)
            )
        return fields

    def _cascade(
        self, name: ConfigName, example: Example, run_config: RunnableConfig
    ) -> dict[str, Any]:
        state = self.graphs[name].invoke({"messages": _messages(self.config, example)}, run_config)
        weak_message = state.get("weak_message")
        weak_reply = weak_message.text if weak_message is not None else None
        strategies = state.get("strategies") or []
        new = state.get("new_strategy")
        return {
            "reply": state.get("answer", ""),
            "route": state.get("route") or "strong",
            "usage": state.get("usage", {}),
            "weak_reply": weak_reply,
            "weak_correct": weak_reply is not None and self.grade(weak_reply, example.answer),
            "confidence": state.get("confidence"),
            "judge_details": dict(state.get("judge_details") or {}),
            "strategies_shown": len(strategies),
            "strategy_scores": [s.score for s in strategies],
            "strategy_ids": [s.record.id for s in strategies],
            "bank_size": len(self.bank) if name == "intercascade" else 0,
            "new_strategy": new.text if new is not None else None,
            "new_strategy_id": new.id if new is not None else None,
            "errors": list(state.get("errors") or []),
        }


def run_evaluation(
    config: EvaluationConfig,
    *,
    weak: BaseChatModel,
    strong: BaseChatModel,
    embeddings: Embeddings,
    judge: BaseJudge | None = None,
    prompts: CascadePrompts | None = None,
    examples: Sequence[Example] | None = None,
    extractor: AnswerExtractor | None = None,
    bank: StrategyBank | None = None,
) -> EvaluationResult:
    """Run the configured configurations on one stream and measure them.

    Each question goes through every configuration before the next question, so
    an interrupted run has results for all of them, and Inter-Cascade's bank
    grows in stream order. With ``output_dir`` set, each record is appended to
    ``records.jsonl`` as it is made (beside ``config.json``), and the results,
    table and plots are written at the end. With ``calibration_examples`` set,
    the threshold is first calibrated on that many questions held out of the
    head of the stream (see :class:`EvaluationConfig`).

    Args:
        config: What to run and how.
        weak: The weak model (use temperature 0 for a resumable run).
        strong: The strong model.
        embeddings: Embeds strategies for Inter-Cascade's bank.
        judge: The judge both cascades use; None uses the cascade's default.
        prompts: The cascades' prompts (strategy format, distillation prompt).
        examples: The stream; None loads ``config.data_path``. Either way it is
            ordered and cut by :func:`order_examples`.
        extractor: Reads answers from replies; None uses ``config.answer_kind``'s.
        bank: Inter-Cascade's bank, e.g. pre-filled; None starts an empty one.

    Returns:
        The result.

    Raises:
        ValueError: If neither ``examples`` nor ``config.data_path`` is given, or
            ``config.calibration_examples`` leaves no question to evaluate.
    """
    if examples is None:
        if config.data_path is None:
            raise ValueError("pass examples or set config.data_path")
        examples = load_examples(config.data_path, config.data_format)
    if config.cache_path is not None and _cache_key(weak) == _cache_key(strong):
        raise ValueError(
            "the call cache cannot tell the weak model from the strong one (their "
            "parameters are identical), so one would answer from the other's cache; "
            "give them distinguishing parameters (e.g. model name) or set cache_path=None"
        )
    held_out = config.calibration_examples
    ordered = order_examples(
        examples,
        seed=config.seed,
        shuffle=config.shuffle,
        limit=None if config.limit is None else held_out + config.limit,
    )
    calibration_set, stream = ordered[:held_out], ordered[held_out:]
    if not stream:
        raise ValueError(
            f"no questions left to evaluate: the data set has {len(ordered)} and "
            f"calibration_examples holds out {held_out}"
        )
    names = [n for n in CONFIGURATIONS if n in config.configurations]
    records: dict[ConfigName, list[QueryRecord]] = {n: [] for n in names}
    log = None
    calibration = None
    if config.cache_path is not None:
        config.cache_path.parent.mkdir(parents=True, exist_ok=True)
    ledger = CallTimes(config.cache_path)
    try:
        with _llm_cache(config.cache_path):
            if calibration_set:
                calibration = _calibrate(
                    config,
                    calibration_set,
                    weak=weak,
                    strong=strong,
                    judge=judge,
                    prompts=prompts,
                    extractor=extractor,
                )
                config = config.model_copy(update={"threshold": calibration.threshold})
            if config.output_dir is not None:
                config.output_dir.mkdir(parents=True, exist_ok=True)
                # Written first, so an unfinished run's records can be summarized with it.
                (config.output_dir / "config.json").write_text(
                    config.model_dump_json(indent=1), encoding="utf-8"
                )
                log = open(config.output_dir / "records.jsonl", "w", encoding="utf-8")
            runner = _Runner(
                config,
                weak=weak,
                strong=strong,
                bank=bank if bank is not None else StrategyBank(embeddings=embeddings),
                judge=judge,
                prompts=prompts,
                extractor=extractor,
                ledger=ledger,
            )
            bar = _progress(stream, enabled=config.progress)
            for position, example in enumerate(bar):
                for name in names:
                    if name == "strong" and position % config.strong_sample_every:
                        continue
                    record = runner.run(name, position, example)
                    records[name].append(record)
                    if log is not None:
                        log.write(json.dumps({"configuration": name, **record.model_dump()}) + "\n")
                        log.flush()
                bar.set_postfix(bank=len(runner.bank))
    finally:
        ledger.close()
        if log is not None:
            log.close()
    result = EvaluationResult.from_records(records, config, len(stream), calibration)
    if config.output_dir is not None:
        result.save(config.output_dir)
    return result
