"""The ``models`` sub-commands: fetch and list the known local GGUF models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from langchain_intercascade.cli.shared import console
from langchain_intercascade.models import KNOWN_MODELS, pull_model

models_app = typer.Typer(help="Fetch and list the known local GGUF models.", no_args_is_help=True)


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="NAME", help="smoke, weak, strong (default: all)"),
    ] = None,
) -> None:
    """Download known GGUF models (sha256-checked) and print NAME=PATH lines."""
    for name in names or list(KNOWN_MODELS):
        if name not in KNOWN_MODELS:
            console.print(f"[red]unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}[/red]")
            raise typer.Exit(2)
        try:
            path = pull_model(name, report=lambda line: console.print(escape(line)))
        except RuntimeError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        print(f"{name}={path}")


@models_app.command("list")
def models_list() -> None:
    """List the known models."""
    for spec in KNOWN_MODELS.values():
        print(f"{spec.name}\t{spec.filename}\t{spec.description}")
