"""benchmarks/intents: the Zipf stream and the simulated teacher behave as the README says."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.evaluation import Example
from langchain_intercascade.evaluation.records import QueryRecord
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.testing import BagOfWordsEmbeddings, ScriptedChatModel

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "intents"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARK))
    try:
        import analyze
        import run
        import teacher

        yield run, teacher, analyze
    finally:
        sys.path.remove(str(BENCHMARK))


LABELS = LabelSet(labels=tuple(f"intent_{i}" for i in range(20)))
EXAMPLES = [
    Example(id=str(n), question=f"message {n} about intent {n % 20}", answer=f"intent_{n % 20}")
    for n in range(800)
]


def _words(text: str) -> int:
    return len(text.split())


def test_the_stream_is_skewed_distinct_and_seeded(bench):
    run, _, _ = bench
    stream = run.zipf_draw(EXAMPLES, LABELS, 300, seed=3, exponent=1.0)
    assert len({e.id for e in stream}) == 300
    counts = sorted(Counter(e.answer for e in stream).values(), reverse=True)
    assert counts[0] >= 3 * counts[len(counts) // 2]  # a head of common intents
    assert run.zipf_draw(EXAMPLES, LABELS, 300, seed=3, exponent=1.0) == stream
    assert run.zipf_draw(EXAMPLES, LABELS, 300, seed=4, exponent=1.0) != stream


def test_the_simulated_teacher_is_right_as_often_as_asked(bench):
    _, teacher, _ = bench
    model = teacher.simulated_teacher(LABELS, EXAMPLES, accuracy=0.8, seed=0, count_tokens=_words)
    prompts = LABELS.prompts()
    answers = [
        model.invoke(prompts.with_task([("human", e.question)])).text for e in EXAMPLES
    ]  # fmt: skip
    right = sum(a == e.answer for a, e in zip(answers, EXAMPLES, strict=True)) / len(EXAMPLES)
    assert 0.75 <= right <= 0.85
    assert all(a in LABELS for a in answers)
    again = teacher.simulated_teacher(LABELS, EXAMPLES, accuracy=0.8, seed=0, count_tokens=_words)
    assert again.invoke(prompts.with_task([("human", EXAMPLES[5].question)])).text == answers[5]


def test_the_simulated_teacher_teaches_the_label_it_answered_and_is_billed(bench):
    _, teacher, _ = bench
    model = teacher.simulated_teacher(LABELS, EXAMPLES, accuracy=1.0, seed=0, count_tokens=_words)
    weak = ScriptedChatModel(respond=lambda m: "intent_0", logprob=-5.0)
    cascade = create_intercascade(
        weak, model, bank=StrategyBank(BagOfWordsEmbeddings()), options=LABELS.options()
    )
    out = cascade.invoke(EXAMPLES[7].question)
    assert out["route"] == "strong" and out["answer"] == "intent_7"
    assert LABELS.label_of(out["new_strategy"].strategy) == "intent_7"
    # Billed in the counter's tokens: the prompt lists all 20 labels.
    assert out["usage"]["strong"]["answer"]["input_tokens"] >= 20


def _record(position: int, confidence: float, weak: bool, strong: bool) -> QueryRecord:
    return QueryRecord(
        position=position, example_id=str(position), gold="g", reply="r", predicted="g",
        correct=strong, weak_correct=weak, route="strong", confidence=confidence,
    )  # fmt: skip


def test_replayed_thresholds_find_the_fewest_strong_calls_for_an_accuracy(bench):
    *_, analyze = bench
    # Confident weak answers are right; the strong model is right on all but the last.
    records = [_record(i, c, w, s) for i, (c, w, s) in enumerate(
        [(0.9, True, True), (0.8, True, True), (0.3, False, True), (0.2, False, False)]
    )]  # fmt: skip
    assert analyze._strong_calls_for(records, 0.75) == 0.5  # accept the two confident ones
    assert analyze._strong_calls_for(records, 0.8) is None  # the strong model reaches only 0.75
    accepted_once = [records[0].model_copy(update={"route": "weak"}), *records[1:]]
    assert analyze._strong_calls_for(accepted_once, 0.5) is None  # not a deferred-all run
