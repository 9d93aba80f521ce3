"""The ``intercascade`` command line, one module per command or command group.

Every command that runs a cascade takes its models and bank from flags, from
``INTERCASCADE_*`` environment variables or from a JSON settings file
(``--config``; the fields of :class:`~langchain_intercascade.settings.CascadeSettings`),
in that order of precedence. ``--fake`` runs scripted models that need no files,
for trying the commands out and for tests.

Module map:

- ``shared``: the stderr console, the options the commands share, and the
  settings they resolve from the file, the environment and the flags.
- ``answer``: the ``ask`` and ``run`` commands.
- ``evaluate``: the ``eval`` command.
- ``models``: the ``models`` sub-commands (``pull``, ``list``).
- ``bank``: the ``bank`` sub-commands (``ls``, ``search``, ``stats``,
  ``export``, ``import``, ``rm``).
- ``calibrate``: the ``calibrate`` command.
- ``export``: the ``export`` command (the teacher's recorded answers as
  fine-tuning files).
- ``demo``: the ``demo`` command.
- ``doctor``: the ``doctor`` command.

This package builds the typer ``app`` from them (and its ``--version``); the
console script is ``langchain_intercascade.cli:app``.
"""

from typing import Annotated

import typer

from langchain_intercascade import __version__
from langchain_intercascade.cli import (
    answer,
    bank,
    calibrate,
    demo,
    doctor,
    evaluate,
    export,
    models,
)
from langchain_intercascade.cli.shared import FLAG

__all__ = ["app"]

app = typer.Typer(
    help="Interactive LLM cascades: a weak model that learns from a strong one.",
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"intercascade {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar=FLAG,
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass


# Registered here, in one place, because the help lists commands in this order.
app.command()(doctor.doctor)
app.add_typer(models.models_app, name="models")
app.add_typer(bank.bank_app, name="bank")
app.command()(answer.ask)
app.command()(answer.run)
app.command()(calibrate.calibrate)
app.command("eval")(evaluate.evaluate)
app.command()(export.export)
app.command()(demo.demo)
