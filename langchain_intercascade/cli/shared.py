"""What the commands share: the stderr console, the common options, settings resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from langchain_intercascade.settings import CascadeSettings, ConfigurationError

console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help="JSON settings file (fields: weak_model, strong_model, fake, bank_dir, "
        "max_tokens and the text-form cascade options, e.g. threshold, k).",
    ),
]
WeakOpt = Annotated[
    str | None,
    typer.Option("--weak", help="Weak model: a GGUF file or module:attribute."),
]
StrongOpt = Annotated[
    str | None,
    typer.Option("--strong", help="Strong model: a GGUF file or module:attribute."),
]
FakeOpt = Annotated[
    bool, typer.Option("--fake", help="Use scripted fake models (no model files needed).")
]
BankOpt = Annotated[
    Path | None,
    typer.Option("--bank", help="Strategy bank folder: loaded if present, saved after the run."),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(min=0.0, max=1.0, help="Accept the weak answer at this confidence or above."),
]
NamespaceOpt = Annotated[str | None, typer.Option(help="Only this bank namespace (default: all).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _settings(
    config: Path | None,
    *,
    weak: str | None = None,
    strong: str | None = None,
    fake: bool = False,
    bank: Path | None = None,
    threshold: float | None = None,
) -> CascadeSettings:
    """Settings from the file, then the environment, then the flags given."""
    try:
        values = CascadeSettings.from_file(config).given() if config else {}
        values.update(CascadeSettings.from_env().given())
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc
    flags = {
        "weak_model": weak,
        "strong_model": strong,
        "fake": fake or None,
        "bank_dir": bank,
        "threshold": threshold,
    }
    values.update({key: value for key, value in flags.items() if value is not None})
    try:
        return CascadeSettings.model_validate(values)
    except ValueError as exc:
        raise _fail(f"invalid settings: {exc}") from exc
