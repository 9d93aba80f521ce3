"""A run's settings and per-question records: configuration names, the config, the records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_intercascade.answers import (
    EXTRACTORS,
    AnswerExtractor,
    AnswerKind,
    Grader,
    make_grader,
)
from langchain_intercascade.costs import DEFAULT_PRICES, PriceTable
from langchain_intercascade.evaluation.data import DataFormat, _read_jsonl
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.options import CascadeOptions, fold_options

ConfigName = Literal["weak", "strong", "cascade", "intercascade"]
CONFIGURATIONS: tuple[ConfigName, ...] = ("weak", "strong", "cascade", "intercascade")
"""The four configurations: weak only, strong only, standard cascade, Inter-Cascade."""
TokenCounts = dict[str, dict[str, dict[str, int]]]
"""Tokens as ``{model: {role: {"input_tokens", "output_tokens", "total_tokens"}}}``."""

DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem step by step. Show your reasoning briefly, then finish with "
    "a line of the form 'The answer is N.'"
)
"""Makes small models reason before answering (a 1.5B model is right ~5x more often)."""

_LABELS = ("weak only", "strong only", "standard cascade", "Inter-Cascade")
LABELS: dict[ConfigName, str] = dict(zip(CONFIGURATIONS, _LABELS, strict=True))


class EvaluationConfig(BaseModel):
    """What to evaluate and how; every field has a default a CLI can override.

    Attributes:
        data_path: The data set (unused when examples are passed directly).
        data_format: ``"jsonl"``, ``"gsm8k"`` or ``"multiple_choice"``.
        answer_kind: How answers are extracted and compared.
        labels: A label task's labels: answers are read and graded as labels
            (:meth:`LabelSet.extract <langchain_intercascade.labels.LabelSet.extract>`,
            ``answer_kind`` unused), the options default to
            :meth:`LabelSet.options <langchain_intercascade.labels.LabelSet.options>`
            under the option fields given, and ``system_prompt`` to None (the
            prompts list the labels).
        limit: Evaluate at most this many questions.
        seed: Seeds the stream's order and the bootstrap.
        shuffle: Shuffle the data set (seeded) before taking ``limit``.
        configurations: Which of the four configurations to run.
        strong_sample_every: Run the strong-only baseline on every n-th question
            only (1: all), to save time; its metrics are then estimates.
        options: Both cascades' options (threshold, judge, k, prompts, ...); its
            fields may be given flat (``EvaluationConfig(threshold=0.5)``).
        calibration_examples: Hold this many questions out of the head of the
            ordered stream and set the threshold from them instead, with
            :func:`calibrate_threshold` on the standard cascade's weak answers
            (weak model and judge only). 0 uses ``options.threshold`` as given,
            unless :func:`run_evaluation` gets a separate ``calibration_set``.
        alpha: The calibration's target error rate among accepted answers.
        delta: The calibration's failure probability.
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
    labels: LabelSet | None = None
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    shuffle: bool = True
    configurations: list[ConfigName] = Field(default_factory=lambda: list(CONFIGURATIONS))
    strong_sample_every: int = Field(default=1, ge=1)
    options: CascadeOptions = Field(default_factory=CascadeOptions)
    calibration_examples: int = Field(default=0, ge=0)
    alpha: float = Field(default=0.1, gt=0.0, lt=1.0)
    delta: float = Field(default=0.1, gt=0.0, lt=1.0)
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

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        labels = data.get("labels") if isinstance(data, dict) else None
        if labels is None:
            return fold_options(data)
        label_set = labels if isinstance(labels, LabelSet) else LabelSet.model_validate(labels)
        given = {k: v for k, v in data.items() if k in CascadeOptions.model_fields}
        base = data.get("options")
        if isinstance(base, CascadeOptions):
            given = {**{n: getattr(base, n) for n in base.model_fields_set}, **given}
        rest = {k: v for k, v in data.items() if k not in given}
        return {
            "system_prompt": None,
            **rest,
            "labels": label_set,
            "options": label_set.options(**given),
        }

    def answer_reader(self, extractor: AnswerExtractor | None = None) -> AnswerExtractor:
        """What reads the final answer from a reply: ``extractor``, the labels' or the kind's."""
        if extractor is not None:
            return extractor
        return self.labels.extract if self.labels is not None else EXTRACTORS[self.answer_kind]

    def grader(self, extractor: AnswerExtractor | None = None) -> Grader:
        """What grades a reply against the gold answer, reading it as :meth:`answer_reader`."""
        if self.labels is not None and extractor is None:
            return self.labels.grade
        return make_grader(self.answer_kind, extractor)


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
        strong_confidence: The strong judge's confidence in a strong answer
            (cascades with a ``strong_judge`` only).
        judge_details: The judge's sub-scores (cascades only).
        strategies_shown: How many strategies the weak model saw.
        strategy_scores: Their similarity scores.
        strategy_ids: Their ids in the bank.
        strategy_titles: Their titles (a label task's: the labels they name).
        bank_size: Strategies in the bank after the question.
        new_strategy: The strategy distilled from this question, as text.
        new_strategy_id: Its id in the bank.
        distill_skipped: Why the strong answer was not distilled (``"untrusted"``,
            ``"near_duplicate"``), or None.
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
    strong_confidence: float | None = None
    judge_details: dict[str, float] = Field(default_factory=dict)
    strategies_shown: int = 0
    strategy_scores: list[float] = Field(default_factory=list)
    strategy_ids: list[str] = Field(default_factory=list)
    strategy_titles: list[str] = Field(default_factory=list)
    bank_size: int = 0
    new_strategy: str | None = None
    new_strategy_id: str | None = None
    distill_skipped: str | None = None
    tokens: TokenCounts = Field(default_factory=dict)
    fee: float = 0.0
    latency_s: float = 0.0
    errors: list[str] = Field(default_factory=list)


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
