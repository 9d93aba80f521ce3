"""Tests for langchain_intercascade.calibration."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable

import numpy as np
import pytest
from conftest import APPLES, APPLES_SIBLING, EASY
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError
from scipy import stats

from langchain_intercascade import create_intercascade
from langchain_intercascade.answers import extract_choice
from langchain_intercascade.calibration import (
    OnlineRecalibrator,
    ThresholdCalibration,
    calibrate_threshold,
    clopper_pearson_upper,
    threshold_for_deferral_rate,
)
from langchain_intercascade.evaluation import acollect_confidences, collect_confidences
from langchain_intercascade.testing import ScriptedChatModel

ALPHA = 0.1
DELTA = 0.1


# --- Simulation: the guarantee holds and is not vacuous ----------------------
#
# Model: confidence C ~ U(0, 1) and P(wrong | C = c) = (1 - c) / 2, so the true
# risk of threshold t (error rate among accepted, C >= t) is
#     R(t) = E[(1 - C) / 2 | C >= t] = (1 - t) / 4,
# which is <= ALPHA exactly when t >= 0.6. The best possible coverage is 0.4.


def _true_risk_continuous(threshold: float) -> float:
    return (1.0 - threshold) / 4.0 if math.isfinite(threshold) else 0.0


# Same model on a grid of 20 tied values, to exercise ties. The grid avoids
# values whose true risk is exactly ALPHA (e.g. 0.6), where a float rounding
# would decide whether a correct answer counts as a violation.
_GRID = np.linspace(0.025, 0.975, 20)


def _true_risk_grid(threshold: float) -> float:
    accepted = _GRID[_GRID >= threshold]
    return float(np.mean((1.0 - accepted) / 2.0)) if accepted.size else 0.0


def _draw_continuous(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n)


def _draw_grid(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(_GRID, size=n)


def _reference_coverage(n: int) -> float:
    """Coverage a single test reaches on data with exactly the expected counts.

    The largest coverage 1 - t, over a grid of t, whose Clopper-Pearson bound
    evaluated at the expected number accepted n(1 - t) and expected errors
    n(1 - t)^2 / 4 is <= ALPHA. About 0.30 for n = 1000 (vs 0.4 oracle).
    """
    t = np.linspace(0.0, 0.99, 100)
    k = n * (1.0 - t)
    e = k * (1.0 - t) / 4.0
    passes = stats.beta.ppf(1.0 - DELTA, e + 1.0, k - e) <= ALPHA
    return float(np.max(1.0 - t[passes]))


@pytest.mark.parametrize(
    ("draw", "true_risk", "min_accepted"),
    [
        (_draw_continuous, _true_risk_continuous, 10),
        (_draw_continuous, _true_risk_continuous, 100),
        (_draw_grid, _true_risk_grid, 10),
    ],
    ids=["continuous-min10", "continuous-min100", "ties-min10"],
)
def test_guarantee_holds_in_simulation(
    draw: Callable[[np.random.Generator, int], np.ndarray],
    true_risk: Callable[[float], float],
    min_accepted: int,
) -> None:
    trials, n = 300, 1000
    rng = np.random.default_rng(20240601)
    violations = 0
    coverages = np.empty(trials)
    for i in range(trials):
        conf = draw(rng, n)
        correct = rng.random(n) >= (1.0 - conf) / 2.0
        cal = calibrate_threshold(
            conf, correct, alpha=ALPHA, delta=DELTA, min_accepted=min_accepted
        )
        violations += true_risk(cal.threshold) > ALPHA
        coverages[i] = cal.coverage

    # Each trial violates with probability p <= DELTA, independently, so the
    # count is stochastically below Binomial(trials, DELTA). Allowing its
    # 99.9% quantile (47 of 300) bounds a spurious failure at 0.1% even when
    # p equals DELTA exactly; the seed makes the test deterministic anyway.
    slack_limit = stats.binom.ppf(0.999, trials, DELTA)
    assert violations <= slack_limit, (violations, slack_limit)

    # Not vacuous: fixed-sequence testing with a fine grid sometimes stops
    # early on an unlucky error near the top (about a third of trials with
    # min_accepted=10), so ask for half the coverage of a single well-placed
    # test, which a procedure that (nearly) always defers cannot meet.
    reference = _reference_coverage(n)
    assert reference > 0.25
    assert coverages.mean() > 0.5 * reference, (coverages.mean(), reference)
    assert np.quantile(coverages, 0.9) > 0.8 * reference


# --- Fixed-sequence behaviour --------------------------------------------------


def test_fixed_sequence_stops_at_first_failure() -> None:
    # Top 30 correct, next 20 wrong, last 500 correct: the test fails at the
    # 31st sample, but the lowest threshold (20 errors in 550) would pass.
    conf = np.linspace(1.0, 0.45, 550)
    correct = np.ones(550, dtype=bool)
    correct[30:50] = False
    assert clopper_pearson_upper(20, 550, DELTA) <= ALPHA
    assert clopper_pearson_upper(1, 31, DELTA) > ALPHA

    cal = calibrate_threshold(conf, correct, alpha=ALPHA, delta=DELTA)

    assert cal.threshold == conf[29]
    assert cal.n_accepted == 30
    assert cal.n_errors_accepted == 0
    assert cal.coverage == pytest.approx(30 / 550)
    assert cal.risk_upper_bound == pytest.approx(1 - DELTA ** (1 / 30))
    assert cal.risk_upper_bound <= ALPHA
    assert cal.method == "risk"


def test_candidates_below_min_accepted_are_skipped_not_failed() -> None:
    # One error among the top 5 and 500 correct below it. With the default
    # min_accepted the first real test (22 accepted, 1 error) fails; with
    # min_accepted=100 the first test sees 1 error in 100 and everything passes.
    conf = np.linspace(1.0, 0.0, 505)
    correct = np.ones(505, dtype=bool)
    correct[2] = False

    assert math.isinf(calibrate_threshold(conf, correct, alpha=ALPHA).threshold)
    cal = calibrate_threshold(conf, correct, alpha=ALPHA, min_accepted=100)
    assert cal.threshold == 0.0
    assert cal.coverage == 1.0
    assert cal.n_errors_accepted == 1


def test_ties_are_accepted_together() -> None:
    conf = [0.9] * 30 + [0.5] * 30
    correct = [True] * 30 + [False] * 30
    cal = calibrate_threshold(conf, correct, alpha=ALPHA)
    assert cal.threshold == 0.9
    assert cal.n_accepted == 30
    assert cal.n_samples == 60


def test_lists_arrays_and_int_labels_agree() -> None:
    rng = np.random.default_rng(1)
    conf = rng.random(300)
    correct = rng.random(300) < 0.5 + 0.5 * conf
    from_arrays = calibrate_threshold(conf, correct, alpha=0.2)
    from_lists = calibrate_threshold(conf.tolist(), [int(v) for v in correct], alpha=0.2)
    from_floats = calibrate_threshold(conf, correct.astype(float), alpha=0.2)
    assert from_arrays == from_lists == from_floats
    assert math.isfinite(from_arrays.threshold)


# --- Edge cases --------------------------------------------------------------------


def test_all_correct_accepts_everything() -> None:
    conf = np.random.default_rng(2).uniform(0.2, 0.9, 50)
    cal = calibrate_threshold(conf, [True] * 50, alpha=ALPHA, delta=DELTA)
    assert cal.threshold == conf.min()
    assert cal.coverage == 1.0
    assert cal.n_accepted == 50
    assert cal.n_errors_accepted == 0
    assert cal.empirical_risk == 0.0
    assert cal.risk_upper_bound == pytest.approx(1 - DELTA ** (1 / 50))


def test_none_correct_defers_everything() -> None:
    conf = np.random.default_rng(3).random(50)
    cal = calibrate_threshold(conf, [False] * 50, alpha=ALPHA)
    assert cal.threshold == math.inf
    assert cal.coverage == 0.0
    assert cal.n_accepted == 0
    assert cal.n_errors_accepted == 0
    assert math.isnan(cal.empirical_risk)
    assert cal.risk_upper_bound == 1.0
    assert not (conf >= cal.threshold).any()


def test_all_correct_but_too_few_to_certify_defers_everything() -> None:
    # 15 correct samples give a bound of 1 - 0.1**(1/15) = 0.142 > alpha.
    cal = calibrate_threshold(np.linspace(0.5, 1.0, 15), [True] * 15, alpha=ALPHA)
    assert cal.threshold == math.inf
    assert cal.coverage == 0.0


def test_too_few_samples_raises() -> None:
    with pytest.raises(ValueError, match=r"too few samples: got 5, need at least"):
        calibrate_threshold([0.5] * 5, [True] * 5, alpha=ALPHA)
    with pytest.raises(ValueError, match=r"too few samples: got 20.*min_accepted=30"):
        calibrate_threshold([0.5] * 20, [True] * 20, alpha=ALPHA, min_accepted=30)


_GOOD_CONF = [0.1 * i for i in range(11)] * 2
_GOOD_LABELS = [True, False] * 11


@pytest.mark.parametrize(
    ("conf", "labels", "kwargs", "message"),
    [
        (_GOOD_CONF, _GOOD_LABELS[:-1], {}, r"same length.*22 confidences.*21"),
        ([], [], {}, r"confidences is empty"),
        ([*_GOOD_CONF[:-1], math.nan], _GOOD_LABELS, {}, r"finite.*index 21"),
        ([*_GOOD_CONF[:-1], math.inf], _GOOD_LABELS, {}, r"finite"),
        ([*_GOOD_CONF[:-1], 1.5], _GOOD_LABELS, {}, r"\[0, 1\].*1\.5.*index 21"),
        ([-0.1, *_GOOD_CONF[1:]], _GOOD_LABELS, {}, r"\[0, 1\].*index 0"),
        (["0.5"] * 22, _GOOD_LABELS, {}, r"confidences must be numeric"),
        ([[0.5, 0.5]] * 11, _GOOD_LABELS, {}, r"1-D"),
        (_GOOD_CONF, [*_GOOD_LABELS[:-1], 2], {}, r"booleans or 0/1.*2.*index 21"),
        (_GOOD_CONF, [*_GOOD_LABELS[:-1], 0.5], {}, r"booleans or 0/1.*0\.5"),
        (_GOOD_CONF, [*_GOOD_LABELS[:-1], None], {}, r"booleans or 0/1.*None"),
        (_GOOD_CONF, ["yes"] * 22, {}, r"booleans or 0/1"),
        (_GOOD_CONF, _GOOD_LABELS, {"alpha": 0.0}, r"alpha must be in \(0, 1\)"),
        (_GOOD_CONF, _GOOD_LABELS, {"alpha": 1.0}, r"alpha must be in \(0, 1\)"),
        (_GOOD_CONF, _GOOD_LABELS, {"alpha": math.nan}, r"alpha must be in"),
        (_GOOD_CONF, _GOOD_LABELS, {"delta": 1.5}, r"delta must be in \(0, 1\)"),
        (_GOOD_CONF, _GOOD_LABELS, {"min_accepted": 0}, r"min_accepted must be"),
    ],
)
def test_invalid_input_raises_naming_the_problem(
    conf: list[object], labels: list[object], kwargs: dict[str, float], message: str
) -> None:
    kwargs = {"alpha": ALPHA, **kwargs}
    with pytest.raises(ValueError, match=message):
        calibrate_threshold(conf, labels, **kwargs)  # type: ignore[arg-type]


def test_calibration_is_frozen_and_round_trips_json() -> None:
    cal = calibrate_threshold([0.5] * 30, [False] * 30, alpha=ALPHA)
    with pytest.raises(ValidationError):
        cal.threshold = 0.3  # type: ignore[misc]
    restored = ThresholdCalibration.model_validate_json(cal.model_dump_json())
    assert restored.threshold == math.inf
    assert math.isnan(restored.empirical_risk)
    assert restored.model_dump(exclude={"empirical_risk"}) == cal.model_dump(
        exclude={"empirical_risk"}
    )


# --- Clopper-Pearson ----------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 10, 22, 100, 1000])
@pytest.mark.parametrize("delta", [0.05, 0.1, 0.2])
def test_clopper_pearson_zero_errors_closed_form(n: int, delta: float) -> None:
    assert clopper_pearson_upper(0, n, delta) == pytest.approx(1 - delta ** (1 / n))


@pytest.mark.parametrize(("errors", "n"), [(1, 10), (5, 50), (37, 400), (99, 100)])
def test_clopper_pearson_matches_exact_binomial(errors: int, n: int) -> None:
    bound = clopper_pearson_upper(errors, n, DELTA)
    # A one-sided 1 - delta bound is the upper end of a two-sided 1 - 2 delta
    # exact interval, and by definition P(Binomial(n, bound) <= errors) = delta.
    ci = stats.binomtest(errors, n).proportion_ci(1 - 2 * DELTA, method="exact")
    assert bound == pytest.approx(ci.high, rel=1e-9)
    assert stats.binom.cdf(errors, n, bound) == pytest.approx(DELTA, rel=1e-6)
    assert bound > errors / n


def test_clopper_pearson_degenerate_cases_and_monotonicity() -> None:
    assert clopper_pearson_upper(0, 0, DELTA) == 1.0
    assert clopper_pearson_upper(7, 7, DELTA) == 1.0
    assert clopper_pearson_upper(3, 100, DELTA) < clopper_pearson_upper(4, 100, DELTA)
    assert clopper_pearson_upper(3, 200, DELTA) < clopper_pearson_upper(3, 100, DELTA)
    assert clopper_pearson_upper(3, 100, 0.2) < clopper_pearson_upper(3, 100, 0.05)


@pytest.mark.parametrize(
    ("errors", "n", "delta", "message"),
    [
        (1, -1, 0.1, r"n must be >= 0"),
        (-1, 10, 0.1, r"errors must be in"),
        (11, 10, 0.1, r"errors must be in"),
        (1, 10, 0.0, r"delta must be in"),
        (1, 10, 1.0, r"delta must be in"),
    ],
)
def test_clopper_pearson_invalid_args(errors: int, n: int, delta: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clopper_pearson_upper(errors, n, delta)


# --- Deferral-rate mode -------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_deferral_rate_defers_about_rate(rate: float) -> None:
    conf = np.random.default_rng(4).random(1000)
    cal = threshold_for_deferral_rate(conf, rate)
    deferred = float(np.mean(conf < cal.threshold))
    assert deferred == pytest.approx(rate, abs=1 / 1000)
    assert cal.coverage == pytest.approx(1 - rate, abs=1 / 1000)
    assert cal.method == "deferral_rate"
    assert cal.alpha is None
    # No labels: the risk fields are unknown.
    assert math.isnan(cal.empirical_risk)
    assert cal.risk_upper_bound == 1.0
    assert cal.n_errors_accepted == 0
    assert cal.delta is None


def test_deferral_rate_extremes_and_ties() -> None:
    conf = np.random.default_rng(5).random(200)
    everything = threshold_for_deferral_rate(conf, 0.0)
    assert everything.threshold == conf.min()
    assert everything.coverage == 1.0
    nothing = threshold_for_deferral_rate(conf, 1.0)
    assert nothing.threshold == math.inf
    assert nothing.coverage == 0.0
    # Ties at the threshold are accepted, so at most `rate` is deferred.
    tied = [0.2] * 10 + [0.5] * 10
    assert threshold_for_deferral_rate(tied, 0.3).threshold == 0.2
    assert threshold_for_deferral_rate(tied, 0.3).coverage == 1.0
    assert threshold_for_deferral_rate(tied, 0.5).threshold == 0.5
    assert threshold_for_deferral_rate(tied, 0.5).coverage == 0.5


def test_deferral_rate_with_labels_fills_risk_fields() -> None:
    rng = np.random.default_rng(6)
    conf = rng.random(500)
    correct = rng.random(500) < conf
    cal = threshold_for_deferral_rate(conf, 0.4, correct=correct, delta=0.05)
    accepted = conf >= cal.threshold
    errors = int((~correct[accepted]).sum())
    assert cal.n_accepted == int(accepted.sum()) == 300
    assert cal.n_errors_accepted == errors
    assert cal.empirical_risk == pytest.approx(errors / 300)
    assert cal.risk_upper_bound == pytest.approx(clopper_pearson_upper(errors, 300, 0.05))
    assert cal.delta == 0.05
    assert cal.alpha is None


@pytest.mark.parametrize(
    ("rate", "kwargs", "message"),
    [
        (-0.1, {}, r"rate must be in \[0, 1\]"),
        (1.1, {}, r"rate must be in \[0, 1\]"),
        (math.nan, {}, r"rate must be in"),
        (0.5, {"correct": [True] * 3}, r"same length"),
        (0.5, {"delta": 0.0}, r"delta must be in"),
    ],
)
def test_deferral_rate_invalid(rate: float, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        threshold_for_deferral_rate([0.1, 0.5, 0.9, 0.3], rate, **kwargs)  # type: ignore[arg-type]


# --- Online recalibration ----------------------------------------------------------


def _feed(recal: OnlineRecalibrator, conf: np.ndarray, agreed: np.ndarray) -> list[int]:
    """Observe all pairs; return the 1-based observation numbers that recalibrated."""
    return [
        i
        for i, (c, a) in enumerate(zip(conf, agreed, strict=True), start=1)
        if recal.observe(float(c), bool(a)) is not None
    ]


def test_online_threshold_stays_initial_before_min_samples() -> None:
    recal = OnlineRecalibrator(ALPHA, initial_threshold=0.99, window=200, every=50, min_samples=100)
    conf = np.random.default_rng(7).uniform(0.3, 0.9, 100)
    for c in conf[:99]:
        assert recal.observe(float(c), True) is None
        assert recal.threshold == 0.99
    assert recal.calibration is None

    cal = recal.observe(float(conf[99]), True)
    assert cal is not None
    assert recal.calibration is cal
    # All agreed, so the new threshold accepts every sample in the window.
    assert recal.threshold == cal.threshold == conf.min() != 0.99
    assert cal.n_samples == 100


def test_online_recalibrates_every_n_and_window_is_bounded() -> None:
    recal = OnlineRecalibrator(ALPHA, initial_threshold=0.5, window=200, every=50, min_samples=120)
    rng = np.random.default_rng(8)
    conf = rng.random(1000)
    agreed = rng.random(1000) < 0.5 + 0.5 * conf
    triggered = _feed(recal, conf, agreed)

    # Multiples of 50 once 120 samples are held: 150, 200, ..., 1000.
    assert triggered == list(range(150, 1001, 50))
    assert recal.n_observed == 1000
    assert recal.n_held == 200
    cal = recal.calibration
    assert cal is not None
    assert cal.n_samples == 200
    # The last calibration equals a batch run on the last `window` samples.
    assert cal == calibrate_threshold(conf[-200:], agreed[-200:], alpha=ALPHA)


def test_online_rejects_bad_confidence_without_recording_it() -> None:
    recal = OnlineRecalibrator(ALPHA, initial_threshold=0.5)
    recal.observe(0.7, True)
    for bad in (math.nan, -0.1, 1.5, math.inf):
        with pytest.raises(ValueError, match=r"confidence must be finite"):
            recal.observe(bad, True)
    assert recal.n_observed == recal.n_held == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0.0}, r"alpha must be in"),
        ({"delta": 1.0}, r"delta must be in"),
        ({"window": 50, "min_samples": 100}, r"min_samples .* <= window"),
        ({"min_samples": 5, "min_accepted": 10}, r"min_accepted .* <= min_samples"),
        ({"every": 0}, r"every must be >= 1"),
        ({"initial_threshold": math.nan}, r"initial_threshold"),
    ],
)
def test_online_constructor_validation(kwargs: dict[str, float], message: str) -> None:
    params: dict[str, float] = {"alpha": ALPHA, "initial_threshold": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        OnlineRecalibrator(**params)  # type: ignore[arg-type]


def test_online_is_thread_safe() -> None:
    recal = OnlineRecalibrator(ALPHA, initial_threshold=0.5, window=300, every=25, min_samples=100)
    results: list[ThresholdCalibration | None] = []
    results_lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(250):
            c = float(rng.random())
            out = recal.observe(c, bool(rng.random() < 0.5 + 0.5 * c))
            _ = recal.threshold
            with results_lock:
                results.append(out)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert recal.n_observed == 1000
    assert recal.n_held == 300
    # Every multiple of 25 from 100 to 1000 triggers exactly once.
    assert sum(r is not None for r in results) == len(range(100, 1001, 25))


# --- Collecting confidences through the cascade --------------------------------------


def _contains(answer: str, gold: str) -> bool:
    return gold in answer


def test_collect_runs_weak_model_and_judge_only(weak, strong, bank) -> None:
    cascade = create_intercascade(weak, strong, bank=bank)
    got = collect_confidences(cascade, [(EASY, "Paris"), (APPLES, "12")], _contains)

    assert got.correct == [True, False]  # without a strategy the weak model adds: 7
    assert got.answers == ["Paris.", "The total is 7."]
    assert got.confidences[0] == pytest.approx(math.exp(-0.05))
    assert got.confidences[1] == pytest.approx(math.exp(-1.5))
    assert got.signals == ["logprob_mean", "logprob_mean"]
    assert set(got.usage[0]) == {"weak"}
    # Calibration never pays for the strong model and never writes to the bank.
    assert strong.calls == []
    assert len(bank) == 0


def test_collect_injects_the_banks_strategies(weak, strong, bank) -> None:
    cascade = create_intercascade(weak, strong, bank=bank)
    cascade.invoke(APPLES)  # deferred: the strong answer is distilled into the bank
    got = collect_confidences(cascade, [(APPLES_SIBLING, "30")], _contains)
    # The sibling question retrieves the strategy, so the weak answer is right and sure.
    assert got.correct == [True]
    assert got.confidences[0] == pytest.approx(math.exp(-0.05))
    assert len(bank) == 1


def test_collect_keeps_calibration_out_of_the_checkpointer(weak, strong) -> None:
    saver = InMemorySaver()
    cascade = create_intercascade(weak, strong, bank=None, checkpointer=saver)
    got = collect_confidences(cascade, [(EASY, "Paris"), (EASY, "Paris")], _contains)
    assert got.correct == [True, True]
    assert list(saver.list(None)) == []


def test_collect_contains_judge_failures_as_the_cascade_does(weak, strong) -> None:
    def broken(messages: object, answer: object) -> float:
        raise RuntimeError("judge down")

    cascade = create_intercascade(weak, strong, bank=None, judge=broken)
    got = collect_confidences(cascade, [(EASY, "Paris")], _contains)
    # The cascade would defer this answer, so calibration sees confidence 0.
    assert got.confidences == [0.0]
    assert got.correct == [True]
    assert "judge down" in got.errors[0][0]


async def test_acollect_matches_collect_and_feeds_calibration(weak, strong) -> None:
    cascade = create_intercascade(weak, strong, bank=None)
    examples = [(EASY, "Paris")] * 25 + [(APPLES, "12")] * 25
    got = await acollect_confidences(cascade, examples, _contains, config={"max_concurrency": 4})
    assert got == collect_confidences(cascade, examples, _contains)
    cal = got.calibrate(alpha=ALPHA, delta=DELTA)
    # The 25 sure, right answers are accepted and the 25 unsure, wrong ones deferred.
    assert cal.threshold == pytest.approx(math.exp(-0.05))
    assert cal.n_accepted == 25 and cal.n_errors_accepted == 0


def test_collect_needs_examples(weak, strong) -> None:
    with pytest.raises(ValueError, match="examples is empty"):
        collect_confidences(create_intercascade(weak, strong, bank=None), [], _contains)


# --- Online recalibration through the graph ----------------------------------------
#
# Questions carry the weak model's confidence; the weak model is right on the
# confident ones (c >= 0.5) and wrong on the others; the strong model is always
# right, so agreement is a faithful label here.


def _question(i: int, confidence: float) -> str:
    return f"Q{i}: what is {i} + 1? [c={confidence:.3f}]"


def _parse(messages: list[BaseMessage]) -> tuple[int, float]:
    found = re.match(r"Q(\d+):.*\[c=([\d.]+)\]", messages[-1].text)
    assert found is not None
    return int(found.group(1)), float(found.group(2))


def _weak_reply(messages: list[BaseMessage]) -> str:
    i, confidence = _parse(messages)
    return f"The answer is {i + 1 if confidence >= 0.5 else i + 2}."


def _weak_logprob(messages: list[BaseMessage], reply: str) -> float:
    return math.log(_parse(messages)[1])


def _strong_reply(messages: list[BaseMessage]) -> str:
    return f"It is {_parse(messages)[0] + 1}."


def test_online_recalibration_learns_the_threshold_from_deferred_queries() -> None:
    weak = ScriptedChatModel(respond=_weak_reply, logprob=_weak_logprob)
    strong = ScriptedChatModel(respond=_strong_reply)
    recal = OnlineRecalibrator(
        ALPHA, initial_threshold=1.0, window=100, every=50, min_samples=50, min_accepted=10
    )
    cascade = create_intercascade(weak, strong, bank=None, recalibrator=recal)
    rng = np.random.default_rng(11)
    confidences = np.round(np.r_[rng.uniform(0.6, 0.95, 40), rng.uniform(0.05, 0.45, 10)], 3)
    for i, c in enumerate(confidences):
        out = cascade.invoke(_question(i, c))
        assert out["route"] == "strong" and out["threshold"] == 1.0  # defer everything at first

    # 50 deferred queries, each labelled by agreement: the threshold is what a
    # batch calibration on true labels gives, and the cascade starts accepting.
    assert recal.n_observed == 50
    batch = calibrate_threshold(confidences, confidences >= 0.5, alpha=ALPHA)
    assert recal.threshold == pytest.approx(batch.threshold)
    assert 0.3 < recal.threshold <= 0.6
    calls = len(strong.calls)
    sure = cascade.invoke(_question(100, 0.9))
    unsure = cascade.invoke(_question(101, 0.3))
    assert sure["route"] == "weak" and sure["threshold"] == recal.threshold
    assert unsure["route"] == "strong"
    assert len(strong.calls) == calls + 1
    assert recal.n_observed == 51  # only the deferred query was labelled


def test_online_recalibration_uses_the_answer_extractor_and_skips_unjudged() -> None:
    weak = ScriptedChatModel(respond=lambda m: "Answer: (B)", logprob=-0.1)
    strong = ScriptedChatModel(respond=lambda m: "I pick (B).")
    recal = OnlineRecalibrator(ALPHA, initial_threshold=1.0, window=20, every=20, min_samples=20)
    cascade = create_intercascade(
        weak, strong, bank=None, recalibrator=recal, answer_extractor=extract_choice
    )
    for _ in range(20):
        cascade.invoke("Which one?")
    cal = recal.calibration
    assert cal is not None and cal.n_samples == 20 and cal.n_errors_accepted == 0

    def broken(messages: object, answer: object) -> float:
        raise RuntimeError("judge down")

    unjudged = create_intercascade(weak, strong, bank=None, judge=broken, recalibrator=recal)
    unjudged.invoke("Which one?")
    assert recal.n_observed == 20  # a deferral the judge never scored is no label
