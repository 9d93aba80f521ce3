"""The ``intercascade`` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from langchain_intercascade.models import (
    KNOWN_MODELS,
    local_chat_model,
    local_embeddings,
    pull_model,
)

app = typer.Typer(help="Interactive LLM cascades: a weak model that learns from a strong one.")
models_app = typer.Typer(help="Fetch and list the known local GGUF models.")
app.add_typer(models_app, name="models")
console = Console()


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="smoke, weak, strong (default: all)")
    ] = None,
) -> None:
    """Download known GGUF models (sha256-checked) and print NAME=PATH lines."""
    for name in names or list(KNOWN_MODELS):
        if name not in KNOWN_MODELS:
            console.print(f"[red]unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}[/red]")
            raise typer.Exit(2)
        try:
            path = pull_model(name)
        except RuntimeError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        print(f"{name}={path}")


@models_app.command("list")
def models_list() -> None:
    """List the known models."""
    for spec in KNOWN_MODELS.values():
        print(f"{spec.name}\t{spec.filename}\t{spec.description}")


def _model_path(given: Path | None, name: str) -> Path:
    if given is None:
        console.print(f"[dim]no {name} model configured: fetching the known {name} model[/dim]")
        return pull_model(name)
    if not given.is_file():
        console.print(f"[red]{name} model file not found: {given}[/red]")
        raise typer.Exit(2)
    return given


@app.command()
def demo(
    weak: Annotated[
        Path | None, typer.Option(envvar="INTERCASCADE_WEAK_MODEL", help="Weak model GGUF file.")
    ] = None,
    strong: Annotated[
        Path | None,
        typer.Option(envvar="INTERCASCADE_STRONG_MODEL", help="Strong model GGUF file."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many problems to run.")] = 6,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Acceptance threshold.")] = 0.8,
    bank_dir: Annotated[
        Path | None, typer.Option(help="Save the strategy bank here afterwards.")
    ] = None,
) -> None:
    """Run a short stream of recurring problems through the cascade on local models.

    Prints, per problem, the route, the judge's confidence and the strategies used.
    Models come from --weak/--strong or INTERCASCADE_WEAK_MODEL/INTERCASCADE_STRONG_MODEL;
    where none are configured, the known Qwen2.5-Coder 0.5B/1.5B files are fetched.
    """
    from langchain_intercascade.bank import StrategyBank
    from langchain_intercascade.demo import run_demo
    from langchain_intercascade.graph import create_intercascade

    logging.basicConfig(level=logging.WARNING)
    weak_path, strong_path = _model_path(weak, "weak"), _model_path(strong, "strong")
    try:
        weak_model = local_chat_model(weak_path)
        strong_model = local_chat_model(strong_path)
        embeddings = local_embeddings(fallback_gguf=weak_path)
    except (ImportError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    bank = StrategyBank(embeddings=embeddings)
    cascade = create_intercascade(weak_model, strong_model, bank=bank, threshold=threshold)
    table = Table(title="Inter-Cascade demo")
    for column in ("#", "route", "confidence", "strategies used", "new strategy", "answer", "ok"):
        table.add_column(column)
    with console.status("answering...") as status:
        for i, row in enumerate(run_demo(cascade, bank, limit), 1):
            used = ", ".join(f"{title} ({score:.2f})" for title, score in row["strategies"])
            console.print(
                f"[bold]{i}.[/bold] {row['question']}\n   route={row['route']} "
                f"confidence={row['confidence']:.2f} (threshold {row['threshold']:.2f}) "
                f"strategies=[{used or 'none'}] new={row['new_strategy'] or '-'} "
                f"answer={row['answer']!r} correct={row['correct']}"
            )
            table.add_row(
                str(i),
                row["route"],
                f"{row['confidence']:.2f}",
                used or "-",
                row["new_strategy"] or "-",
                row["answer"][:40],
                "yes" if row["correct"] else "no",
            )
            status.update(f"answered {i}; bank holds {row['bank_size']} strategies")
    console.print(table)
    if bank_dir is not None:
        bank.save(bank_dir)
        console.print(f"bank saved to {bank_dir} ({len(bank)} strategies)")


if __name__ == "__main__":
    app()
