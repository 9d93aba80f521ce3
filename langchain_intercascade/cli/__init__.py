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
- ``demo``: the ``demo`` command.

This package builds the typer ``app`` from them; the console script is
``langchain_intercascade.cli:app``.
"""

import typer

from langchain_intercascade.cli import answer, bank, demo, evaluate, models

__all__ = ["app"]

app = typer.Typer(
    help="Interactive LLM cascades: a weak model that learns from a strong one.",
    no_args_is_help=True,
)
# Registered here, in one place, because the help lists commands in this order.
app.add_typer(models.models_app, name="models")
app.add_typer(bank.bank_app, name="bank")
app.command()(answer.ask)
app.command()(answer.run)
app.command("eval")(evaluate.evaluate)
app.command()(demo.demo)
