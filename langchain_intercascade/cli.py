"""The ``intercascade`` command line.

Every command that runs a cascade takes its models and bank from flags, from
``INTERCASCADE_*`` environment variables or from a JSON settings file
(``--config``; the fields of :class:`~langchain_intercascade.settings.CascadeSettings`),
in that order of precedence. ``--fake`` runs scripted models that need no files,
for trying the commands out and for tests.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from langchain_intercascade.callbacks import CascadeCostTracker
from langchain_intercascade.graph import CascadeTurn
from langchain_intercascade.models import (
    KNOWN_MODELS,
    local_chat_model,
    local_embeddings,
    pull_model,
)
from langchain_intercascade.server import Cascade
from langchain_intercascade.settings import CascadeSettings, ConfigurationError

app = typer.Typer(
    help="Interactive LLM cascades: a weak model that learns from a strong one.",
    no_args_is_help=True,
)
models_app = typer.Typer(help="Fetch and list the known local GGUF models.", no_args_is_help=True)
bank_app = typer.Typer(
    help="Inspect and edit a saved strategy bank (--bank or INTERCASCADE_BANK_DIR).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(bank_app, name="bank")
console = Console(stderr=True)

# -- shared options ---------------------------------------------------------------

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


def _open(settings: CascadeSettings) -> Cascade:
    try:
        return Cascade(settings)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc


def _messages(question: str, system: str | None) -> list[tuple[str, str]]:
    return [("system", system), ("human", question)] if system else [("human", question)]


def _saved(cascade: Cascade) -> None:
    if cascade.save_if_changed():
        console.print(f"[dim]bank saved to {cascade.settings.bank_dir} ({len(cascade.bank)})[/dim]")


# -- ask and run ------------------------------------------------------------------


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    system: Annotated[str | None, typer.Option(help="A system message before it.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer and the cascade's metadata as JSON.")
    ] = False,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: BankOpt = None,
    threshold: ThresholdOpt = None,
) -> None:
    """Answer one question through the cascade, streaming the answer.

    The weak model's answer appears once the judge has accepted it; a deferred
    question streams the strong model's answer as it is written. A line on
    stderr says which model answered, how confident the judge was and which
    strategies were used.

    Example: intercascade ask --fake "Sam has 3 boxes with 4 pens each. How many pens?"
    """
    cascade = _open(
        _settings(config, weak=weak, strong=strong, fake=fake, bank=bank, threshold=threshold)
    )
    full = None
    for chunk in cascade.chat_model().stream(_messages(question, system)):
        if not as_json:
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
            f"(threshold {meta['threshold']:.2f}) strategies={escape(f'[{used}]')} tokens={tokens}"
            + (f" new strategy: {meta['new_strategy']['title']}" if meta["new_strategy"] else "")
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


@app.command()
def run(
    queries: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSONL file: strings or objects."),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Write one JSON result per query here (default stdout).")
    ] = None,
    field: Annotated[str, typer.Option(help="The question's key in each object.")] = "question",
    system: Annotated[str | None, typer.Option(help="A system message before each query.")] = None,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    bank: BankOpt = None,
    threshold: ThresholdOpt = None,
) -> None:
    """Run a stream of queries through the cascade, in order, learning as it goes.

    Prints one JSON result per query (answer, route, confidence, strategies,
    new strategy, tokens per model), then a summary table per route with tokens and fees (default
    prices) on stderr. The bank is saved afterwards when --bank is set.

    Example: intercascade run --fake --bank ./bank questions.jsonl --output results.jsonl
    """
    questions = list(_read_queries(queries, field))
    cascade = _open(
        _settings(config, weak=weak, strong=strong, fake=fake, bank=bank, threshold=threshold)
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
    console.print(_summary(tracker, learned=len(cascade.bank) - start_size))
    _saved(cascade)


def _result_row(question: str, out: dict[str, Any]) -> dict[str, Any]:
    return {"question": question, "answer": out["answer"], **CascadeTurn.from_state(out).metadata()}


def _summary(tracker: CascadeCostTracker, *, learned: int) -> Table:
    table = Table(
        title=f"{tracker.total.queries} queries, strong-call rate "
        f"{tracker.strong_call_rate:.0%}, {learned} new strategies"
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


# -- eval -------------------------------------------------------------------------


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The data set.")],
    data_format: Annotated[
        str, typer.Option("--format", help="jsonl (question/answer), gsm8k or multiple_choice.")
    ] = "jsonl",
    answer_kind: Annotated[str, typer.Option(help="number, choice or text.")] = "number",
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many questions.")] = None,
    configurations: Annotated[
        list[str] | None,
        typer.Option(
            "--configuration", help="weak, strong, cascade, intercascade (repeat; default: all)."
        ),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write results.json, results.md and plots here.")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="SQLite file caching model calls (resumable runs).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the stream's order and the bootstrap.")] = 0,
    shuffle: Annotated[bool, typer.Option(help="Shuffle the data set before --limit.")] = True,
    config: ConfigOpt = None,
    weak: WeakOpt = None,
    strong: StrongOpt = None,
    fake: FakeOpt = False,
    threshold: ThresholdOpt = None,
    calibrate: Annotated[
        int,
        typer.Option(
            min=0,
            help="Hold out this many questions (before --limit's) and calibrate the threshold "
            "on them for --alpha and --delta, instead of --threshold.",
        ),
    ] = 0,
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Calibration: the accepted answers' error rate.")
    ] = 0.1,
    delta: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Calibration: the bound's failure probability.")
    ] = 0.1,
) -> None:
    """Compare weak only, strong only, a standard cascade and Inter-Cascade on a data set.

    Prints the metrics table (accuracy with bootstrap intervals, strong-call
    rate, tokens, fees) and writes JSON, markdown and plots to --output-dir.

    Example: intercascade eval --fake questions.jsonl --limit 20 --output-dir results/
    """
    if calibrate and threshold is not None:
        raise _fail("pass --threshold or --calibrate, not both")
    from langchain_intercascade.evaluation import EvaluationConfig, run_evaluation

    settings = _settings(config, weak=weak, strong=strong, fake=fake, threshold=threshold)
    try:
        eval_config = EvaluationConfig.model_validate(
            {
                "data_path": data,
                "data_format": data_format,
                "answer_kind": answer_kind,
                "limit": limit,
                "seed": seed,
                "shuffle": shuffle,
                "configurations": configurations or ["weak", "strong", "cascade", "intercascade"],
                "threshold": settings.options.threshold,
                "calibration_examples": calibrate,
                "alpha": alpha,
                "delta": delta,
                "k": settings.options.k,
                "score_threshold": settings.options.score_threshold,
                "cache_path": cache,
                "output_dir": output_dir,
            }
        )
    except ValueError as exc:
        raise _fail(f"invalid evaluation options: {exc}") from exc
    try:
        weak_model, strong_model = settings.models()
        embeddings = settings.embeddings()
        result = run_evaluation(
            eval_config, weak=weak_model, strong=strong_model, embeddings=embeddings
        )
    except (ConfigurationError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    print(result.to_markdown())
    if output_dir is not None:
        console.print(f"[dim]results written to {output_dir}[/dim]")


# -- bank -------------------------------------------------------------------------


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


BankFakeOpt = Annotated[
    bool, typer.Option("--fake", help="The bank was built with the fake (bag-of-words) embeddings.")
]


@bank_app.command("ls")
def bank_ls(
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """List the stored strategies, oldest first."""
    store = _load_bank(_bank_settings(config, bank, fake))
    table = Table(title=f"{len(store)} strategies")
    for column in ("id", "namespace", "title", "retrieved", "accepted", "created"):
        table.add_column(column)
    for r in store.records(namespace):
        table.add_row(
            r.id[:12],
            r.namespace,
            r.strategy.title,
            str(r.times_retrieved),
            str(r.times_accepted),
            f"{r.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@bank_app.command("search")
def bank_search(
    query: Annotated[str, typer.Argument(help="The text to match.")],
    k: Annotated[int, typer.Option(min=1, help="How many strategies.")] = 3,
    namespace: Annotated[str, typer.Option(help="The namespace to search.")] = "default",
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
        table.add_row(f"{hit.score:.3f}", hit.record.id[:12], strategy.title, strategy.applies_when)
    Console().print(table)


@bank_app.command("stats")
def bank_stats(
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """Summarize the bank: size, namespaces, most used and most helpful strategies."""
    stats = _load_bank(_bank_settings(config, bank, fake)).stats(namespace)
    print(f"strategies: {stats.count}")
    for name, count in sorted(stats.namespaces.items()):
        print(f"  {name}: {count}")
    for label, records in (("most used", stats.most_used), ("most helpful", stats.most_helpful)):
        print(f"{label}:")
        for r in records:
            print(f"  {r.id[:12]}  {r.strategy.title}  (retrieved {r.times_retrieved})")


@bank_app.command("export")
def bank_export(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="The JSONL file to write.")],
    namespace: NamespaceOpt = None,
    bank: BankOpt = None,
    config: ConfigOpt = None,
    fake: BankFakeOpt = False,
) -> None:
    """Write the strategies as JSON lines, to review, edit or version them."""
    count = _load_bank(_bank_settings(config, bank, fake)).export_jsonl(path, namespace=namespace)
    console.print(f"exported {count} strategies to {path}")


@bank_app.command("import")
def bank_import(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL: records or strategies.")
    ],
    namespace: Annotated[
        str | None, typer.Option(help="Put every strategy here (default: each record's own).")
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
    ids: Annotated[list[str], typer.Argument(help="Strategy ids, or unique id prefixes.")],
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


# -- models and demo --------------------------------------------------------------


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


# The weakest-token probability of the 0.5B model's answers was 0.08-0.28 on GSM8K.
DEMO_THRESHOLD = 0.2


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
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Acceptance threshold on the weakest token's probability."
        ),
    ] = DEMO_THRESHOLD,
    bank_dir: Annotated[
        Path | None, typer.Option(help="Save the strategy bank here afterwards.")
    ] = None,
) -> None:
    """Run a short stream of recurring problems through the cascade on local models.

    Prints, per problem, the route, the judge's confidence and the strategies used.
    The judge is LogprobJudge("min"), the one that separated right from wrong answers
    of Qwen2.5-Coder-0.5B best (benchmarks/judges); its threshold here is a demo
    setting, not a calibrated one (see ``calibrate_threshold``).
    Models come from --weak/--strong or INTERCASCADE_WEAK_MODEL/INTERCASCADE_STRONG_MODEL;
    where none are configured, the known Qwen2.5-Coder 0.5B/1.5B files are fetched.
    """
    from langchain_intercascade.bank import StrategyBank
    from langchain_intercascade.demo import run_demo
    from langchain_intercascade.graph import create_intercascade
    from langchain_intercascade.judges import LogprobJudge

    logging.basicConfig(level=logging.WARNING)
    weak_path, strong_path = _model_path(weak, "weak"), _model_path(strong, "strong")
    try:
        weak_model = local_chat_model(weak_path, logprobs=True)
        # Grammar-forced structured output is slow on CPU; the strategy is parsed from text.
        strong_model = local_chat_model(strong_path, structured_output=False)
        embeddings = local_embeddings(fallback_gguf=weak_path)
    except (ImportError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    bank = StrategyBank(embeddings=embeddings)
    cascade = create_intercascade(
        weak_model, strong_model, bank=bank, judge=LogprobJudge("min"), threshold=threshold
    )
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
