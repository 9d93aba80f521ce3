"""The ``calibrate`` command: a certified acceptance threshold from labelled questions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, cast, get_args

import typer

from langchain_intercascade.answers import AnswerKind, make_grader
from langchain_intercascade.cli.shared import (
    ConfigOpt,
    FakeOpt,
    LabelKeyOpt,
    LabelsOpt,
    StrongOpt,
    TextKeyOpt,
    WeakOpt,
    _examples,
    _fail,
    _label_set,
    _messages,
    _open,
    _settings,
    console,
)
from langchain_intercascade.evaluation import collect_confidences


def calibrate(
    data: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="DATA",
            help="Labelled questions: JSONL (see --format), or CSV/JSONL messages with --labels.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", dir_okay=False, metavar="FILE", help="Write the calibration here (JSON)."
        ),
    ],
    data_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="jsonl (question/answer objects), gsm8k or multiple_choice.",
        ),
    ] = "jsonl",
    answer_kind: Annotated[
        str, typer.Option(metavar="KIND", help="number, choice or text: how answers are graded.")
    ] = "number",
    alpha: Annotated[
        float,
        typer.Option(metavar="RATE", help="The error rate allowed among accepted answers."),
    ] = 0.1,
    delta: Annotated[
        float,
        typer.Option(metavar="PROBABILITY", help="The probability that this guarantee fails."),
    ] = 0.1,
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="COUNT", help="Only the first COUNT questions.")
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="A system message before each question, as in ask/run."),
    ] = None,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: Annotated[
        Path | None,
        typer.Option(
            "--bank",
            metavar="FOLDER",
            help="Show the weak model this bank's strategies, as ask/run do (the folder is "
            "left unchanged).",
        ),
    ] = None,
    labels: LabelsOpt = None,
    text_key: TextKeyOpt = "text",
    label_key: LabelKeyOpt = "label",
) -> None:
    """Calibrate the acceptance threshold on labelled questions and save it.

    The weak model answers each question and the judge scores the answer, exactly
    as in ask and run (with the bank's strategies when --bank is given); the strong
    model is never called. The threshold saved is the lowest one at which, with
    probability at least 1 - delta, the error rate among accepted answers is at
    most alpha (Clopper-Pearson bounds, fixed-sequence testing). Use it with
    --calibration FILE, INTERCASCADE_CALIBRATION or the settings file's
    "calibration" field.

    Example: intercascade calibrate --fake labelled.jsonl --output calibration.json
    """
    _check_choice("--answer-kind", answer_kind, get_args(AnswerKind))
    for name, value in (("--alpha", alpha), ("--delta", delta)):
        if not 0.0 < value < 1.0:
            raise _fail(f"{name} must lie strictly between 0 and 1, got {value}")
    settings = _settings(config, weak=weak, strong=strong, fake=fake, bank=bank, labels=labels)
    label_set = _label_set(settings)
    examples = _examples(data, data_format, label_set, text_key=text_key, label_key=label_key)[
        :limit
    ]
    if not examples:
        raise _fail(f"{data} holds no questions")
    grade = label_set.grade if label_set is not None else make_grader(cast(AnswerKind, answer_kind))
    cascade = _open(settings)
    with console.status(f"calibrating on {len(examples)} questions (weak model and judge)..."):
        collected = collect_confidences(
            cascade.graph,
            [(_messages(e.question, system), e.answer) for e in examples],
            grade,
            # One at a time: a llama.cpp model is not thread-safe.
            config={"max_concurrency": 1, "run_name": "calibration"},
        )
    try:
        calibration = collected.calibrate(alpha=alpha, delta=delta)
    except ValueError as exc:  # e.g. too few questions
        raise _fail(f"cannot calibrate: {exc}") from exc
    output.write_text(calibration.model_dump_json(indent=2) + "\n", encoding="utf-8")
    right = sum(collected.correct)
    console.print(f"weak model: {right} of {len(examples)} right ({right / len(examples):.0%})")
    if math.isinf(calibration.threshold):
        console.print(
            f"[yellow]no threshold keeps the error among accepted answers within {alpha:g} "
            f"(with probability {1 - delta:g}) on these questions:[/yellow] with this "
            "calibration every question goes to the strong model; more questions or a larger "
            "--alpha may certify one"
        )
    else:
        console.print(
            f"threshold {calibration.threshold:.3f}: accepts {calibration.coverage:.0%} of the "
            f"questions, with error {calibration.empirical_risk:.1%} among them, at most "
            f"{calibration.risk_upper_bound:.1%} with probability {1 - delta:g}"
        )
    console.print(
        f"written to {output}: use it with --calibration {output} or "
        f"INTERCASCADE_CALIBRATION={output}"
    )


def _check_choice(option: str, value: str, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise _fail(f"{option} must be one of {', '.join(choices)}, got {value!r}")
