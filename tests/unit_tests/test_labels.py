"""Label tasks (``labels``): reading, grading and loading labels, and a cascade that learns them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_intercascade import StrategyBank, create_intercascade
from langchain_intercascade.evaluation import (
    EvaluationConfig,
    Example,
    load_labelled,
    run_evaluation,
)
from langchain_intercascade.judges import LabelAgreementJudge
from langchain_intercascade.labels import LabelSet
from langchain_intercascade.strategies import RetrievedStrategy, Strategy, StrategyRecord
from langchain_intercascade.testing import SUPPORT_LABELS, SUPPORT_TICKETS, fake_label_models

LABELS = SUPPORT_LABELS


@pytest.mark.parametrize(
    "reply",
    [
        "card_arrival",
        "Card Arrival",
        "card-arrival",
        '"card_arrival"',
        "**card_arrival**",
        "Intent: card_arrival",
        "The label is `card_arrival`.",
        "card_arrival - the customer waits for a card",
        "\n\ncard_arrival\nBecause the card is late.",
    ],
)
def test_extract_normalizes_a_label(reply: str) -> None:
    assert LABELS.extract(reply) == "card_arrival"


@pytest.mark.parametrize("reply", ["card_delivery", "", "I am not sure.", "arrival"])
def test_an_answer_outside_the_set_is_no_answer(reply: str) -> None:
    assert LABELS.extract(reply) is None
    assert not LABELS.grade(reply, "card_arrival")


def test_grade_rejects_a_gold_label_outside_the_set() -> None:
    with pytest.raises(ValueError, match="'card_delivery' is not one of the task's labels"):
        LABELS.grade("card_arrival", "card_delivery")


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["refund", " "], "must not be blank"), (["Card arrival", "card_arrival"], "same label")],
)
def test_label_sets_reject_blank_and_clashing_labels(labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelSet(labels=tuple(labels))


def test_label_files_are_json_lists_or_lines(tmp_path: Path) -> None:
    listed = tmp_path / "labels.json"
    listed.write_text(json.dumps(list(LABELS.labels)))
    lines = tmp_path / "labels.txt"
    lines.write_text("\n".join(LABELS.labels) + "\n\n")
    assert LabelSet.from_file(listed) == LabelSet.from_file(lines) == LABELS
    bad = tmp_path / "bad.json"
    bad.write_text('[1, "refund"]')
    with pytest.raises(ValueError, match="expected a JSON list of label strings"):
        LabelSet.from_file(bad)


def test_load_labelled_reads_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("message,category,id\nWhere is my card?,Card Arrival,7\n")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps({"text": "Where is my card?", "label": "card_arrival"}) + "\n")
    [from_csv] = load_labelled(csv_file, LABELS, text_key="message", label_key="category")
    [from_jsonl] = load_labelled(jsonl, LABELS)
    assert from_csv.answer == from_jsonl.answer == "card_arrival"  # as listed
    assert from_csv.question == "Where is my card?" and from_csv.metadata == {"id": "7"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("text,label\nWhere is my card?,card_delivery\n", r"data.csv:2: label 'card_delivery'"),
        ("text\nWhere is my card?\n", r"data.csv:2: missing column 'label'"),
        ("text,label\n ,card_arrival\n", r"data.csv:2: empty 'text'"),
    ],
)
def test_load_labelled_names_the_bad_row(tmp_path: Path, rows: str, message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(rows)
    with pytest.raises(ValueError, match=message):
        load_labelled(path, LABELS)


def test_the_label_list_comes_first_in_both_models_prompts() -> None:
    weak, strong, embeddings = fake_label_models()
    cascade = create_intercascade(
        weak, strong, bank=StrategyBank(embeddings), options=LABELS.options(threshold=0.5)
    )
    cascade.invoke(SUPPORT_TICKETS[0][0])
    task = LABELS.prompts().task_system
    # Weak answer, strong answer and distillation: one cached prefix, the label list.
    for call in [*weak.calls, *strong.calls]:
        assert isinstance(call[0], SystemMessage) and call[0].text == task


def test_label_hints_follow_the_message_in_the_users_turn() -> None:
    weak, strong, embeddings = fake_label_models()
    cascade = create_intercascade(
        weak, strong, bank=StrategyBank(embeddings), options=LABELS.options(threshold=0.5)
    )
    ticket = SUPPORT_TICKETS[0][0]
    cascade.invoke(ticket)
    cascade.invoke(ticket)
    system, turn = weak.calls[-1]
    assert system.text == LABELS.prompts().task_system  # the cached prefix, unchanged
    assert turn.text.startswith(ticket) and "[Strategy 1] card_arrival" in turn.text
    assert turn.text.endswith("written as listed, and nothing else.")


def test_a_recurring_intent_is_distilled_once_and_then_answered_weak() -> None:
    weak, strong, embeddings = fake_label_models()
    bank = StrategyBank(embeddings)
    cascade = create_intercascade(weak, strong, bank=bank, options=LABELS.options(threshold=0.5))
    stream = [*SUPPORT_TICKETS, *SUPPORT_TICKETS]
    outs = [cascade.invoke(ticket) for ticket, _ in stream]
    assert [out["answer"] for out in outs] == [label for _, label in stream]
    assert [out["route"] for out in outs] == ["strong"] * 4 + ["weak"] * 4
    assert sorted(record.strategy.title for record in bank.records()) == sorted(LABELS.labels)


def test_a_strategy_naming_no_label_is_not_stored() -> None:
    weak, _, embeddings = fake_label_models()
    off_list = '{"title": "card_delivery", "applies_when": "A card is late.", "steps": ["x"]}'
    _, strong, _ = fake_label_models()
    strong.respond = lambda m: off_list if m[-1].text.startswith("Message:") else "card_arrival"
    bank = StrategyBank(embeddings)
    cascade = create_intercascade(weak, strong, bank=bank, options=LABELS.options(threshold=0.5))
    out = cascade.invoke(SUPPORT_TICKETS[0][0])
    assert out["answer"] == "card_arrival" and out["route"] == "strong"
    assert len(bank) == 0 and out["new_strategy"] is None


def _shown(*titles: str) -> list[RetrievedStrategy]:
    return [
        RetrievedStrategy(
            record=StrategyRecord(id=t, strategy=Strategy(title=t, applies_when="x", steps=["y"])),
            score=0.9,
        )
        for t in titles
    ]


@pytest.mark.parametrize(
    ("shown", "agreement", "confidence"),
    [
        (("card_arrival", "exchange_rate"), 1.0, 0.8),
        (("exchange_rate", "card_arrival"), 0.5, 0.55),
        (("exchange_rate",), 0.0, 0.3),
        ((), 0.0, 0.3),
    ],
)
def test_label_agreement_rises_with_the_shown_labels(
    shown: tuple[str, ...], agreement: float, confidence: float
) -> None:
    prompts = LABELS.prompts()
    judge = LabelAgreementJudge(LABELS, judge=lambda messages, answer: 0.6, prompts=prompts)
    hints = [SystemMessage(prompts.format_strategies(_shown(*shown)))] if shown else []
    verdict = judge.judge([*hints, HumanMessage("Where is my card?")], AIMessage("Card arrival"))
    assert verdict.details["agreement"] == agreement
    assert verdict.confidence == pytest.approx(confidence)


def _examples(tickets: list[tuple[str, str]]) -> list[Example]:
    return [Example(id=str(i), question=q, answer=a) for i, (q, a) in enumerate(tickets)]


def test_evaluation_calibrates_on_a_separate_set_and_records_the_shown_labels(
    tmp_path: Path,
) -> None:
    weak, strong, embeddings = fake_label_models()
    config = EvaluationConfig(
        labels=LABELS,
        configurations=["cascade", "intercascade"],
        shuffle=False,
        alpha=0.5,
        output_dir=tmp_path,
        progress=False,
        n_bootstrap=100,
    )
    stream = _examples([*SUPPORT_TICKETS, *SUPPORT_TICKETS])
    held_out = _examples(list(SUPPORT_TICKETS) * 5)
    result = run_evaluation(
        config,
        weak=weak,
        strong=strong,
        embeddings=embeddings,
        examples=stream,
        calibration_set=held_out,
    )
    # Unaided, the weak model is unsure and mostly wrong: no threshold is certified.
    assert result.calibration is not None and result.calibration.n_samples == 20
    assert result.calibration.threshold == float("inf")
    records = result.records["intercascade"]
    assert len(records) == 8  # the calibration set is not part of the stream
    assert [r.strategy_titles[:1] for r in records[4:]] == [[label] for _, label in SUPPORT_TICKETS]
    assert [r.weak_correct for r in records[4:]] == [True] * 4
    assert [r.weak_correct for r in result.records["cascade"][4:]] == [True, False, False, False]
    with pytest.raises(ValueError, match="not both"):
        run_evaluation(
            config.model_copy(update={"calibration_examples": 2}),
            weak=weak,
            strong=strong,
            embeddings=embeddings,
            examples=stream,
            calibration_set=held_out,
        )
