"""The bank's files: saved folders and JSON-lines exports, written crash-safely.

A saved folder holds ``manifest.json`` (format version, count, dimension and the
names of the data files), a JSONL file of records and a ``.npy`` file of unit
vectors; no pickle. Each save writes data files under new names and replaces the
manifest last; text files are written to a synced temporary sibling renamed over
the target, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from langchain_intercascade.bank.catalog import _check_namespace
from langchain_intercascade.strategies import Strategy, StrategyRecord, content_id

FORMAT_VERSION = 2
_MANIFEST = "manifest.json"


class SavedBank(NamedTuple):
    """The contents of a saved folder, as :func:`read_bank` found them."""

    records: list[StrategyRecord]
    vectors: np.ndarray
    dim: int


def write_bank(
    folder: str | os.PathLike[str], records: Sequence[StrategyRecord], vectors: np.ndarray
) -> Path:
    """Write records and their vectors to a folder, replacing any bank saved there.

    New data files are written first and the manifest is replaced last, so a
    crash at any point leaves a complete bank: the new one or the previous one.

    Args:
        folder: Where to write; created if missing.
        records: The records to save.
        vectors: Their unit vectors, one row per record.

    Returns:
        The folder's path.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    dim = int(vectors.shape[1]) if len(records) else 0
    generation = uuid.uuid4().hex[:12]
    names = {
        "records": f"strategies-{generation}.jsonl",
        "vectors": f"vectors-{generation}.npy",
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "count": len(records),
        "dim": dim,
        **names,
    }
    previous = _read_manifest(target) if (target / _MANIFEST).is_file() else {}
    written = [target / name for name in names.values()]
    try:
        write_jsonl(written[0], records)
        with open(written[1], "wb") as fh:
            np.save(fh, vectors.reshape(len(records), dim), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        _write_durably(target / _MANIFEST, json.dumps(manifest, indent=2))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    # Remove only what the replaced manifest named: another process's save may be
    # writing its own files here right now.
    for key in ("records", "vectors"):
        if previous.get(key) and previous[key] != names[key]:
            (target / previous[key]).unlink(missing_ok=True)
    return target


def read_bank(folder: str | os.PathLike[str]) -> SavedBank:
    """Read the records and vectors of a folder written by :func:`write_bank`.

    Args:
        folder: The saved folder.

    Returns:
        The records, their vectors and the embedding dimension the manifest names.

    Raises:
        FileNotFoundError: If the folder is not a saved bank.
        ValueError: If the files are inconsistent or of an unknown format version.
    """
    path = Path(folder)
    if not (path / _MANIFEST).is_file():
        raise FileNotFoundError(f"{path} is not a saved strategy bank (no {_MANIFEST})")
    manifest = _read_manifest(path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: unsupported bank format version {manifest.get('format_version')!r}; "
            f"this version reads {FORMAT_VERSION}"
        )
    with open(path / manifest["records"], encoding="utf-8") as fh:
        records = [StrategyRecord.model_validate_json(line) for line in fh if line.strip()]
    vectors = np.load(path / manifest["vectors"], allow_pickle=False)
    if len(records) != manifest["count"] or vectors.shape[0] != len(records):
        raise ValueError(
            f"{path}: manifest says {manifest['count']} strategies, found "
            f"{len(records)} records and {vectors.shape[0]} vectors"
        )
    return SavedBank(records, vectors, manifest["dim"])


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


def read_jsonl(path: str | os.PathLike[str], namespace: str | None) -> list[StrategyRecord]:
    """Read records or bare strategies from JSON lines, as new records to store.

    A record's id is recomputed from its content and namespace, so edited
    strategies get ids that match their text.

    Args:
        path: The file to read.
        namespace: Put every record in this namespace; None keeps each record's
            own (bare strategies go to the default namespace).

    Returns:
        The records, in file order.

    Raises:
        ValueError: If a line is neither a record nor a strategy (the message
            names the line).
    """
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(_imported(json.loads(line), namespace))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise ValueError(f"{path}, line {number}: {exc}") from exc
    return records


def _imported(data: Any, namespace: str | None) -> StrategyRecord:
    if isinstance(data, dict) and "strategy" in data:
        record = StrategyRecord.model_validate(data)
    else:
        record = StrategyRecord.create(Strategy.model_validate(data))
    space = _check_namespace(namespace or record.namespace)
    return record.model_copy(update={"namespace": space, "id": content_id(record.strategy, space)})


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    return manifest


def _write_durably(path: Path, text: str) -> None:
    """Write a file through a temporary sibling, synced, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
