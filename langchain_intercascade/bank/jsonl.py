"""The bank as JSON lines: one record per line, for people to review, edit and version.

An export writes whole records (strategy, provenance, counters) and replaces the
file in one rename, so readers never see half a file. An import reads records or
bare strategies, recomputes each id from its content, namespace and source query
(so an edited strategy gets an id that matches its text), and screens each with
a strategy filter before anything is stored (``persistence.screen``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from langchain_intercascade.bank.backend import _check_namespace
from langchain_intercascade.bank.persistence import _write_durably, screen
from langchain_intercascade.guards import StrategyScreen
from langchain_intercascade.strategies import Strategy, StrategyRecord, content_id


def write_jsonl(path: str | os.PathLike[str], records: Sequence[StrategyRecord]) -> int:
    """Write whole records as JSON lines, replacing the file in one rename.

    Args:
        path: The file to write.
        records: The records, in file order.

    Returns:
        How many records were written.
    """
    _write_durably(Path(path), "".join(r.model_dump_json() + "\n" for r in records))
    return len(records)


def read_jsonl(
    path: str | os.PathLike[str], namespace: str | None, strategy_filter: StrategyScreen | None
) -> list[StrategyRecord]:
    """Read records or bare strategies from JSON lines, as new records to store.

    A record's id is recomputed from its content, namespace and source query, so
    edited strategies get ids that match their text. The lines the filter
    rejects are left out (see :func:`screen`).

    Args:
        path: The file to read.
        namespace: Put every record in this namespace; None keeps each record's
            own (bare strategies go to the default namespace).
        strategy_filter: Screens each strategy; None keeps every one.

    Returns:
        The records, in file order.

    Raises:
        ValueError: If a line is neither a record nor a strategy, or a record's
            id is malformed (the message names the line).
    """
    records, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(_imported(json.loads(line), namespace))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise ValueError(f"{path}, line {number}: {exc}") from exc
                labels.append(f"line {number}")
    return [records[i] for i in screen(records, labels, strategy_filter, Path(path))]


def _imported(data: Any, namespace: str | None) -> StrategyRecord:
    if isinstance(data, dict) and "strategy" in data:
        record = StrategyRecord.model_validate(data)
    else:
        record = StrategyRecord.create(Strategy.model_validate(data))
    space = _check_namespace(namespace or record.namespace)
    identity = content_id(record.strategy, space, record.source_query)
    return record.model_copy(update={"namespace": space, "id": identity})
