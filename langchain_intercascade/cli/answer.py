"""The ``ask`` and ``run`` commands: one question, or a stream of them, through the cascade."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from langchain_intercascade.callbacks import CascadeCostTracker
from langchain_intercascade.cli.shared import (
    FLAG,
    BankOpt,
    CalibrationOpt,
    ConfigOpt,
    FakeOpt,
    StrongOpt,
    ThresholdOpt,
    WeakOpt,
    _fail,
    _messages,
    _open,
    _settings,
    _threshold_text,
    console,
)
from langchain_intercascade.graph import CascadeTurn
from langchain_intercascade.server import Cascade


def _saved(cascade: Cascade) -> None:
    if cascade.save_if_changed():
        console.print(f"[dim]bank saved to {cascade.settings.bank_dir} ({len(cascade.bank)})[/dim]")


def ask(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question to answer.")],
    system: Annotated[
        str | None, typer.Option(metavar="TEXT", help="A system message before it.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", metavar=FLAG, help="Print the answer and the cascade's metadata as JSON."
        ),
    ] = False,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: BankOpt = None,
    threshold: ThresholdOpt = None,
    calibration: CalibrationOpt = None,
) -> None:
    """Answer one question through the cascade, streaming the answer.

    The weak model's answer appears once the judge has accepted it; a deferred
    question streams the strong model's answer as it is written. A line on
    stderr says which model answered, how confident the judge was against which
    threshold (and whether that threshold was calibrated) and which strategies
    were used.

    Example: intercascade ask --fake "Sam has 3 boxes with 4 pens each. How many pens?"
    """
    cascade = _open(
        _settings(
            config,
            weak=weak,
            strong=strong,
            fake=fake,
            bank=bank,
            threshold=threshold,
            calibration=calibration,
        )
    )
    full = None
    with console.status("answering...") as status:
        for chunk in cascade.chat_model().stream(_messages(question, system)):
            if not as_json:
                status.stop()  # the answer is streaming: the spinner would garble it
                print(chunk.text, end="", flush=True)
            full = chunk if full is None else full + chunk
    assert full is not None
    meta = full.response_metadata
    if as_json:
        print(json.dumps({"answer": full.text, **meta}, default=str))
    else:
        print()
        used = ", ".join(f"{s['title']} ({s['score']:.2f})" for s in meta["strategies"])
        tokens = full.usage_metadata["total_tokens"] if full.usage_metadata else 0
        console.print(
            f"[dim]route={meta['route']} confidence={meta['confidence']:.2f} "
            f"{_threshold_text(meta['threshold'], meta['threshold_calibrated'])} "
            f"strategies={escape(f'[{used}]')} tokens={tokens}"
            + (
                f" new strategy: {escape(meta['new_strategy']['title'])}"
                if meta["new_strategy"]
                else ""
            )
            + "[/dim]"
        )
    _saved(cascade)


def _read_queries(path: Path, field: str) -> Iterator[str]:
    """Questions from a JSONL file: JSON strings, or objects with ``field``."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(f"{path}, line {number}: not JSON ({exc})") from exc
            question = row.get(field) if isinstance(row, dict) else row
            if not isinstance(question, str) or not question.strip():
                raise _fail(f"{path}, line {number}: no {field!r} string")
            yield question


def run(
    queries: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="QUERIES",
            help="JSONL file: strings or objects.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Write one JSON result per query here (default stdout)."),
    ] = None,
    field: Annotated[
        str, typer.Option(metavar="KEY", help="The question's key in each object.")
    ] = "question",
    system: Annotated[
        str | None, typer.Option(metavar="TEXT", help="A system message before each query.")
    ] = None,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: BankOpt = None,
    threshold: ThresholdOpt = None,
    calibration: CalibrationOpt = None,
) -> None:
    """Run a stream of queries through the cascade, in order, learning as it goes.

    Prints one JSON result per query (answer, route, confidence, strategies,
    new strategy, tokens per model, threshold and whether it was calibrated), then a
    summary table per route with tokens and fees (default prices) on stderr. The bank
    is saved afterwards when --bank is set.

    Example: intercascade run --fake --bank ./bank questions.jsonl --output results.jsonl
    """
    questions = list(_read_queries(queries, field))
    cascade = _open(
        _settings(
            config,
            weak=weak,
            strong=strong,
            fake=fake,
            bank=bank,
            threshold=threshold,
            calibration=calibration,
        )
    )
    tracker = CascadeCostTracker()
    start_size = len(cascade.bank)
    sink = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("answering", total=len(questions))
            for question in questions:
                out = cascade.graph.invoke(_messages(question, system), {"callbacks": [tracker]})
                sink.write(json.dumps(_result_row(question, out)) + "\n")
                sink.flush()
                progress.update(task, advance=1, description=f"bank: {len(cascade.bank)}")
    finally:
        if output:
            sink.close()
    options = cascade.settings.options
    in_force = _threshold_text(options.threshold_value, options.threshold_calibrated)
    console.print(_summary(tracker, learned=len(cascade.bank) - start_size, caption=in_force))
    _saved(cascade)


def _result_row(question: str, out: dict[str, Any]) -> dict[str, Any]:
    return {"question": question, "answer": out["answer"], **CascadeTurn.from_state(out).metadata()}


def _summary(tracker: CascadeCostTracker, *, learned: int, caption: str) -> Table:
    table = Table(
        title=f"{tracker.total.queries} queries, strong-call rate "
        f"{tracker.strong_call_rate:.0%}, {learned} new strategies",
        caption=caption,
    )
    columns = ("route", "queries", "weak tokens in/out", "strong tokens in/out")
    for column in (*columns, f"fee ({tracker.prices.currency})"):
        table.add_column(column)
    for row in tracker.rows():
        table.add_row(
            row["route"],
            str(row["queries"]),
            f"{row['weak_input_tokens']}/{row['weak_output_tokens']}",
            f"{row['strong_input_tokens']}/{row['strong_output_tokens']}",
            f"{row['fee']:.6f}",
        )
    return table
