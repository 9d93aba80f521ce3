import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import strong_respond, weak_logprob, weak_respond

from langchain_intercascade.costs import DEFAULT_PRICES, ModelPrice, PriceTable
from langchain_intercascade.evaluation import (
    EvaluationConfig,
    EvaluationResult,
    Example,
    QueryRecord,
    auroc,
    bootstrap_interval,
    config_metrics,
    load_examples,
    load_gsm8k,
    load_jsonl,
    load_multiple_choice,
    load_records,
    order_examples,
    paired_differences,
    reliability,
    rolling_mean,
    run_evaluation,
)
from langchain_intercascade.judges import LogprobJudge
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel


class NamedScriptedModel(ScriptedChatModel):
    """A scripted model whose name is part of its cache key, like a real provider's."""

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}


def basket(i: int) -> Example:
    a, b = i + 2, i + 3
    question = f"Ana has {a} baskets with {b} apples in each basket. How many apples does Ana have?"
    return Example(id=f"b{i}", question=question, answer=str(a * b))


@pytest.fixture
def stream() -> list[Example]:
    return [basket(i) for i in range(8)] + [
        Example(id="easy", question="What is the capital of France?", answer="Paris")
    ]


@pytest.fixture
def models() -> tuple[NamedScriptedModel, NamedScriptedModel]:
    weak = NamedScriptedModel(respond=weak_respond, logprob=weak_logprob, model_name="weak-fake")
    strong = NamedScriptedModel(respond=strong_respond, model_name="strong-fake")
    return weak, strong


def _config(tmp_path: Path, **kwargs: Any) -> EvaluationConfig:
    defaults: dict[str, Any] = {
        "system_prompt": None,
        "answer_kind": "text",
        "shuffle": False,
        "progress": False,
        "n_bootstrap": 200,
        "window": 3,
        "cache_path": tmp_path / "cache" / "calls.sqlite",
        "judge": LogprobJudge(),
    }
    return EvaluationConfig(**{**defaults, **kwargs})


def _grade_numbers_or_text(reply: str) -> str | None:
    numbers = re.findall(r"\d+", reply)
    return numbers[-1] if numbers else reply.strip(" .").lower() or None


# -- loaders ------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_load_jsonl_keeps_extra_fields(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "d.jsonl", [{"question": "q1", "answer": 3, "topic": "x"}])
    (example,) = load_jsonl(path)
    assert (example.id, example.question, example.answer) == ("1", "q1", "3")
    assert example.metadata == {"topic": "x"}
    with pytest.raises(ValueError, match="missing field 'answer'"):
        load_jsonl(_write_jsonl(tmp_path / "bad.jsonl", [{"question": "q"}]))


def test_load_gsm8k_reads_the_final_number(tmp_path: Path) -> None:
    row = {"question": "How many?", "answer": "2 * 600 = <<2*600=1200>>1200\n#### 1,200"}
    (example,) = load_gsm8k(_write_jsonl(tmp_path / "test.jsonl", [row]))
    assert example.answer == "1200"
    assert example.metadata["solution"].endswith("#### 1,200")


def test_load_multiple_choice_accepts_letter_index_or_text(tmp_path: Path) -> None:
    rows = [
        {"question": "Pick", "choices": ["red", "blue"], "answer": "b"},
        {"question": "Pick", "choices": ["red", "blue"], "answer": 0},
        {"question": "Pick", "choices": ["red", "blue"], "answer": "blue"},
    ]
    examples = load_multiple_choice(_write_jsonl(tmp_path / "mc.jsonl", rows))
    assert [e.answer for e in examples] == ["B", "A", "B"]
    assert "A) red\nB) blue" in examples[0].question
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"question": "P", "choices": ["x"], "answer": 5}])
    with pytest.raises(ValueError, match="matches none"):
        load_examples(bad, "multiple_choice")


def test_order_is_seeded_and_prefix_stable(stream: list[Example]) -> None:
    full = order_examples(stream, seed=3)
    assert order_examples(stream, seed=3) == full
    assert order_examples(stream, seed=3, limit=4) == full[:4]
    assert order_examples(stream, seed=4) != full
    assert order_examples(stream, shuffle=False) == stream


# -- metrics arithmetic -------------------------------------------------------


def test_rolling_mean_uses_a_trailing_window() -> None:
    assert rolling_mean([1, 0, 0, 1, 1], 2) == [1.0, 0.5, 0.0, 0.5, 1.0]
    assert rolling_mean([1, 0, 1], 10) == [1.0, 0.5, pytest.approx(2 / 3)]


def test_bootstrap_interval_brackets_the_mean() -> None:
    interval = bootstrap_interval([0, 1] * 50, n_resamples=500, seed=1)
    assert interval.estimate == 0.5
    assert 0.35 < interval.low < 0.5 < interval.high < 0.65
    constant = bootstrap_interval([1.0] * 10)
    assert (constant.low, constant.high) == (1.0, 1.0)
    assert math.isnan(bootstrap_interval([]).estimate)


def test_auroc_and_reliability() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # ties count half
    assert auroc([0.9], [True]) is None
    quality = reliability([0.95, 1.0, 0.05, 0.15], [True, False, False, False], bins=10)
    last = quality.bins[-1]
    assert (last.count, last.accuracy) == (2, 0.5)  # 1.0 lands in the last bin
    assert quality.ece == pytest.approx((2 * abs(0.975 - 0.5) + 0.05 + 0.15) / 4)


def _record(position: int, **kwargs: Any) -> QueryRecord:
    base: dict[str, Any] = {
        "position": position,
        "example_id": str(position),
        "gold": "1",
        "reply": "",
        "predicted": None,
        "correct": False,
        "route": "weak",
    }
    return QueryRecord(**{**base, **kwargs})


def test_config_metrics_arithmetic(tmp_path: Path) -> None:
    tokens = {"weak": {"answer": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}}}
    records = [
        _record(0, correct=True, weak_correct=True, confidence=0.9, tokens=tokens, fee=0.5),
        _record(1, route="strong", correct=True, weak_correct=False, confidence=0.1, fee=1.5),
        _record(2, correct=False, weak_correct=False, confidence=0.9, strategies_shown=2),
        _record(3, route="strong", correct=True, weak_correct=True, strategies_shown=1),
    ]
    metrics = config_metrics(records, _config(tmp_path))
    assert metrics.n == 4
    assert metrics.system_accuracy.estimate == 0.75
    assert metrics.weak_accuracy == 0.5
    assert metrics.weak_accuracy_with_strategies == 0.5
    assert metrics.n_with_strategies == 2
    assert metrics.weak_accuracy_without_strategies == 0.5
    assert (metrics.strong_calls, metrics.strong_call_rate) == (2, 0.5)
    assert metrics.accepted_precision == 0.5  # positions 0 and 2 were accepted
    assert metrics.fees == 2.0 and metrics.fee_per_query == 0.5
    assert metrics.tokens == tokens


def test_paired_differences_pair_by_position(tmp_path: Path) -> None:
    records = {
        "cascade": [_record(i, route="strong", correct=i < 2) for i in range(4)],
        "intercascade": [_record(i, route="weak", correct=True) for i in range(4)],
        "strong": [_record(0, route="strong", correct=True)],  # a subsample
    }
    diffs = {(d.a, d.b, d.metric): d for d in paired_differences(records, _config(tmp_path))}
    accuracy = diffs[("intercascade", "cascade", "system_accuracy")]
    assert (accuracy.n, accuracy.interval.estimate) == (4, 0.5)
    assert diffs[("intercascade", "cascade", "strong_call_rate")].interval.estimate == -1.0
    assert diffs[("intercascade", "strong", "system_accuracy")].n == 1
    assert ("intercascade", "cascade", "weak_accuracy") not in diffs  # no weak grades


def test_price_table() -> None:
    usage: Any = {
        "weak": {"answer": {"input_tokens": 1_000_000, "output_tokens": 0, "total_tokens": 0}},
        "strong": {"distill": {"input_tokens": 0, "output_tokens": 1_000_000, "total_tokens": 0}},
    }
    assert DEFAULT_PRICES.cost(usage) == pytest.approx(0.15 + 10.0)
    assert DEFAULT_PRICES.cost(usage, "strong") == pytest.approx(10.0)
    assert DEFAULT_PRICES.as_of
    free_weak = PriceTable(prices={"strong": ModelPrice(input_per_million=1, output_per_million=2)})
    assert free_weak.cost(usage) == pytest.approx(2.0)


# -- the runner on the scripted world ---------------------------------------


def test_four_configurations_on_a_recurring_stream(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    result = run_evaluation(
        _config(tmp_path),
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=stream,
        extractor=_grade_numbers_or_text,
    )
    m = result.metrics
    assert list(m) == ["weak", "strong", "cascade", "intercascade"]
    assert all(metrics.n == 9 for metrics in m.values())
    # Weak alone knows only the capital; strong alone everything but the capital.
    assert m["weak"].system_accuracy.estimate == pytest.approx(1 / 9)
    assert m["strong"].system_accuracy.estimate == pytest.approx(8 / 9)
    assert m["strong"].strong_call_rate == 1.0 and m["weak"].strong_call_rate == 0.0
    # The standard cascade defers every basket question; Inter-Cascade only the first.
    assert m["cascade"].strong_calls == 8
    assert m["intercascade"].strong_calls == 1
    assert m["intercascade"].strong_calls < m["cascade"].strong_calls
    assert m["intercascade"].system_accuracy.estimate == 1.0
    assert m["intercascade"].weak_accuracy_with_strategies == 1.0
    assert m["intercascade"].n_with_strategies == 7
    assert m["intercascade"].bank_size == 1
    ic = result.records["intercascade"]
    assert ic[0].new_strategy_id is not None and "Total from equal groups" in ic[0].new_strategy
    assert ic[1].strategy_ids == [ic[0].new_strategy_id]  # the sibling saw that strategy
    assert ic[1].judge_details["mean_token_prob"] == ic[1].confidence
    assert result.records["weak"][0].judge_details == {}
    assert result.rolling["intercascade"].bank_size[:2] == [1, 1]
    assert result.rolling["cascade"].strong_call_rate[-1] == pytest.approx(2 / 3)
    assert m["intercascade"].tokens["strong"]["distill"]["total_tokens"] > 0
    assert result.judge.auroc == 1.0  # the scripted logprobs separate right from wrong
    diff = next(
        d
        for d in result.differences
        if (d.a, d.b, d.metric) == ("intercascade", "cascade", "strong_call_rate")
    )
    assert diff.interval.estimate == pytest.approx(-7 / 9)
    assert diff.interval.high < 0


def test_outputs_written(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    config = _config(
        tmp_path, configurations=["cascade", "intercascade"], output_dir=tmp_path / "out"
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=stream,
    )
    out = tmp_path / "out"
    for name in ("config.json", "results.json", "results.md", "records.jsonl"):
        assert (out / name).stat().st_size > 0
    for name in ("accuracy_vs_cost.png", "over_stream.png", "reliability.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"]["intercascade"]["strong_calls"] == 1
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(stream)
    assert json.loads(lines[1])["configuration"] == "intercascade"
    table = (out / "results.md").read_text()
    assert "| Inter-Cascade | 9 |" in table and "standard cascade" in table
    assert result.to_markdown() == table
    # An unfinished run's records.jsonl can be summarized without the models.
    reread = EvaluationResult.from_records(load_records(out / "records.jsonl"), config, 9)
    assert reread.metrics == result.metrics


def test_importing_the_evaluation_leaves_matplotlib_alone() -> None:
    code = "import sys, langchain_intercascade.evaluation; print('matplotlib' in sys.modules)"
    repo = Path(__file__).parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_results_are_written_without_plots_when_matplotlib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = {"weak": [_record(0, correct=True, weak_correct=True)]}
    result = EvaluationResult.from_records(records, _config(tmp_path), 1)
    # The submodule too: once imported, it would be found without its parent.
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(UserWarning, match=r'pip install "langchain-intercascade\[eval\]"'):
        result.save(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "results.md"]


def test_rerun_is_served_from_the_cache(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    kwargs: dict[str, Any] = {
        "embeddings": BagOfWordsEmbeddings(),
        "examples": stream,
    }
    first = run_evaluation(_config(tmp_path, limit=5), weak=weak, strong=strong, **kwargs)
    made = len(weak.calls) + len(strong.calls)
    assert made > 0
    # Weak-only and the cascades' first weak call share one cached prompt.
    assert len(weak.calls) < sum(m.n for n, m in first.metrics.items() if n != "strong")
    again = run_evaluation(_config(tmp_path, limit=5), weak=weak, strong=strong, **kwargs)
    assert len(weak.calls) + len(strong.calls) == made  # nothing new was paid for
    assert again.metrics == first.metrics  # cached usage and durations replay exactly
    run_evaluation(_config(tmp_path, limit=6), weak=weak, strong=strong, **kwargs)
    assert 0 < len(weak.calls) + len(strong.calls) - made <= 4  # only the new question


def test_strong_baseline_on_a_subsample(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    result = run_evaluation(
        _config(tmp_path, configurations=["strong", "weak"], strong_sample_every=3),
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=stream,
    )
    assert [r.position for r in result.records["strong"]] == [0, 3, 6]
    assert result.metrics["weak"].n == 9


def test_identical_models_are_refused_with_a_cache(tmp_path: Path, stream: list[Example]) -> None:
    same = ScriptedChatModel(respond=weak_respond)
    other = ScriptedChatModel(respond=strong_respond)
    with pytest.raises(ValueError, match="cannot tell the weak model from the strong"):
        run_evaluation(
            _config(tmp_path),
            weak=same,
            strong=other,
            embeddings=BagOfWordsEmbeddings(),
            examples=stream,
        )


def test_a_failing_model_is_recorded_not_fatal(tmp_path: Path, stream: list[Example]) -> None:
    broken = NamedScriptedModel(
        respond=weak_respond, model_name="broken", fail_with=RuntimeError("down")
    )
    strong = NamedScriptedModel(respond=strong_respond, model_name="strong-fake")
    result = run_evaluation(
        _config(tmp_path, configurations=["weak", "cascade"], cache_path=None),
        weak=broken,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=stream[:2],
    )
    weak_only = result.records["weak"][0]
    assert not weak_only.correct and weak_only.errors == ["weak: RuntimeError: down"]
    # The cascade contains the weak failure and answers with the strong model.
    cascade = result.records["cascade"][0]
    assert cascade.route == "strong" and cascade.weak_correct is False
    assert result.metrics["cascade"].errors >= 2


def test_requires_data(models: tuple[NamedScriptedModel, NamedScriptedModel]) -> None:
    weak, strong = models
    with pytest.raises(ValueError, match="data_path"):
        run_evaluation(
            EvaluationConfig(progress=False),
            weak=weak,
            strong=strong,
            embeddings=BagOfWordsEmbeddings(),
        )


def _capitals(n: int) -> list[Example]:
    # The scripted weak model knows this one (confidence exp(-0.05)).
    return [
        Example(id=f"cal{i}", question="What is the capital of France?", answer="Paris")
        for i in range(n)
    ]


def test_threshold_calibrated_on_held_out_questions(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    held_out = _capitals(25) + [basket(100 + i) for i in range(5)]  # 25 right, 5 wrong
    config = _config(tmp_path, calibration_examples=30, limit=9, output_dir=tmp_path / "out")
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=held_out + stream,
        extractor=_grade_numbers_or_text,
    )
    cal = result.calibration
    assert cal is not None and (cal.n_samples, cal.n_accepted, cal.n_errors_accepted) == (30, 25, 0)
    # The lowest threshold that certifies 10% risk accepts exactly the confident answers.
    assert result.config.options.threshold == cal
    assert result.config.options.threshold_value == pytest.approx(math.exp(-0.05))
    assert cal.risk_upper_bound <= 0.1
    assert [r.example_id for r in result.records["weak"]] == [e.id for e in stream]
    # The standard cascade accepts the capital and defers every basket question.
    assert result.metrics["cascade"].strong_calls == 8
    assert "Threshold calibrated on 30 held-out questions" in result.to_markdown()
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["options"]["threshold"]["threshold"] == pytest.approx(cal.threshold)


def test_uncertifiable_calibration_defers_everything(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    config = _config(
        tmp_path, calibration_examples=12, configurations=["cascade"], output_dir=tmp_path / "out"
    )
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=BagOfWordsEmbeddings(),
        examples=[basket(100 + i) for i in range(12)] + stream,
        extractor=_grade_numbers_or_text,
    )
    assert result.calibration is not None and math.isinf(result.config.options.threshold_value)
    assert result.metrics["cascade"].strong_call_rate == 1.0
    assert "everything is deferred" in result.to_markdown()
    saved = EvaluationConfig.model_validate_json((tmp_path / "out" / "config.json").read_text())
    assert math.isinf(saved.options.threshold_value)  # config.json round-trips inf
    reread = EvaluationResult.model_validate_json((tmp_path / "out" / "results.json").read_text())
    assert reread.calibration is not None
    # model_dump_json: NaN (the risk of accepting nothing) never equals itself.
    assert reread.calibration.model_dump_json() == result.calibration.model_dump_json()


def test_calibration_must_leave_questions_to_evaluate(
    tmp_path: Path, stream: list[Example], models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    with pytest.raises(ValueError, match="no questions left to evaluate"):
        run_evaluation(
            _config(tmp_path, calibration_examples=len(stream)),
            weak=weak,
            strong=strong,
            embeddings=BagOfWordsEmbeddings(),
            examples=stream,
        )
    with pytest.raises(ValueError, match="threshold\n.*must lie in"):
        EvaluationConfig(threshold=1.5)


def test_distillations_not_paid_are_counted_and_priced(
    tmp_path: Path, models: tuple[NamedScriptedModel, NamedScriptedModel]
) -> None:
    weak, strong = models
    repeated = [basket(0), basket(0)]  # the second retrieves the first's strategy at 1.0
    config = _config(tmp_path, configurations=["intercascade"], threshold=math.inf)
    result = run_evaluation(
        config, weak=weak, strong=strong, embeddings=BagOfWordsEmbeddings(), examples=repeated
    )
    first, second = result.records["intercascade"]
    assert first.new_strategy is not None and first.distill_skipped is None
    assert second.distill_skipped == "near_duplicate" and second.new_strategy is None
    assert "distill" in first.tokens["strong"] and "distill" not in second.tokens["strong"]
    assert second.fee < first.fee
    assert result.metrics["intercascade"].distillations_skipped == {"near_duplicate": 1}
    assert "strong answers not distilled: near_duplicate 1" in result.to_markdown()
