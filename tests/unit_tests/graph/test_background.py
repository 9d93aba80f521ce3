"""Distillations after the answer (graph/background.py): bounded, or handed to a callback."""

from __future__ import annotations

import time
from typing import Any

from langchain_intercascade import create_intercascade

QUESTIONS = [
    "Sam has 3 boxes with 4 pens in each box.",
    "Translate the word library into German please.",
    "Translate the word window into German please.",
    "Translate the word garden into German please.",
    "Translate the word kitchen into German please.",
]


def test_finished_distillations_nobody_waits_for_are_bounded_and_the_drop_counted(
    weak, strong, bank
):
    # score_threshold=1.0: no question retrieves another's strategy, so each is distilled.
    cascade = create_intercascade(
        weak, strong, bank=bank, distill_in_background=True, distill_kept=2, score_threshold=1.0
    )
    for question in QUESTIONS:
        cascade.invoke(question)
    while cascade.context.background.pending:
        time.sleep(0.01)
    assert cascade.dropped_distillations == 3
    done = cascade.wait_for_distillations()
    assert len(done) == 2 and all("new_strategy" in update for update in done)
    assert len(bank) >= 2  # what was dropped was the update, never the strategy


def test_finished_distillations_can_go_to_a_callback_instead(weak, strong, bank):
    handed: list[dict[str, Any]] = []
    cascade = create_intercascade(
        weak, strong, bank=bank, distill_in_background=True, on_distilled=handed.append
    )
    cascade.invoke(QUESTIONS[0])
    assert cascade.wait_for_distillations() == []
    assert handed[0]["new_strategy"].strategy.title == "Total from equal groups"
    assert cascade.dropped_distillations == 0


def test_a_callback_that_raises_drops_the_update_and_counts_it(weak, strong, bank):
    def refuse(update: dict[str, Any]) -> None:
        raise RuntimeError("full")

    cascade = create_intercascade(
        weak, strong, bank=bank, distill_in_background=True, on_distilled=refuse
    )
    cascade.invoke(QUESTIONS[0])
    cascade.wait_for_distillations()
    assert cascade.dropped_distillations == 1 and len(bank) == 1
