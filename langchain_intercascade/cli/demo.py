"""The ``demo`` command: a short stream of recurring queries on local models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from langchain_intercascade.cli.shared import BankOpt, console
from langchain_intercascade.models import local_chat_model, local_embeddings, pull_model
from langchain_intercascade.settings import CascadeSettings, ConfigurationError

if TYPE_CHECKING:
    from langchain_intercascade.demo import DemoRow, DemoSummary


def _model_path(given: Path | None, name: str) -> Path:
    if given is None:
        console.print(f"[dim]no {name} model configured: fetching the known {name} model[/dim]")
        return pull_model(name, report=lambda line: console.print(escape(line)))
    if not given.is_file():
        console.print(f"[red]{name} model file not found: {escape(str(given))}[/red]")
        raise typer.Exit(2)
    return given


def demo(
    weak: Annotated[
        Path | None,
        typer.Option(
            envvar="INTERCASCADE_WEAK_MODEL", metavar="FILE", help="Weak model GGUF file."
        ),
    ] = None,
    strong: Annotated[
        Path | None,
        typer.Option(
            envvar="INTERCASCADE_STRONG_MODEL", metavar="FILE", help="Strong model GGUF file."
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="support: ticket triage (24 tickets, ten intents); math: word problems (6).",
        ),
    ] = "support",
    limit: Annotated[
        int | None, typer.Option(min=1, metavar="COUNT", help="Stop after this many queries.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="NUMBER",
            help="Acceptance threshold (default: the task's demo setting, 0.5 for support, "
            "0.2 for math).",
        ),
    ] = None,
    bank: BankOpt = None,
    bank_dir: Annotated[
        Path | None, typer.Option("--bank-dir", hidden=True, help="The old name of --bank.")
    ] = None,
) -> None:
    """Run a short stream of recurring queries through the cascade on local models.

    Prints each query's line as soon as it is answered (route, the judge's
    confidence, the strategies shown, the answer, and the strong calls so far of
    Inter-Cascade and of a standard cascade with the same models, judge and
    threshold but no strategies), with a progress line saying what the cascade is
    doing meanwhile; then a table, and a summary on the same queries: weak answers
    accepted, strong calls, accuracy. The judge is the answer's token probability
    (for math the weakest token's, which separated Qwen2.5-Coder-0.5B's right and
    wrong answers best); the threshold is a demo setting, not a calibrated one
    (see ``intercascade calibrate``). Models come from --weak/--strong or
    INTERCASCADE_WEAK_MODEL/INTERCASCADE_STRONG_MODEL; where none are configured,
    the known Qwen2.5-Coder 0.5B/1.5B files are fetched.
    """
    from langchain_intercascade.demo import DEMO_TASKS, DemoSummary, run_demo

    if task not in DEMO_TASKS:
        console.print(f"[red]--task must be one of {', '.join(DEMO_TASKS)}, got {task!r}[/red]")
        raise typer.Exit(2)
    stream = DEMO_TASKS[task]()
    logging.basicConfig(level=logging.WARNING)
    bank_folder = bank or bank_dir
    with console.status("loading models..."):
        weak_path, strong_path = _model_path(weak, "weak"), _model_path(strong, "strong")
        try:
            # A label is a few tokens; a worked problem needs the default budget.
            budget = 24 if stream.labels is not None else 384
            weak_model = local_chat_model(weak_path, logprobs=True, max_tokens=budget)
            # Grammar-forced structured output is slow on CPU; the strategy is parsed from text.
            strong_model = local_chat_model(strong_path, structured_output=False)
            embeddings = local_embeddings(fallback_gguf=weak_path)
            strategies = CascadeSettings(bank_dir=bank_folder).load_bank(embeddings)
        except (ImportError, FileNotFoundError, ConfigurationError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
    console.print(f"[dim]{escape(stream.about)}[/dim]")
    # Cells are cut, never wrapped: one line per query in an 80-column terminal.
    table = Table(title=f"Inter-Cascade demo: {task}", box=box.SIMPLE_HEAD)
    for column, low, high in (
        ("#", 2, 2), ("route", 6, 6), ("conf", 4, 4), ("top strategy", 8, 16),
        ("answer", 8, 19), ("ok", 3, 3), ("standard", 10, 10),
    ):  # fmt: skip
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=low, max_width=high)
    rows: list[DemoRow] = []
    total = len(stream.problems[:limit])
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip
    with progress:
        bar = progress.add_task("starting", total=total)
        answered = run_demo(
            weak_model,
            strong_model,
            strategies,
            task=stream,
            limit=limit,
            on_stage=lambda stage: progress.update(
                bar, description=f"query {len(rows) + 1}: {stage}"
            ),
            **({} if threshold is None else {"threshold": threshold}),
        )
        for i, row in enumerate(answered, 1):
            rows.append(row)
            progress.advance(bar)
            so_far = DemoSummary.of(rows)
            used = ", ".join(f"{title} ({score:.2f})" for title, score in row.strategies)
            progress.console.print(
                f"[bold]{i}.[/bold] {escape(row.question)}\n   route={row.route} "
                f"confidence={row.confidence:.2f} (threshold {row.threshold:.2f}) "
                + escape(
                    f"strategies=[{used or 'none'}] new={row.new_strategy or '-'} "
                    f"answer={row.answer!r} final={row.final or '-'} "
                    f"correct={row.correct} standard cascade: route={row.standard_route} "
                    f"correct={row.standard_correct} ({row.seconds:.0f} s)\n"
                    f"   strong calls so far: Inter-Cascade {so_far.strong_calls}, "
                    f"standard cascade {so_far.standard_strong_calls}"
                )
            )
            table.add_row(
                str(i),
                row.route or "-",
                f"{row.confidence:.2f}",
                escape(row.strategies[0][0] if row.strategies else "-"),
                escape(row.final or "-"),
                "yes" if row.correct else "no",
                f"{row.standard_route or '-'} {'yes' if row.standard_correct else 'no'}",
            )
    console.print(table, soft_wrap=False)  # the console soft-wraps; a table must fit
    console.print(_summary(DemoSummary.of(rows)))
    if bank_folder is not None:
        strategies.save(bank_folder)
        console.print(f"bank saved to {bank_folder} ({len(strategies)} strategies)")


def _summary(s: DemoSummary) -> str:
    n = abs(s.strong_calls_saved)
    calls = f"{n} strong call{'' if n == 1 else 's'}"
    saved = f"{calls} saved" if s.strong_calls_saved >= 0 else f"{calls} more"
    return (
        f"Summary over {s.problems} problems ({s.seconds:.0f} s):\n"
        f"  weak answers accepted: Inter-Cascade {s.accepted}, standard cascade "
        f"{s.standard_accepted}\n"
        f"  strong calls: Inter-Cascade {s.strong_calls}, standard cascade "
        f"{s.standard_strong_calls} ({saved})\n"
        f"  right answers: Inter-Cascade {s.correct}/{s.problems}, standard cascade "
        f"{s.standard_correct}/{s.problems}\n"
        f"  strategies distilled: {s.distilled}; strong answers not distilled: "
        f"{s.distill_skipped}\n"
        f"  {_verdict(s)}"
    )


def _verdict(s: DemoSummary) -> str:
    """What the strategies bought on this stream, in one line, gain or not."""
    if s.strong_calls_saved <= 0:
        return "no gain here: the strategies saved no strong call"
    if s.correct >= s.standard_correct:
        return "the strategies saved strong calls at equal or better accuracy"
    lost = s.standard_correct - s.correct
    return f"the strategies saved strong calls but cost {lost} right answer{'s' * (lost > 1)}"
