"""The ``bank`` sub-commands: list, search, summarize, export, import and delete strategies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from langchain_intercascade.bank.jsonl import write_jsonl
from langchain_intercascade.bank.persistence import read_bank
from langchain_intercascade.cli.shared import (
    FLAG,
    ConfigOpt,
    NamespaceOpt,
    _fail,
    _settings,
    console,
)
from langchain_intercascade.settings import CascadeSettings, ConfigurationError
from langchain_intercascade.strategies import StrategyRecord

bank_app = typer.Typer(
    help="Inspect and edit a saved strategy bank (--bank or INTERCASCADE_BANK_DIR).\n\n"
    "ls, stats and export read the saved records and need no model; search, import and rm "
    "embed text, so they need the embeddings the bank was built with (--fake: bag-of-words).",
    no_args_is_help=True,
)

BankOpt = Annotated[
    Path | None, typer.Option("--bank", metavar="FOLDER", help="The strategy bank folder.")
]


def _bank_settings(config: Path | None, bank: Path | None, fake: bool) -> CascadeSettings:
    settings = _settings(config, fake=fake, bank=bank)
    if settings.bank_dir is None:
        raise _fail("no bank folder: pass --bank or set INTERCASCADE_BANK_DIR")
    return settings


def _load_bank(settings: CascadeSettings, *, must_exist: bool = True) -> Any:
    assert settings.bank_dir is not None
    if must_exist and not settings.bank_dir.exists():
        raise _fail(f"no bank at {settings.bank_dir}")
    try:
        return settings.load_bank()
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc


def _saved_records(
    config: Path | None, bank: Path | None, namespace: str | None
) -> list[StrategyRecord]:
    """The saved bank's records, oldest first, read without embedding anything."""
    folder = _bank_settings(config, bank, fake=False).bank_dir
    assert folder is not None
    try:
        records = read_bank(folder).records
    except FileNotFoundError as exc:
        raise _fail(f"no bank at {folder}") from exc
    except ValueError as exc:
        raise _fail(f"cannot load the bank: {exc}") from exc
    chosen = [r for r in records if namespace in (None, r.namespace)]
    return sorted(chosen, key=lambda r: (r.created_at, r.id))


BankFakeOpt = Annotated[
    bool,
    typer.Option(
        "--fake", metavar=FLAG, help="The bank was built with the fake (bag-of-words) embeddings."
    ),
]


@bank_app.command("ls")
def bank_ls(
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the stored strategies, oldest first."""
    records = _saved_records(config, bank, namespace)
    table = Table(title=f"{len(records)} strategies")
    for column in ("id", "namespace", "title", "retrieved", "accepted", "created"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.id[:12],
            escape(r.namespace),
            escape(r.strategy.title),
            str(r.times_retrieved),
            str(r.times_accepted),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@bank_app.command("search")
def bank_search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="The text to match.")],
    k: Annotated[int, typer.Option(min=1, metavar="COUNT", help="How many strategies.")] = 3,
    namespace: Annotated[
        str, typer.Option(metavar="NAME", help="The namespace to search.")
    ] = "default",
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """Find the strategies most similar to a query, as the cascade would."""
    store = _load_bank(_bank_settings(config, bank, fake))
    table = Table(title=f"nearest to {query!r}")
    for column in ("score", "id", "title", "applies when"):
        table.add_column(column)
    for hit in store.search(query, k=k, namespace=namespace):
        strategy = hit.record.strategy
        table.add_row(
            f"{hit.score:.3f}",
            hit.record.id[:12],
            escape(strategy.title),
            escape(strategy.applies_when),
        )
    Console().print(table)


@bank_app.command("stats")
def bank_stats(
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
    top: Annotated[int, typer.Option(min=1, metavar="COUNT", help="How many to list.")] = 5,
) -> None:
    """Summarize the bank: size, namespaces, most used and most helpful strategies.

    Most used: the most often retrieved. Most helpful: the most useful of those
    that were ever followed by an accepted weak answer (or rated helpful).
    """
    records = _saved_records(config, bank, namespace)
    print(f"strategies: {len(records)}")
    for name, count in sorted(Counter(r.namespace for r in records).items()):
        print(f"  {name}: {count}")
    used = sorted((r for r in records if r.times_retrieved), key=lambda r: -r.times_retrieved)
    helpful = sorted(
        (r for r in records if r.times_accepted or r.helpful),
        key=lambda r: (-r.usefulness, -r.times_accepted),
    )
    for label, chosen, nothing in (
        ("most used", used, "none retrieved yet"),
        ("most helpful", helpful, "none yet: no strategy was followed by an accepted answer"),
    ):
        print(f"{label}:" if chosen else f"{label}: {nothing}")
        for r in chosen[:top]:
            print(
                f"  {r.id[:12]}  {r.strategy.title}  (retrieved {r.times_retrieved}, "
                f"accepted {r.times_accepted}, deferred {r.times_deferred})"
            )


@bank_app.command("export")
def bank_export(
    path: Annotated[
        Path, typer.Argument(dir_okay=False, metavar="FILE", help="The JSONL file to write.")
    ],
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the strategies as JSON lines, to review, edit or version them."""
    count = write_jsonl(path, _saved_records(config, bank, namespace))
    console.print(f"exported {count} strategies to {path}")


@bank_app.command("import")
def bank_import(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, metavar="FILE", help="JSONL: records or strategies."
        ),
    ],
    namespace: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Put every strategy here (default: each record's own)."),
    ] = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """Add strategies from a JSONL file (creating the bank if needed) and save the bank."""
    settings = _bank_settings(config, bank, fake)
    store = _load_bank(settings, must_exist=False)
    try:
        records = store.import_jsonl(path, namespace=namespace)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    assert settings.bank_dir is not None
    store.save(settings.bank_dir)
    console.print(f"imported {len(records)} strategies; the bank holds {len(store)}")


@bank_app.command("rm")
def bank_rm(
    ids: Annotated[
        list[str], typer.Argument(metavar="ID", help="Strategy ids, or unique id prefixes.")
    ],
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """Delete strategies by id (or unique id prefix, as `bank ls` shows them)."""
    settings = _bank_settings(config, bank, fake)
    store = _load_bank(settings)
    known = [r.id for r in store.records()]
    chosen = []
    for given in ids:
        matches = [i for i in known if i.startswith(given)]
        if len(matches) != 1:
            raise _fail(f"{given!r} matches {len(matches)} strategies; give a unique id", 1)
        chosen.append(matches[0])
    removed = store.delete(chosen)
    assert settings.bank_dir is not None
    store.save(settings.bank_dir)
    console.print(f"removed {removed} strategies; the bank holds {len(store)}")
