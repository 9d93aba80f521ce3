"""The ``demo`` command: a short stream of recurring problems on local models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
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

# The weakest-token probability of the 0.5B model's answers was 0.08-0.28 on GSM8K.
DEMO_THRESHOLD = 0.2


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
    limit: Annotated[
        int, typer.Option(min=1, metavar="COUNT", help="How many problems to run.")
    ] = 6,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="NUMBER",
            help="Acceptance threshold on the weakest token's probability.",
        ),
    ] = DEMO_THRESHOLD,
    bank: BankOpt = None,
    bank_dir: Annotated[
        Path | None, typer.Option("--bank-dir", hidden=True, help="The old name of --bank.")
    ] = None,
) -> None:
    """Run a short stream of recurring problems through the cascade on local models.

    Prints each problem's line as soon as it is answered (route, the judge's
    confidence, the strategies used, the answer's final number), with a progress
    line saying what the cascade is doing meanwhile; then a table, and a summary
    against a standard cascade (same models, judge and threshold, no strategies)
    on the same problems: weak answers accepted, strong calls saved, accuracy.
    The judge is LogprobJudge("min"), the one that separated right from wrong answers
    of Qwen2.5-Coder-0.5B best (benchmarks/judges); its threshold here is a demo
    setting, not a calibrated one (see ``intercascade calibrate``).
    Models come from --weak/--strong or INTERCASCADE_WEAK_MODEL/INTERCASCADE_STRONG_MODEL;
    where none are configured, the known Qwen2.5-Coder 0.5B/1.5B files are fetched.
    """
    from langchain_intercascade.demo import ABOUT, DemoSummary, demo_problems, run_demo
    from langchain_intercascade.judges import LogprobJudge

    logging.basicConfig(level=logging.WARNING)
    bank_folder = bank or bank_dir
    with console.status("loading models..."):
        weak_path, strong_path = _model_path(weak, "weak"), _model_path(strong, "strong")
        try:
            weak_model = local_chat_model(weak_path, logprobs=True)
            # Grammar-forced structured output is slow on CPU; the strategy is parsed from text.
            strong_model = local_chat_model(strong_path, structured_output=False)
            embeddings = local_embeddings(fallback_gguf=weak_path)
            strategies = CascadeSettings(bank_dir=bank_folder).load_bank(embeddings)
        except (ImportError, FileNotFoundError, ConfigurationError) as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
    console.print(f"[dim]{escape(ABOUT)}[/dim]")
    table = Table(title="Inter-Cascade demo")
    for column in ("#", "route", "confidence", "strategies used", "new strategy", "answer", "ok"):
        table.add_column(column)
    rows: list[DemoRow] = []
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task("starting", total=min(limit, len(demo_problems())))
        stream = run_demo(
            weak_model,
            strong_model,
            strategies,
            limit=limit,
            on_stage=lambda stage: progress.update(
                task, description=f"problem {len(rows) + 1}: {stage}"
            ),
            judge=LogprobJudge("min"),
            threshold=threshold,
        )
        for i, row in enumerate(stream, 1):
            rows.append(row)
            progress.advance(task)
            used = ", ".join(f"{title} ({score:.2f})" for title, score in row.strategies)
            progress.console.print(
                f"[bold]{i}.[/bold] {escape(row.question)}\n   route={row.route} "
                f"confidence={row.confidence:.2f} (threshold {row.threshold:.2f}) "
                + escape(
                    f"strategies=[{used or 'none'}] new={row.new_strategy or '-'} "
                    f"answer={row.answer!r} final={row.final or '-'} "
                    f"correct={row.correct} standard cascade: route={row.standard_route} "
                    f"correct={row.standard_correct} ({row.seconds:.0f} s)"
                )
            )
            table.add_row(
                str(i),
                row.route or "-",
                f"{row.confidence:.2f}",
                escape(used or "-"),
                escape(row.new_strategy or row.distill_skipped or "-"),
                escape(row.final or "-"),
                "yes" if row.correct else "no",
            )
    console.print(table)
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
        f"{s.distill_skipped}"
    )
