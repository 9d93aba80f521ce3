"""The ``export`` command: the teacher's recorded answers as chat fine-tuning files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, cast, get_args

import typer

from langchain_intercascade.answers import EXTRACTORS, AnswerExtractor
from langchain_intercascade.cli.shared import _fail, console
from langchain_intercascade.finetuning import FinetuningFormat, export_finetuning
from langchain_intercascade.teacher_records import (
    DEFAULT_PREFIX,
    JsonlTeacherRecorder,
    StoreTeacherRecorder,
    TeacherRecord,
)

_POSTGRES = ("postgresql://", "postgres://")


def _read(
    source: str, prefix: str, tenant: str | None, since: datetime | None
) -> list[TeacherRecord]:
    """The records kept at ``source``: a PostgresStore for a URI, else a JSONL file."""
    try:
        if not source.startswith(_POSTGRES):
            path = Path(source)
            if not path.is_file():
                raise _fail(f"no teacher records file at {path}")
            return JsonlTeacherRecorder(path).read(tenant=tenant, since=since)
        try:
            from langgraph.store.postgres import PostgresStore
        except ImportError as exc:
            raise _fail(
                "reading a PostgreSQL store needs langgraph-checkpoint-postgres: "
                "pip install langgraph-checkpoint-postgres 'psycopg[binary]'"
            ) from exc
        try:
            with PostgresStore.from_conn_string(source) as store:
                return StoreTeacherRecorder(store, prefix=(prefix,)).read(
                    tenant=tenant, since=since
                )
        except ValueError:
            raise
        except Exception as exc:  # psycopg's: a wrong URI, a server that is down
            raise _fail(f"cannot read the store at {source}: {type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # a record that does not parse, a bad prefix
        raise _fail(str(exc)) from exc


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(
            f"--since must be an ISO date or time (2025-06-01, 2025-06-01T12:00), got {value!r}"
        ) from exc


def _extractor(labels: Path | None, answers: str | None) -> AnswerExtractor | None:
    if labels is not None and answers is not None:
        raise _fail("give --labels or --answers, not both")
    if labels is not None:
        from langchain_intercascade.labels import LabelSet

        try:
            return LabelSet.from_file(labels).extract
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read the labels: {exc}") from exc
    if answers is not None:
        if answers not in EXTRACTORS:
            raise _fail(f"--answers must be one of {', '.join(EXTRACTORS)}, got {answers!r}")
        return EXTRACTORS[answers]
    return None


def export(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="Where the records are: the JSONL file a JsonlTeacherRecorder wrote, or a "
            "PostgreSQL URI (postgresql://...) of the store a StoreTeacherRecorder wrote to.",
        ),
    ],
    output: Annotated[
        Path, typer.Argument(dir_okay=False, metavar="FILE", help="The JSONL file to write.")
    ],
    form: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="openai (chat fine-tuning messages) or hf (messages and the record's "
            "columns, for Hugging Face datasets).",
        ),
    ] = "openai",
    since: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="Only records from this ISO date or time on (UTC)."),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Only this tenant's records (bank namespace)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="A label task's labels (a JSON list or one per line): keep only answers "
            "that name a label of the set.",
        ),
    ] = None,
    answers: Annotated[
        str | None,
        typer.Option(
            metavar="KIND",
            help="number, choice or text: keep only answers that state one (as eval reads them).",
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(metavar="LABEL", help="The store namespace the records live under.")
    ] = DEFAULT_PREFIX[0],
) -> None:
    """Write the teacher's recorded answers (CascadeOptions.record_to) as a fine-tuning file."""
    if form not in get_args(FinetuningFormat):
        raise _fail(
            f"--format must be one of {', '.join(get_args(FinetuningFormat))}, got {form!r}"
        )
    start, extractor = _since(since), _extractor(labels, answers)
    if not output.parent.is_dir():
        raise _fail(f"no folder {output.parent} to write {output.name} in")
    records = _read(source, prefix, tenant, start)
    summary = export_finetuning(
        records, output, form=cast(FinetuningFormat, form), extractor=extractor
    )
    dropped = ", ".join(f"{count} ({why})" for why, count in sorted(summary.dropped.items()))
    console.print(
        f"exported {summary.written} of {len(records)} records to {output}"
        + (f"; dropped {dropped}" if dropped else "")
    )
