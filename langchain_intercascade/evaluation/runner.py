"""Running an evaluation: :func:`run_evaluation`, the call cache, calibration on held-out questions.

:func:`run_evaluation` runs four configurations on the same stream of questions,
in the same order: the weak model alone, the strong model alone, a standard
cascade (same judge and threshold, no strategies) and Inter-Cascade. It grades
every answer, prices the tokens, tracks the metrics over stream position (learning
shows over time) and puts bootstrap confidence intervals on the differences.

Model calls are cached with LangChain's ``SQLiteCache`` when ``cache_path`` is
set: with deterministic models (temperature 0), a rerun after a crash or a code
change pays only for new prompts, and configurations that send the same prompt
(the weak-only baseline and a cascade's first weak call) pay for it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from langchain_core.embeddings import Embeddings
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from tqdm.auto import tqdm

from langchain_intercascade.answers import AnswerExtractor
from langchain_intercascade.bank import StrategyBank
from langchain_intercascade.calibration import ThresholdCalibration, calibrate_threshold
from langchain_intercascade.costs import Usage, record_usage
from langchain_intercascade.evaluation.confidences import collect_confidences
from langchain_intercascade.evaluation.data import Example, load_examples, order_examples
from langchain_intercascade.evaluation.records import (
    CONFIGURATIONS,
    ConfigName,
    EvaluationConfig,
    QueryRecord,
    TokenCounts,
)
from langchain_intercascade.evaluation.report import EvaluationResult
from langchain_intercascade.evaluation.timing import CallTimes, _QueryTimer
from langchain_intercascade.graph import CascadeTurn, InterCascadeGraph, create_intercascade


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
    extractor: AnswerExtractor | None,
) -> ThresholdCalibration:
    """Calibrate the cascades' threshold on held-out questions.

    The standard cascade's weak model and judge answer them (no strategies, no
    strong calls); Inter-Cascade's weak answers see strategies, so for it the
    guarantee holds only as far as strategies leave the confidences alike.
    """
    cascade = create_intercascade(
        weak, strong, bank=None, options=config.options, name="calibration"
    )
    collected = collect_confidences(
        cascade,
        [(_messages(config, e), e.answer) for e in examples],
        config.grader(extractor),
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
        extractor: AnswerExtractor | None,
        ledger: CallTimes,
    ) -> None:
        self.config = config
        self.weak = weak
        self.strong = strong
        self.bank = bank
        self.extract = config.answer_reader(extractor)
        self.grade = config.grader(extractor)
        self.ledger = ledger
        options = config.options
        self.graphs: dict[ConfigName, InterCascadeGraph] = {
            "cascade": create_intercascade(
                weak, strong, bank=None, options=options, name="cascade"
            ),
            "intercascade": create_intercascade(
                weak, strong, bank=bank, options=options, name="intercascade"
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
        # The cascades' nodes add the task's system message (a label list) themselves.
        prompt = self.config.options.prompts.with_task(_messages(self.config, example))
        reply = model.invoke(prompt, run_config)
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
        turn = CascadeTurn.from_state(
            self.graphs[name].invoke({"messages": _messages(self.config, example)}, run_config)
        )
        weak_reply = turn.weak_message.text if turn.weak_message is not None else None
        new = turn.new_strategy
        return {
            "reply": turn.answer,
            "route": turn.route or "strong",
            "usage": turn.usage,
            "weak_reply": weak_reply,
            "weak_correct": weak_reply is not None and self.grade(weak_reply, example.answer),
            "confidence": turn.confidence,
            "strong_confidence": turn.strong_confidence,
            "judge_details": turn.judge_details,
            "strategies_shown": len(turn.strategies),
            "strategy_scores": [s.score for s in turn.strategies],
            "strategy_ids": [s.record.id for s in turn.strategies],
            "strategy_titles": [s.record.strategy.title for s in turn.strategies],
            "bank_size": len(self.bank) if name == "intercascade" else 0,
            "new_strategy": new.text if new is not None else None,
            "new_strategy_id": new.id if new is not None else None,
            "distill_skipped": turn.distill_skipped,
            "errors": turn.errors,
        }


def run_evaluation(
    config: EvaluationConfig,
    *,
    weak: BaseChatModel,
    strong: BaseChatModel,
    embeddings: Embeddings,
    examples: Sequence[Example] | None = None,
    extractor: AnswerExtractor | None = None,
    bank: StrategyBank | None = None,
    calibration_set: Sequence[Example] | None = None,
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
        examples: The stream; None loads ``config.data_path``. Either way it is
            ordered and cut by :func:`order_examples`.
        extractor: Reads answers from replies; None uses ``config.answer_kind``'s.
        bank: Inter-Cascade's bank, e.g. pre-filled; None starts an empty one.
        calibration_set: Labelled questions kept apart from the stream (e.g. a
            training split) to calibrate the threshold on, instead of
            ``config.calibration_examples`` held out of the stream's head.

    Returns:
        The result.

    Raises:
        ValueError: If neither ``examples`` nor ``config.data_path`` is given,
            ``config.calibration_examples`` leaves no question to evaluate, or
            both it and ``calibration_set`` are given.

    Example:
        A weak model that is wrong and unsure, so the cascade defers to the
        strong one:

        ```python
        from langchain_intercascade.evaluation import EvaluationConfig, Example, run_evaluation
        from langchain_intercascade.judges import LogprobJudge
        from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

        weak = ScriptedChatModel(respond=lambda m: "The answer is 5.", logprob=-2.0)
        strong = ScriptedChatModel(respond=lambda m: "The answer is 4.", model_name="strong")
        result = run_evaluation(
            EvaluationConfig(
                configurations=["weak", "cascade"],
                n_bootstrap=100,
                progress=False,
                judge=LogprobJudge(),
            ),
            weak=weak,
            strong=strong,
            embeddings=BagOfWordsEmbeddings(),
            examples=[Example(id="1", question="What is 2 + 2?", answer="4")],
        )
        assert result.metrics["weak"].system_accuracy.estimate == 0.0
        assert result.metrics["cascade"].strong_call_rate == 1.0
        print(result.to_markdown())
        ```
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
    if held_out and calibration_set is not None:
        raise ValueError("give calibration_set or config.calibration_examples, not both")
    ordered = order_examples(
        examples,
        seed=config.seed,
        shuffle=config.shuffle,
        limit=None if config.limit is None else held_out + config.limit,
    )
    if calibration_set is None:
        calibration_set = ordered[:held_out]
    stream = ordered[held_out:]
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
                    extractor=extractor,
                )
                options = config.options.with_values(threshold=calibration)
                config = config.model_copy(update={"options": options})
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
                extractor=extractor,
                ledger=ledger,
            )
            bar = tqdm(stream, desc="evaluating", unit="q", disable=not config.progress)
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
