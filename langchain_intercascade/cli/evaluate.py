"""The ``eval`` command: the four configurations compared on a data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from langchain_intercascade.cli.shared import (
    FLAG,
    ConfigOpt,
    FakeOpt,
    LabelKeyOpt,
    LabelsOpt,
    StrongOpt,
    TextKeyOpt,
    ThresholdOpt,
    WeakOpt,
    _examples,
    _fail,
    _label_set,
    _settings,
    console,
)
from langchain_intercascade.settings import ConfigurationError


def evaluate(
    data: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="DATA",
            help="The data set (see --format), or CSV/JSONL messages with --labels.",
        ),
    ],
    data_format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="jsonl (question/answer), gsm8k or multiple_choice."
        ),
    ] = "jsonl",
    answer_kind: Annotated[
        str, typer.Option(metavar="KIND", help="number, choice or text.")
    ] = "number",
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="COUNT", help="At most this many questions.")
    ] = None,
    configurations: Annotated[
        list[str] | None,
        typer.Option(
            "--configuration",
            metavar="NAME",
            help="weak, strong, cascade, intercascade (repeat; default: all).",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(metavar="FOLDER", help="Write results.json, results.md and plots here."),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="SQLite file caching model calls (resumable runs)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(metavar="NUMBER", help="Seeds the stream's order and the bootstrap.")
    ] = 0,
    shuffle: Annotated[
        bool, typer.Option(metavar=FLAG, help="Shuffle the data set before --limit.")
    ] = True,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    threshold: ThresholdOpt = None,
    calibrate: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="COUNT",
            help="Hold out this many questions (before --limit's) and calibrate the threshold "
            "on them for --alpha and --delta, instead of --threshold.",
        ),
    ] = 0,
    calibrate_on: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="Calibrate the threshold on this file's questions (same form as DATA, e.g. a "
            "training split) for --alpha and --delta, instead of --threshold.",
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="RATE",
            help="Calibration: the accepted answers' error rate.",
        ),
    ] = 0.1,
    delta: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="PROBABILITY",
            help="Calibration: the bound's failure probability.",
        ),
    ] = 0.1,
    labels: LabelsOpt = None,
    text_key: TextKeyOpt = "text",
    label_key: LabelKeyOpt = "label",
) -> None:
    """Compare weak only, strong only, a standard cascade and Inter-Cascade on a data set.

    Prints the metrics table (accuracy with bootstrap intervals, strong-call
    rate, tokens, fees) and writes JSON, markdown and plots to --output-dir.

    Example: intercascade eval --fake questions.jsonl --limit 20 --output-dir results/
    """
    given = [
        name
        for name, on in [
            ("--threshold", threshold is not None),
            ("--calibrate", calibrate),
            ("--calibrate-on", calibrate_on),
        ]
        if on
    ]
    if len(given) > 1:
        raise _fail(f"pass one of --threshold, --calibrate and --calibrate-on, not {given}")
    from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation

    settings = _settings(
        config, weak=weak, strong=strong, fake=fake, threshold=threshold, labels=labels
    )
    label_set = _label_set(settings)
    keys = {"text_key": text_key, "label_key": label_key}
    examples = _examples(data, data_format, label_set, **keys)
    calibration_set = (
        None if calibrate_on is None else _examples(calibrate_on, data_format, label_set, **keys)
    )
    try:
        eval_config = EvaluationConfig.model_validate(
            {
                "data_path": data,
                "data_format": data_format,
                "labels": label_set,
                "answer_kind": answer_kind,
                "limit": limit,
                "seed": seed,
                "shuffle": shuffle,
                "configurations": configurations or ["weak", "strong", "cascade", "intercascade"],
                "threshold": settings.options.threshold,
                "calibration_examples": calibrate,
                "alpha": alpha,
                "delta": delta,
                "k": settings.options.k,
                "score_threshold": settings.options.score_threshold,
                "cache_path": cache,
                "output_dir": output_dir,
            }
        )
    except ValueError as exc:
        raise _fail(f"invalid evaluation options: {exc}") from exc
    try:
        with console.status("loading models..."):
            weak_model, strong_model = settings.models()
            embeddings = settings.embeddings()
        result = run_evaluation(
            eval_config,
            weak=weak_model,
            strong=strong_model,
            embeddings=embeddings,
            examples=examples,
            calibration_set=calibration_set,
        )
    except (ConfigurationError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    print(result.to_markdown())
    if output_dir is not None:
        console.print(f"[dim]results written to {output_dir}[/dim]")
